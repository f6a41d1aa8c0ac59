"""The aiohttp application and its server on the running event loop (the gRPC server's, so
HTTP and gRPC requests meet in the same batches).

Every request body is capped before it is parsed (``client_max_size``, from ``--max-chars``);
unknown paths get the 404 of the dialect their prefix belongs to (``/v2/`` DeepL, ``/v1/``
Dragoman's JSON, anything else LibreTranslate's).
"""

from __future__ import annotations

import errno
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from dragoman.server.access import AccessControl
from dragoman.server.errors import DragomanError
from dragoman.server.http import deepl, libretranslate, native
from dragoman.server.http.calls import Calls
from dragoman.server.http.common import Dialect, Handler
from dragoman.server.http.files import FileStore
from dragoman.server.http.keys import CALLS, FILES
from dragoman.server.http.spec import openapi
from dragoman.server.http.tls import ReloadingContext
from dragoman.server.service import Dragoman

__all__ = ["HttpServer", "create_app", "parse_address"]

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
# A character is at most 4 bytes of UTF-8, and form encoding writes each byte as %XX.
BYTES_PER_CHAR = 12
BODY_SLACK = 1024 * 1024  # field names, JSON syntax, multipart headers
API_PREFIXES = ("/translate", "/detect", "/languages", "/frontend/", "/download_file/", "/spec",
                "/v1/", "/v2/")


def body_limit(max_chars: int) -> int:
    return max_chars * BYTES_PER_CHAR + BODY_SLACK


def _dialect_of(path: str) -> Dialect:
    if path.startswith("/v2/") or path == "/v2":
        return deepl.DIALECT
    if path.startswith("/v1/") or path == "/v1":
        return native.DIALECT
    return libretranslate.DIALECT


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths and methods in the dialect's own error body; open CORS for the APIs
    (browser extensions call LibreTranslate from other origins)."""
    api = request.path.startswith(API_PREFIXES)
    if api and request.method == "OPTIONS":
        return web.Response(status=204, headers=_cors(request))
    try:
        response = await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        if not api and request.path != "/" and not request.path.startswith("/static/"):
            api = True  # an unknown path anywhere else is an API client's mistake
        if not api and isinstance(exc, web.HTTPNotFound):
            raise
        message = "Not found" if exc.status == 404 else f"method {request.method} not allowed"
        response = _dialect_of(request.path).error(exc.status, message)
    if api:
        response.headers.update(_cors(request))
    return response


def _cors(request: web.Request) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": request.headers.get(
            "Access-Control-Request-Headers", "Authorization, Content-Type"),
    }


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def spec(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    return web.json_response(openapi(str(request.url.origin()), calls.max_chars))


async def healthz(request: web.Request) -> web.Response:
    """Readiness: 200 while serving (models loaded), 503 while shutting down."""
    serving = request.app[SERVING][0]
    return web.json_response({"status": "SERVING" if serving else "NOT_SERVING"},
                             status=200 if serving else 503)


SERVING = web.AppKey("serving", list)


def create_app(service: Dragoman, executor: ThreadPoolExecutor,
               access: AccessControl | None = None, files: FileStore | None = None) -> web.Application:
    """The application; ``access`` defaults to the service's own (the one gRPC uses too)."""
    app = web.Application(client_max_size=body_limit(service.limits.max_chars),
                          middlewares=[_errors])
    if access is None:
        access = getattr(service, "access", None) or AccessControl()
    app[CALLS] = Calls(service, executor, access)
    app[FILES] = files if files is not None else FileStore()
    app[SERVING] = [True]
    libretranslate.add_routes(app)
    deepl.add_routes(app)
    native.add_routes(app)
    app.router.add_get("/spec", spec)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC)
    return app


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port)."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise DragomanError(f"HTTP address {address!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


class HttpServer:
    """The HTTP server of one Dragoman process."""

    def __init__(self, app: web.Application, address: str, grace: float = 5.0,
                 tls: ReloadingContext | None = None) -> None:
        self.app = app
        self.address = address
        self.port = 0
        self.tls = tls  # HTTPS with the gRPC listener's certificate when set
        # grace: how long requests in flight may take to finish on stop. A client that
        # hangs up cancels its handler, and so its queued sentences (aiohttp leaves the
        # handler running by default): nobody is waiting for them.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=grace, handler_cancellation=True)

    async def start(self) -> HttpServer:
        host, port = parse_address(self.address)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True,
                           ssl_context=self.tls.context if self.tls is not None else None)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            if exc.errno == errno.EADDRINUSE:  # asyncio's wording shows a (host, port) tuple
                raise DragomanError(f"cannot listen for HTTP on {self.address}: port {port} is "
                                    "already in use") from None
            raise DragomanError(f"cannot listen for HTTP on {self.address}: {exc.strerror or exc}") from None
        self.port = self._runner.addresses[0][1] if self._runner.addresses else port
        return self

    async def stop(self) -> None:
        """Refuse new requests, let those in flight finish within the grace period."""
        self.app[SERVING][0] = False
        await self._runner.cleanup()
