"""An HTTP adapter alone on its own event loop (for tests that need a custom access check or
limits); the full server with HTTP is ``ServerThread`` with ``http_address="127.0.0.1:0"``."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from dragoman.server.access import AccessControl
from dragoman.server.http.app import HttpServer, create_app
from dragoman.server.service import Dragoman


class HttpThread:
    def __init__(self, service: Dragoman, access: AccessControl | None = None) -> None:
        self.service = service
        self.access = access
        self.loop = asyncio.new_event_loop()
        self.executor = ThreadPoolExecutor(8, thread_name_prefix="http-test")
        self.server: HttpServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def __enter__(self) -> HttpThread:
        self._thread.start()
        app = create_app(self.service, self.executor, self.access)
        self.server = asyncio.run_coroutine_threadsafe(
            HttpServer(app, "127.0.0.1:0", grace=2).start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.service.close(timeout=5)
        self.executor.shutdown(wait=False, cancel_futures=True)
