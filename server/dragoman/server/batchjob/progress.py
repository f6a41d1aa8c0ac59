"""Progress of a batch job: a tqdm bar on a terminal, plain periodic lines in a log.

A bar is useless in a CI log or under ``nohup``, and periodic lines are noise on a terminal,
so the CLI picks one by whether its stream is a TTY.
"""

from __future__ import annotations

import io
import os
import time
from typing import Any, TextIO


class BarProgress:
    """Documents done, a failed count, chars/s and ETA (when the input size is known)."""

    wants_total = True

    def __init__(self, stream: TextIO, description: str = "documents") -> None:
        self._stream = stream
        self._description = description
        self._bar: Any = None
        self._failed = 0
        self._chars = 0
        self._started = time.monotonic()

    def start(self, total: int | None, skipped: int) -> None:
        from tqdm import tqdm

        self._started = time.monotonic()
        # tqdm hides its bar on a pseudo-terminal without a size (some CI runners, `script`).
        sized = _terminal_sized(self._stream)
        self._bar = tqdm(total=total, initial=skipped, unit="doc", desc=self._description,
                         file=self._stream, dynamic_ncols=sized, ncols=None if sized else 100,
                         nrows=None if sized else 24, smoothing=0.1)

    def advance(self, done: int, failed: int, chars: int) -> None:
        if self._bar is None:
            return
        self._failed += failed
        self._chars += chars
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bar.set_postfix(failed=self._failed, chars_s=f"{self._chars / elapsed:,.0f}",
                              refresh=False)
        self._bar.update(done + failed)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


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
        self._started = self._last = 0.0

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
                f"{f', {self._skipped} skipped' if self._skipped else ''}; "
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
