"""Domain errors of the model layer.

The RPC layer maps each class to one gRPC status code in a single table, so the model layer
stays free of gRPC and the batch job can report the same errors as records.
"""

from __future__ import annotations


class DragomanError(Exception):
    """Base class of every error the service reports to a caller."""


class InvalidInput(DragomanError):
    """The request itself is wrong: empty or over-limit text, bad language code, bad option."""


class ModelNotFound(DragomanError):
    """No installed model serves the requested language pair or task."""


class Overloaded(DragomanError):
    """Too much work is queued; the caller should retry later."""


class Unavailable(DragomanError):
    """The service is shutting down or not ready yet."""


class DeadlineExceeded(DragomanError):
    """The caller's deadline passed before the work could be done."""


class Cancelled(DragomanError):
    """The caller went away; queued work for it was dropped."""


class StoreError(DragomanError):
    """A model could not be installed, read or removed from the store."""


class ModelFailed(DragomanError):
    """CTranslate2 raised on this input (the server log has the details)."""
