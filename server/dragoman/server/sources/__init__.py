"""Where models come from: ``argos:SRC-TGT`` (the Argos package index), ``hf:OWNER/REPO[@REV]``
and ``opus-mt:SRC-TGT`` (the Hugging Face Hub), or a local package/folder.

Grpc-free like the rest of the model layer; every source ends in :meth:`ModelStore.install`,
so installs stay atomic and confined whatever the source.
"""
