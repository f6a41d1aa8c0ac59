"""Domain errors -> gRPC status codes (each error class names its code in errors.py)."""

from __future__ import annotations

import grpc

from dragoman.server.errors import DragomanError

INTERNAL_MESSAGE = "internal error (see the server log)"


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a caller gets for ``exc``."""
    if isinstance(exc, DragomanError):
        return grpc.StatusCode[exc.code], str(exc) or INTERNAL_MESSAGE
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
