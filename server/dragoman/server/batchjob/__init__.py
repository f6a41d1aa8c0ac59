"""`dragoman batch`: translate or summarise whole archives, resumably.

Readers turn an input (JSONL, Parquet, a folder, tar/zip, WARC) into numbered documents, an engine
translates them (in-process, against a server, or on Ray Data), and writers commit the
results in input order, so an interrupted job resumes exactly where its last commit ended.
Nothing here imports grpc: the server-backed engine lives in ``remote`` and is imported only
when asked for.
"""
