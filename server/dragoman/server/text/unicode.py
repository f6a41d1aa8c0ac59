"""Is a string valid Unicode text? JSON and Python strings may hold lone surrogates
(``"\\ud800"``), which no encoder (UTF-8, protobuf, SentencePiece) accepts; finding them up
front turns a crash deep in a library into a clear per-document error."""

from __future__ import annotations


def unicode_problem(text: str, what: str = "text") -> str | None:
    """Why ``text`` cannot be encoded as UTF-8, or None when it can."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = text[exc.start]
        return (f"{what} is not valid Unicode: a lone surrogate \\u{ord(char):04x} at character "
                f"{exc.start} (fix the source record)")
    return None
