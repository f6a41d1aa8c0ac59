"""Log lines an operator can use: text or JSON, a request id on every line logged while a
call is served, and repeated warnings rate-limited with a count.

The request id lives in a :mod:`contextvars` variable: the adapters set it per call (from the
caller's ``x-request-id``, or a new one) and work submitted to a thread pool through
``contextvars.copy_context().run`` keeps it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TextIO

LOG_FORMATS = ("text", "json")
REQUEST_ID_HEADER = "x-request-id"  # gRPC metadata key and HTTP header alike
MAX_REQUEST_ID = 128
RATE_LIMIT_WINDOW = 60.0
_SAFE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,%d}" % MAX_REQUEST_ID)

_request_id: ContextVar[str | None] = ContextVar("dragoman_request_id", default=None)


# -- request ids ------------------------------------------------------------------------

def current_request_id() -> str | None:
    return _request_id.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(given: str | None) -> str:
    """The caller's id when it is a short, printable token (it ends up in log lines and
    response headers), otherwise a new one."""
    if given and _SAFE_ID.fullmatch(given):
        return given
    return new_request_id()


@contextmanager
def request_scope(request_id: str) -> Iterator[str]:
    """Log lines within (and work copied from this context) carry ``request_id``."""
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        try:
            _request_id.reset(token)
        except ValueError:  # an async generator closed from another context: nothing to undo
            pass


# -- filters ------------------------------------------------------------------------------

class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (None outside a call)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True


@dataclass
class _Seen:
    since: float
    suppressed: int = 0


class RateLimitFilter(logging.Filter):
    """Lets the first record of each message template (logger, level, format string) through
    per ``window`` seconds and drops the rest; the first one after the window says how many
    were dropped: ``... (1,234 more in the last 60 s)``.

    Keyed on the template, not the formatted text, so a warning that names a different
    token count every time is still one message. Only WARNING and above are limited.
    """

    MAX_KEYS = 1000  # templates remembered (f-string messages would otherwise grow it)

    def __init__(self, window: float = RATE_LIMIT_WINDOW, level: int = logging.WARNING,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.level = level
        self._clock = clock
        self._seen: dict[tuple[str, int, str], _Seen] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level or getattr(record, "rate_limited", False):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.since < self.window:
                seen.suppressed += 1
                return False
            if len(self._seen) >= self.MAX_KEYS:
                self._prune(now)
            self._seen[key] = _Seen(now)
        if seen is not None and seen.suppressed:
            record.msg = (f"{record.getMessage()} ({seen.suppressed:,} more in the last "
                          f"{self.window:g} s)")
            record.args = None
        record.rate_limited = True  # another handler's filter must not count it again
        return True

    def pending(self) -> list[tuple[str, int, str, int]]:
        """(logger, level, template, count) of records dropped and not yet reported; the
        counts start again from zero."""
        with self._lock:
            out = [(name, level, template, seen.suppressed)
                   for (name, level, template), seen in self._seen.items() if seen.suppressed]
            for seen in self._seen.values():
                seen.suppressed = 0
        return out

    def _prune(self, now: float) -> None:
        for key in [k for k, s in self._seen.items() if now - s.since >= self.window]:
            del self._seen[key]
        if len(self._seen) >= self.MAX_KEYS:
            self._seen.clear()


# -- formatters ---------------------------------------------------------------------------

class TextFormatter(logging.Formatter):
    """``dragoman: LEVEL: logger: [request ID] message``."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        prefix = f"dragoman: {record.levelname}: {record.name}: "
        line = prefix + (f"[request {rid}] " if rid else "") + record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message,
    request_id, and the traceback as ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=timezone.utc)
        data: dict[str, object] = {
            "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class _ConsoleHandler(logging.StreamHandler):
    """A stream handler that, given no stream, writes to whatever ``sys.stderr`` is at the
    time (so a CLI run inside a test harness that swaps stderr never writes to a stale one)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._fixed: TextIO | None = stream
        super().__init__(stream)

    @property
    def stream(self) -> TextIO:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        self._fixed = None if value is None or value is sys.stderr else value

    def close(self) -> None:
        """Report what rate limiting still holds back (at exit: logging.shutdown closes it)."""
        for f in self.filters:
            if isinstance(f, RateLimitFilter):
                for name, level, template, count in f.pending():
                    record = logging.LogRecord(name, level, __file__, 0,
                                               f"({count:,} more like {template!r} not shown)",
                                               None, None)
                    record.rate_limited = True
                    try:
                        self.handle(record)
                    except Exception:  # closing must not fail
                        pass
        super().close()


def make_handler(log_format: str = "text", stream: TextIO | None = None,
                 rate_limit: RateLimitFilter | None = None) -> logging.Handler:
    """A stream handler with the format, the request id and rate limiting."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = _ConsoleHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(rate_limit if rate_limit is not None else RateLimitFilter())
    handler._dragoman = True  # type: ignore[attr-defined]
    return handler


def configure_logging(log_format: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Make the root logger write ``log_format`` lines to ``stream`` (stderr).

    Replaces a console handler that an earlier set-up (the CLI's ``basicConfig``, or an
    earlier call) installed, and leaves other handlers (files, test capture) alone. Levels
    are the caller's business.
    """
    root = logging.getLogger()
    for old in root.handlers[:]:
        console = (type(old) is logging.StreamHandler
                   and getattr(old, "stream", None) in (sys.stderr, sys.stdout))
        if getattr(old, "_dragoman", False) or console:
            root.removeHandler(old)
    handler = make_handler(log_format, stream)
    root.addHandler(handler)
    return handler
