"""Download progress: a bar on a terminal, whole lines in pipes and logs.

Everything that reports progress takes a tqdm-compatible class (huggingface_hub takes one too),
so the caller decides where progress goes: the CLI passes :func:`terminal_progress`, the server
passes :class:`LogProgress`.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

from tqdm import tqdm

logger = logging.getLogger(__name__)

LINE_INTERVAL_SECONDS = 5.0
LINE_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt}{unit} [{elapsed}, {rate_fmt}]"


class LineProgress(tqdm):
    """A tqdm that writes a whole line (no carriage returns) at most every few seconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("name", None)  # huggingface_hub's own bars take a name; tqdm does not
        kwargs.setdefault("mininterval", LINE_INTERVAL_SECONDS)
        kwargs.setdefault("file", sys.stderr)
        kwargs["bar_format"] = LINE_FORMAT
        kwargs["leave"] = False  # close() then asks display(msg="") to clear: the last line
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        line = msg or self.format_meter(**self.format_dict)
        self._emit(line.strip())
        return msg != ""  # False on close: no carriage return after the last line

    def _emit(self, line: str) -> None:
        fp: IO[str] = self.fp
        fp.write(line + "\n")
        fp.flush()


class LogProgress(LineProgress):
    """Progress as INFO log lines (``dragoman serve --install``)."""

    def _emit(self, line: str) -> None:
        logger.info("%s", line)


def terminal_progress(stream: IO[str] | None = None) -> type[tqdm]:
    """tqdm's bar when ``stream`` (stderr) is a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    return tqdm if stream.isatty() else LineProgress
