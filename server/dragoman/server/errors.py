"""Domain errors of the model layer.

Each class names its gRPC status code (``code``): this is the one table. The RPC layer turns
the name into a status without the model layer importing gRPC, and the batch job writes the
same names into its error records.
"""

from __future__ import annotations


class DragomanError(Exception):
    """Base class of every error the service reports to a caller."""

    code = "INTERNAL"


class InvalidInput(DragomanError):
    """The request itself is wrong: empty or over-limit text, bad language code, bad option."""

    code = "INVALID_ARGUMENT"


class ModelNotFound(DragomanError):
    """No installed model serves the requested language pair or task."""

    code = "NOT_FOUND"


class GlossaryNotFound(DragomanError):
    """A request names a glossary the server does not have."""

    code = "NOT_FOUND"


class Overloaded(DragomanError):
    """Too much work is queued; the caller should retry later."""

    code = "RESOURCE_EXHAUSTED"


class Unavailable(DragomanError):
    """The service is shutting down or not ready yet."""

    code = "UNAVAILABLE"


class DeadlineExceeded(DragomanError):
    """The caller's deadline passed before the work could be done."""

    code = "DEADLINE_EXCEEDED"


class Cancelled(DragomanError):
    """The caller went away; queued work for it was dropped."""

    code = "CANCELLED"


class StoreError(DragomanError):
    """A model could not be installed, read or removed from the store."""

    code = "FAILED_PRECONDITION"


class SourceUnavailable(DragomanError):
    """A model could not be fetched or written: offline, server error, interrupted or corrupt
    download, disk full. Not the caller's mistake; retrying later may work."""

    code = "UNAVAILABLE"


class ModelFailed(DragomanError):
    """CTranslate2 raised on this input (the server log has the details)."""

    code = "INTERNAL"
