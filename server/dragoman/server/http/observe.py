"""Request ids, metrics and spans for the HTTP adapter, and the ``/metrics`` endpoints.

``install`` adds an outermost middleware to an application (the caller's ``X-Request-Id``
or a new one, in every log line of the request and in the response's header; requests
counted by route, method and status; a span per request) and serves ``/metrics`` on it.
:class:`MetricsServer` serves ``/metrics`` alone, for ``--metrics HOST:PORT``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from dragoman.server.errors import DragomanError
from dragoman.server.http.common import Handler
from dragoman.server.observability import logs, tracing
from dragoman.server.observability.metrics import CONTENT_TYPE_LATEST, Metrics

__all__ = ["MetricsServer", "install", "metrics_handler"]

METRICS = web.AppKey("metrics", Metrics)


def _route(request: web.Request) -> str:
    """The matched route's pattern (bounded label values), or 'unmatched'."""
    resource = request.match_info.route.resource if request.match_info.route else None
    if resource is None:
        return "unmatched"
    return resource.canonical or "unmatched"


def middleware(metrics: Metrics | None) -> Any:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = logs.accept_request_id(request.headers.get(logs.REQUEST_ID_HEADER))
        started = time.perf_counter()
        status = 500
        carrier = {k.lower(): v for k, v in request.headers.items()}
        with logs.request_scope(rid), tracing.span(
                f"HTTP {request.method}", {"http.request.method": request.method,
                                           "url.path": request.path,
                                           "dragoman.request_id": rid}, carrier=carrier) as current:
            try:
                response = await handler(request)
                status = response.status
            except web.HTTPException as exc:
                status = exc.status
                exc.headers[logs.REQUEST_ID_HEADER] = rid
                raise
            finally:
                if current is not None:
                    current.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        tracing.set_status_error(current, str(status))
                if metrics is not None:
                    metrics.http_request(_route(request), request.method, status,
                                         time.perf_counter() - started)
            response.headers[logs.REQUEST_ID_HEADER] = rid
            return response

    return observe


async def metrics_handler(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def install(app: web.Application, metrics: Metrics | None) -> None:
    """Add the observing middleware (outermost) and, with ``metrics``, ``GET /metrics``.
    Call before the application starts."""
    app.middlewares.insert(0, middleware(metrics))
    if metrics is not None:
        app[METRICS] = metrics
        app.router.add_get("/metrics", metrics_handler)


class MetricsServer:
    """``/metrics`` alone on its own address (``--metrics HOST:PORT``), on the running loop."""

    def __init__(self, metrics: Metrics, address: str) -> None:
        from dragoman.server.http.app import parse_address

        self.address = address
        self.host, self._port = parse_address(address)
        app = web.Application()
        app[METRICS] = metrics
        app.router.add_get("/metrics", metrics_handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.port = 0

    async def start(self) -> MetricsServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise DragomanError(
                f"cannot serve metrics on {self.address}: {exc.strerror or exc}") from None
        self.port = self._runner.addresses[0][1] if self._runner.addresses else self._port
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()
