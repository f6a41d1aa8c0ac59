"""Progress of a batch job: a tqdm bar on a terminal, plain periodic lines in a log.

A bar is useless in a CI log or under ``nohup``, and periodic lines are noise on a terminal,
so the CLI picks one by whether its stream is a TTY.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from typing import Any, TextIO


class BarProgress:
    """Documents done, a failed count, chars/s and ETA (when the input size is known)."""

    wants_total = True

    def __init__(self, stream: TextIO, description: str = "documents") -> None:
        self._stream = stream
        self._description = description
        self._bar: Any = None
        self._redirected: list[tuple[logging.StreamHandler[Any], Any]] = []
        self._failed = 0
        self._chars = 0
        self._failed_blocks = 0
        self._started = time.monotonic()

    def failed_blocks(self, count: int) -> None:
        """Blocks of a Ray job that kept failing (their documents went to the errors file)."""
        self._failed_blocks = count

    def start(self, total: int | None, skipped: int) -> None:
        from tqdm import tqdm

        self._started = time.monotonic()
        # tqdm hides its bar on a pseudo-terminal without a size (some CI runners, `script`).
        sized = _terminal_sized(self._stream)
        self._bar = tqdm(total=total, initial=skipped, unit="doc", desc=self._description,
                         file=self._stream, dynamic_ncols=sized, ncols=None if sized else 100,
                         nrows=None if sized else 24, smoothing=0.1)
        self._redirected = _route_logging_around_bar(self._stream)

    def advance(self, done: int, failed: int, chars: int) -> None:
        if self._bar is None:
            return
        self._failed += failed
        self._chars += chars
        elapsed = max(time.monotonic() - self._started, 1e-9)
        extra = {"failed_blocks": self._failed_blocks} if self._failed_blocks else {}
        self._bar.set_postfix(failed=self._failed, chars_s=f"{self._chars / elapsed:,.0f}",
                              **extra, refresh=False)
        self._bar.update(done + failed)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        for handler, stream in self._redirected:
            handler.setStream(stream)
        self._redirected = []


class _AroundBar:
    """The stream of a console log handler while a bar is shown: each complete line goes out
    through ``tqdm.write``, which clears the bar, writes the line and redraws the bar below
    it, so log lines never land in the middle of the bar."""

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self._pending = ""

    def write(self, text: str) -> int:
        from tqdm import tqdm

        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            tqdm.write(line, file=self.target)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self.write("\n")


def _route_logging_around_bar(stream: TextIO) -> list[tuple[logging.StreamHandler[Any], Any]]:
    """Point every console handler (one writing to the bar's stream, stdout or stderr: on a
    terminal they all share the screen) at an ``_AroundBar``; returns what to restore.
    Formatters and filters (rate limiting) stay as they are."""
    screens = {id(stream), id(sys.stdout), id(sys.stderr)}
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
    for logger in loggers:
        for handler in logger.handlers:
            if (isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
                    and id(handler.stream) in screens and not isinstance(handler.stream, _AroundBar)):
                old = handler.setStream(_AroundBar(handler.stream))
                swapped.append((handler, old))
    return swapped


class LogProgress:
    """One line every ``interval`` seconds: counts, rates and, with a known total, ETA."""

    def __init__(self, stream: TextIO, interval: float = 10.0, wants_total: bool = False,
                 clock: Any = time.monotonic) -> None:
        self._stream = stream
        self._interval = interval
        self.wants_total = wants_total
        self._clock = clock
        self._total: int | None = None
        self._skipped = 0
        self._done = self._failed = self._chars = 0
        self._failed_blocks = 0
        self._started = self._last = 0.0

    def failed_blocks(self, count: int) -> None:
        """Blocks of a Ray job that kept failing (their documents went to the errors file)."""
        self._failed_blocks = count

    def start(self, total: int | None, skipped: int) -> None:
        self._total = total
        self._skipped = skipped
        self._started = self._last = self._clock()

    def advance(self, done: int, failed: int, chars: int) -> None:
        self._done += done
        self._failed += failed
        self._chars += chars
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._emit(now)

    def _emit(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        processed = self._done + self._failed
        rate = processed / elapsed
        line = (f"progress: {self._done} done, {self._failed} failed"
                f"{f', {self._skipped} skipped' if self._skipped else ''}"
                f"{f', {self._failed_blocks} failed blocks' if self._failed_blocks else ''}; "
                f"{rate:.1f} docs/s, {self._chars / elapsed:,.0f} chars/s")
        if self._total is not None and rate > 0:
            left = max(self._total - self._skipped - processed, 0)
            line += f"; {self._skipped + processed}/{self._total}, ETA {_clock_time(left / rate)}"
        self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._done + self._failed:
            self._emit(self._clock())


def _terminal_sized(stream: TextIO) -> bool:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False
    return size.columns > 0 and size.lines > 0


def _clock_time(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
