"""Pieces every dialect shares: reading parameters from the query string and a JSON, form or
multipart body (whatever the method: some clients send a body with GET), and turning
exceptions into the dialect's status code through its one table."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDictProxy

from dragoman.server.errors import DragomanError, InvalidInput

logger = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error (see the server log)"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Params:
    """Request parameters by name. A JSON body keeps its types (an array stays an array); a
    form field sent once is a string, sent several times a list."""

    values: dict[str, Any] = field(default_factory=dict)
    files: dict[str, web.FileField] = field(default_factory=dict)

    def add(self, name: str, value: Any) -> None:
        if name in self.values:
            old = self.values[name]
            self.values[name] = [*old, value] if isinstance(old, list) else [old, value]
        else:
            self.values[name] = value

    def raw(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def text(self, name: str, default: str = "") -> str:
        """One string parameter (numbers and booleans of a JSON body as their text)."""
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, list):
            raise InvalidInput(f"parameter {name!r} must be given once")
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, (int, float, str)):
            return str(value)
        raise InvalidInput(f"parameter {name!r} must be a string")

    def texts(self, name: str) -> list[str]:
        """A repeated string parameter (a JSON array or a repeated form field)."""
        value = self.values.get(name)
        items = [] if value is None else value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise InvalidInput(f"parameter {name!r} must be a string or an array of strings")
        return items

    def integer(self, name: str, default: int = 0) -> int:
        value = self.text(name, "")
        if value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidInput(f"parameter {name!r} must be an integer, not {value!r}") from None


async def read_params(request: web.Request) -> Params:
    """Query string, then body parameters (a body value is added after the query's)."""
    params = Params()
    for name, value in request.query.items():
        params.add(name, value)
    ctype = request.content_type
    if ctype == "application/json":
        body = await request.read()
        if body.strip():
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise InvalidInput("the request body is not valid JSON") from None
            if not isinstance(data, dict):
                raise InvalidInput("the JSON body must be an object")
            for name, value in data.items():
                params.values[name] = value
    elif ctype == "multipart/form-data" and request.method in ("POST", "PUT", "PATCH"):
        form: MultiDictProxy[Any] = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                params.files[name] = value
            else:
                params.add(name, value)
    elif ctype == "application/x-www-form-urlencoded" or (request.can_read_body and ctype in (
            "", "application/octet-stream", "text/plain")):
        body = await request.read()
        try:
            decoded = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("the form body is not UTF-8") from None
        for name, value in parse_qsl(decoded, keep_blank_values=True):
            params.add(name, value)
    return params


@dataclass(frozen=True)
class Dialect:
    """One API's error conventions: exception class -> HTTP status (the first match along the
    exception's class hierarchy), and the body shape."""

    name: str
    statuses: Mapping[type[BaseException], int]
    body: Callable[[int, str, BaseException | None], dict[str, Any]]

    def status_of(self, exc: BaseException) -> int:
        for cls in type(exc).__mro__:
            if cls in self.statuses:
                return self.statuses[cls]
        return 500

    def error(self, status: int, message: str, exc: BaseException | None = None) -> web.Response:
        return web.json_response(self.body(status, message, exc), status=status)

    def endpoint(self, fn: Handler) -> Handler:
        """Wrap a handler: every failure becomes this dialect's error, never a traceback."""

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await fn(request)
            except web.HTTPRequestEntityTooLarge as exc:
                return self.error(413, f"the request body is too large ({exc.text})", exc)
            except web.HTTPException:
                raise
            except DragomanError as exc:
                status = self.status_of(exc)
                if status >= 500 and exc.code == "INTERNAL":
                    logger.error("%s %s failed: %s", request.method, request.path, exc)
                return self.error(status, str(exc) or INTERNAL_MESSAGE, exc)
            except Exception:  # never leak a traceback to the caller
                logger.exception("%s %s failed", request.method, request.path)
                return self.error(500, INTERNAL_MESSAGE)

        handler.__name__ = fn.__name__
        handler.__doc__ = fn.__doc__
        return handler
