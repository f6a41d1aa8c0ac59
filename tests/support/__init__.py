"""Shared test helpers: offline-built tiny models and their fixtures' building blocks.

One home per builder: ``sentences`` (the corpus), ``spmodels`` (SentencePiece training),
``copymodel`` (exact-output copy model), ``randommodel`` (the benchmark-sized random model),
``ct2spec`` (what those two share), ``argospackage`` (.argosmodel zips), ``hfmodels`` (a tiny
Hugging Face checkpoint), ``mirror`` (a local model hub), ``certs``, ``gate``, ``http``,
``newspages``, ``signals``. bench/ reaches them through bench/reporoot.py.
"""
