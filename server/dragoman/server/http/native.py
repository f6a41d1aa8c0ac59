"""Dragoman's own JSON API: the proto messages of ``dragoman.v1`` in their standard JSON
mapping (``google.protobuf.json_format``), so everything gRPC offers, summaries included, is
one ``curl`` away. Keys go in ``Authorization: Bearer KEY`` as on gRPC; errors are
``{"code": "<gRPC status name>", "message": "..."}`` with the usual HTTP mapping."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from dragoman.server.access import Principal, QuotaExceeded, Unauthenticated
from dragoman.server.errors import (
    Cancelled,
    DeadlineExceeded,
    DragomanError,
    InvalidInput,
    ModelNotFound,
    Overloaded,
    StoreError,
    Unavailable,
)
from dragoman.server.http.calls import Calls, TooLarge
from dragoman.server.http.common import Dialect
from dragoman.server.http.keys import CALLS
from dragoman.server.rpc import messages
from dragoman.v1 import summarisation_pb2 as spb
from dragoman.v1 import translation_pb2 as pb

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

STATUSES: dict[type[BaseException], int] = {
    TooLarge: 413,
    InvalidInput: 400,
    StoreError: 400,
    ModelNotFound: 404,
    Unauthenticated: 401,
    QuotaExceeded: 429,
    Overloaded: 429,
    Cancelled: 499,
    Unavailable: 503,
    DeadlineExceeded: 504,
}


def _body(status: int, message: str, exc: BaseException | None) -> dict[str, Any]:
    if isinstance(exc, DragomanError):
        code = exc.code
    else:
        code = {404: "NOT_FOUND", 405: "UNIMPLEMENTED", 413: "INVALID_ARGUMENT"}.get(status, "INTERNAL")
    return {"code": code, "message": message}


DIALECT = Dialect("native", STATUSES, _body)


async def _parse(request: web.Request, message: M) -> M:
    body = await request.read()
    try:
        json_format.Parse(body.decode("utf-8") or "{}", message)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not a valid {message.DESCRIPTOR.name} in JSON: {exc}") from None
    return message


def _reply(message: Message) -> web.Response:
    return web.json_response(json_format.MessageToDict(message))


def _principal(request: web.Request, calls: Calls) -> Principal:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return calls.authenticate(key.strip() if scheme.lower() == "bearer" else None)


@DIALECT.endpoint
async def translate(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    principal = _principal(request, calls)
    req = await _parse(request, pb.TranslateRequest())
    inp = messages.translate_input(req)
    chars = calls.check_sizes([inp.text])
    out = await calls.charged(principal, chars, lambda: calls.translate(inp))
    return _reply(messages.translate_response(out))


@DIALECT.endpoint
async def summarise(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    principal = _principal(request, calls)
    req = await _parse(request, spb.SummariseRequest())
    inp = messages.summarise_input(req)
    chars = calls.check_sizes([inp.text])
    out = await calls.charged(principal, chars, lambda: calls.summarise(inp))
    return _reply(messages.summarise_response(out))


@DIALECT.endpoint
async def detect(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    principal = _principal(request, calls)
    req = await _parse(request, pb.DetectLanguageRequest())
    chars = calls.check_sizes([req.text])
    det = await calls.charged(principal, chars, lambda: calls.detect(req.text))
    return _reply(messages.detect_response(det))


@DIALECT.endpoint
async def languages(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    _principal(request, calls)
    return _reply(messages.languages_response(await calls.languages()))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/translate", translate)
    app.router.add_post("/v1/summarise", summarise)
    app.router.add_post("/v1/detect", detect)
    app.router.add_get("/v1/languages", languages)
