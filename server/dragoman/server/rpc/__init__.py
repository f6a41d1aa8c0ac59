"""The gRPC adapter: maps requests onto :class:`dragoman.server.service.Dragoman` and
domain errors onto status codes. The only part of the server that imports grpc."""
