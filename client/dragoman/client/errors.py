"""The client's exception tree.

Callers handle a handful of Python exceptions instead of gRPC status codes; `from_rpc_error`
is the one place where a status code becomes an exception class.
"""

from __future__ import annotations

import grpc


class DragomanError(Exception):
    """Base of every error the client raises; `code` is the gRPC status name."""

    code: str = "UNKNOWN"

    def __init__(self, details: str, *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        self.details = details
        super().__init__(f"{self.code}: {details}" if details else self.code)


class InvalidArgument(DragomanError):
    """The request is malformed: bad language code, empty or over-limit text, bad option."""

    code = "INVALID_ARGUMENT"


class NotFound(DragomanError):
    """No installed model serves the requested language pair or task."""

    code = "NOT_FOUND"


class ResourceExhausted(DragomanError):
    """The server is overloaded or a message was too large; retry later or send less."""

    code = "RESOURCE_EXHAUSTED"


class Unavailable(DragomanError):
    """The server cannot be reached, is shutting down, or is not ready yet."""

    code = "UNAVAILABLE"


class DeadlineExceeded(DragomanError):
    """The call's deadline passed before the server answered."""

    code = "DEADLINE_EXCEEDED"


class Unauthenticated(DragomanError):
    """The server requires credentials that were missing or wrong."""

    code = "UNAUTHENTICATED"


class Cancelled(DragomanError):
    """The call was cancelled before it finished."""

    code = "CANCELLED"


class InternalError(DragomanError):
    """The server failed, or broke the protocol; not the caller's fault."""

    code = "INTERNAL"


_BY_STATUS: dict[grpc.StatusCode, type[DragomanError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
    grpc.StatusCode.DATA_LOSS: InternalError,
}


def error_for(code: str, details: str) -> DragomanError:
    """The exception for a status code name, e.g. from a stream's per-document error."""
    status = grpc.StatusCode.__members__.get(code)
    cls = _BY_STATUS.get(status, DragomanError) if status is not None else DragomanError
    return cls(details, code=code)


def from_rpc_error(error: grpc.RpcError) -> DragomanError:
    """Turn a failed call into the matching exception; unmapped codes give a plain DragomanError.

    The exception's `code` is always the real status name, so OUT_OF_RANGE stays visible even
    though it is raised as InvalidArgument.
    """
    status = error.code() if isinstance(error, grpc.Call) else None
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    if status is None:
        return DragomanError(details)
    return error_for(status.name, details)
