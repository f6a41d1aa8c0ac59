"""One interceptor for what operators see of every gRPC call: its request id (the caller's
``x-request-id`` metadata or a new one, in every log line of the call and returned in the
initial and trailing metadata), its count and latency by status code, and its trace span.

It is the outermost interceptor, so calls refused by the access check are counted too.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from dragoman.server.observability import logs, tracing
from dragoman.server.observability.metrics import Metrics

__all__ = ["ObserveInterceptor"]

logger = logging.getLogger(__name__)

ERROR_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _split(method: str) -> tuple[str, str]:
    """'/dragoman.v1.TranslationService/Translate' -> ('dragoman.v1.TranslationService', 'Translate')."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service or "unknown", name or method


def _code_name(context: grpc.aio.ServicerContext, failed: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, int):
        code = ERROR_CODES.get(code)
    if code is not None:
        return code.name
    if failed is None:
        return "OK"
    if isinstance(failed, (TimeoutError, grpc.aio.AbortError)):
        return "UNKNOWN"
    if isinstance(failed, BaseException) and type(failed).__name__ == "CancelledError":
        return "CANCELLED"
    return "UNKNOWN"


class ObserveInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        metadata: dict[str, str] = {}
        for key, value in details.invocation_metadata or ():
            if not key.endswith("-bin"):
                metadata[key] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        call = _Observed(self._metrics, details.method, metadata)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                call.unary(handler.unary_unary), handler.request_deserializer,
                handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                call.unary(handler.stream_unary), handler.request_deserializer,
                handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                call.stream(handler.unary_stream), handler.request_deserializer,
                handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            call.stream(handler.stream_stream), handler.request_deserializer,
            handler.response_serializer)


class _Observed:
    """One call: request id, timing, status code, span."""

    def __init__(self, metrics: Metrics | None, method: str, metadata: dict[str, str]) -> None:
        self.metrics = metrics
        self.method = method
        self.service, self.name = _split(method)
        self.metadata = metadata
        self.request_id = logs.accept_request_id(metadata.get(logs.REQUEST_ID_HEADER))

    async def _begin(self, context: grpc.aio.ServicerContext) -> None:
        pair = ((logs.REQUEST_ID_HEADER, self.request_id),)
        context.set_trailing_metadata(pair)
        await context.send_initial_metadata(pair)

    def _end(self, context: grpc.aio.ServicerContext, started: float, current: Any,
             failed: BaseException | None) -> None:
        code = _code_name(context, failed)
        seconds = time.perf_counter() - started
        logger.debug("%s %s in %.1f ms", self.method, code, 1000 * seconds)
        if code != "OK":
            tracing.set_status_error(current, code)
        if current is not None:
            current.set_attribute("rpc.grpc.status_code_name", code)
        if self.metrics is not None:
            self.metrics.grpc_call(self.service, self.name, code, seconds)

    def _span(self) -> Any:
        return tracing.span(self.method.lstrip("/"), {
            "rpc.system": "grpc", "rpc.service": self.service, "rpc.method": self.name,
            "dragoman.request_id": self.request_id}, carrier=self.metadata)

    def unary(self, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            failed: BaseException | None = None
            with logs.request_scope(self.request_id), self._span() as current:
                try:
                    await self._begin(context)
                    return await behaviour(request, context)
                except BaseException as exc:
                    failed = exc
                    raise
                finally:
                    self._end(context, started, current, failed)

        return observed

    def stream(self, behaviour: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
        async def observed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            failed: BaseException | None = None
            with logs.request_scope(self.request_id), self._span() as current:
                try:
                    await self._begin(context)
                    result = behaviour(request, context)
                    if inspect.isasyncgen(result):
                        async for item in result:
                            yield item
                    else:
                        await result
                except BaseException as exc:
                    failed = exc
                    raise
                finally:
                    self._end(context, started, current, failed)

        return observed
