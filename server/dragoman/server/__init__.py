"""Dragoman server: model layer (CTranslate2, SentencePiece, text pipeline, batching,
summarisers, model store) and a thin gRPC adapter in :mod:`dragoman.server.rpc`.

Nothing outside :mod:`dragoman.server.rpc` imports grpc.
"""
