"""Requests whose bytes are not a valid message get INVALID_ARGUMENT, not UNKNOWN.

gRPC deserialises a request before any servicer runs, and when the protobuf parser raises
(a string field that is not UTF-8, a truncated or garbled message) it answers ``UNKNOWN`` with
the exception class in the message and logs a full traceback, for every such call. This
interceptor gives each handler a deserialiser that cannot raise: bytes that do not parse
become a marker, and the handler answers the marker with INVALID_ARGUMENT and one log line.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

__all__ = ["DecodeGuardInterceptor"]

logger = logging.getLogger(__name__)


class _Undecodable:
    """What the guarded deserialiser returns for bytes that are not a request message."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _safe(deserialize: Callable[[bytes], Any], method: str) -> Callable[[bytes], Any]:
    owner = getattr(deserialize, "__self__", None)  # Message.FromString is a bound classmethod
    descriptor = getattr(owner, "DESCRIPTOR", None)
    kind = descriptor.full_name if descriptor is not None else "request"
    message = (f"the request is not a valid {kind} message (truncated or corrupt protobuf "
               "bytes, or a string field that is not UTF-8)")

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # DecodeError and kin: the caller's bytes are bad
            logger.info("%s: %d bytes that are not a valid %s", method, len(data), kind)
            return _Undecodable(message)

    return parse


async def _refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
    if isinstance(request, _Undecodable):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async for request in requests:
        await _refuse(request, context)
        yield request


def _unary_in(behaviour: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behaviour):
        async def stream_out(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await _refuse(request, context)
            async for item in behaviour(request, context):
                yield item
        return stream_out

    async def unary_out(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _refuse(request, context)
        return await behaviour(request, context)
    return unary_out


def _stream_in(behaviour: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behaviour):
        async def stream_out(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for item in behaviour(_checked(requests, context), context):
                yield item
        return stream_out

    async def unary_out(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        return await behaviour(_checked(requests, context), context)
    return unary_out


class DecodeGuardInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler  # nothing is parsed (e.g. a refusal that never reads the request)
        parse = _safe(handler.request_deserializer, details.method)
        out = handler.response_serializer
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_unary_in(handler.unary_unary), parse, out)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_unary_in(handler.unary_stream), parse, out)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(_stream_in(handler.stream_unary), parse, out)
        return grpc.stream_stream_rpc_method_handler(_stream_in(handler.stream_stream), parse, out)
