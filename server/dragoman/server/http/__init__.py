"""The HTTP adapter: LibreTranslate- and DeepL-compatible APIs, Dragoman's own JSON and the
web page, served by aiohttp on the gRPC server's event loop. Like ``rpc/`` it only maps
requests onto :class:`dragoman.server.service.Dragoman` (same models, batches, cache, limits
and access check) and never imports ctranslate2."""
