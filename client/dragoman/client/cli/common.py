"""Helpers shared by the CLI's command modules: input/output, errors, the client, tables.

A command handler takes the parsed `argparse.Namespace` and returns an exit code. It reports
problems by raising: `UsageError` (exit 2) for the user's mistakes, `CliError` (exit 1) for other
failures, or any `DragomanError` from the client; `main` turns them into one stderr line.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dragoman.client.api import ADDRESS_ENV, Client, resolve_address
from dragoman.client.errors import (
    DeadlineExceeded,
    DragomanError,
    InvalidArgument,
    NotFound,
    Unavailable,
)

PROG = "dragoman"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
STDIN = "-"

_FORMAT_BY_SUFFIX = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown"}


# The client (dragoman-client) installs without the server (dragoman); the commands that run
# models or manage this machine's stores need both.
SERVER_INSTALL = "pip install dragoman (from a checkout of the repository: pip install ./client .)"


def server_installed() -> bool:
    """Whether the server distribution (dragoman.server) can be imported here."""
    try:
        return importlib.util.find_spec("dragoman.server") is not None
    except (ImportError, ValueError):
        return False


def server_missing(what: str) -> str:
    """The one-line error for a command that needs the server distribution."""
    return (f"{what} needs the Dragoman server, and only the client is installed here: "
            f"{SERVER_INSTALL}")


class CliError(Exception):
    """A failure to report as one line; `exit_code` 1 unless a subclass says otherwise."""

    exit_code = EXIT_FAILURE


class UsageError(CliError):
    """The user's mistake: a bad flag, an unreadable input, an unwritable output."""

    exit_code = EXIT_USAGE


def one_line(message: str) -> str:
    """Collapse whitespace so an error is exactly one line however the server phrased it."""
    return " ".join(message.split())


def report_error(message: str) -> None:
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr, flush=True)


def exit_code_for(error: DragomanError) -> int:
    """Rejected requests are the user's to fix (2); everything else is a failure (1)."""
    return EXIT_USAGE if isinstance(error, (InvalidArgument, NotFound)) else EXIT_FAILURE


def describe_error(error: DragomanError, address: str, timeout: float | None = None,
                   *, local: bool = False) -> str:
    """One line for a client error, naming the server when the problem is reaching it;
    ``local``: the command also runs without a server (--local), so the hint offers that."""
    details = error.details or error.code
    if isinstance(error, Unavailable):
        hint = ""
        if "connect" in details.lower():  # nothing listens there (not: overloaded, stopping)
            instead = ", or run the models in this process with --local" if local else ""
            hint = (f" (is a server running? start one with `{PROG} serve`, point --server "
                    f"or ${ADDRESS_ENV} at yours{instead})")
        return f"server {address} unavailable: {details}{hint}"
    if isinstance(error, DeadlineExceeded):
        after = f" within {timeout:g} s" if timeout else ""
        return f"no answer from {address}{after} (see --timeout): {details}"
    if isinstance(error, (InvalidArgument, NotFound)):
        return details
    return f"{details} ({error.code})"


def _int_at_least(value: str, minimum: int, rule: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < minimum:
        raise argparse.ArgumentTypeError(f"{rule}, got {number}")
    return number


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(value, 1, "must be at least 1")


def non_negative_int(value: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(value, 0, "must not be negative")


def positive_float(value: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return number


def client_security(args: argparse.Namespace) -> dict[str, Any]:
    """Client keyword arguments from the global --api-key/--tls* flags that were given (the
    client falls back to the environment for the others)."""
    given = {
        "api_key": getattr(args, "api_key", None),
        "tls": getattr(args, "tls", None) or None,
        "tls_ca": getattr(args, "tls_ca", None),
        "tls_cert": getattr(args, "client_tls_cert", None),
        "tls_key": getattr(args, "client_tls_key", None),
    }
    return {name: value for name, value in given.items() if value is not None}


def make_client(args: argparse.Namespace) -> Client:
    """A client for the global --server/--timeout/--api-key/--tls* flags (each falling back
    to env, then default)."""
    return Client(
        getattr(args, "server", None),
        timeout=getattr(args, "timeout", None),
        **client_security(args),
    )


def server_address(args: argparse.Namespace) -> str:
    return resolve_address(getattr(args, "server", None))


def infer_format(path: str | None, explicit: str | None) -> str:
    """--format if given, else from the file suffix (.html/.htm, .md/.markdown), else plain."""
    if explicit:
        return explicit
    if path and path != STDIN:
        return _FORMAT_BY_SUFFIX.get(Path(path).suffix.lower(), "plain")
    return "plain"


def read_input(path: str | None) -> str:
    """The text of FILE, or of stdin for "-" or no FILE; UTF-8 (a BOM is dropped)."""
    if path is None or path == STDIN:
        if path is None and sys.stdin.isatty():
            raise UsageError("no input: give a FILE, or '-' to type the text, or pipe it on stdin")
        data = sys.stdin.buffer.read()
        name = "stdin"
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
        name = path
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(f"{name} is not UTF-8 text (byte {error.start})") from None


def write_output(text: str, path: str | None) -> None:
    """Write to FILE atomically, or to stdout ("-" or None) ending with a newline."""
    if path is None or path == STDIN:
        if not text.endswith("\n"):
            text += "\n"
        stream = getattr(sys.stdout, "buffer", None)
        if stream is None:
            sys.stdout.write(text)
        else:
            sys.stdout.flush()
            _write_all(stream, text.encode("utf-8"))
        sys.stdout.flush()
        return
    write_atomic(Path(path), text.encode("utf-8"))


def _write_all(stream: Any, data: bytes) -> None:
    """Write every byte: a buffered write can return short (e.g. when a pipe's reader leaves
    mid-write) without raising; writing the rest then raises BrokenPipeError as it should."""
    view = memoryview(data)
    while view:
        written = stream.write(view)
        if not written:
            raise OSError(f"could not write to {getattr(stream, 'name', 'output')}")
        view = view[written:]


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` in one rename, so readers never see half a file and a failure leaves none.

    The file gets the mode of the file it replaces, or the usual umask-based mode when new.
    """
    directory = path.parent
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        handle = tempfile.NamedTemporaryFile(
            dir=directory, prefix=f".{path.name}.", suffix=".tmp", delete=False
        )
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None
    temp = Path(handle.name)
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise UsageError(f"cannot write {path}: {error.strerror or error}") from None
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def to_json(result: Any) -> str:
    """Pretty JSON of a result dataclass (or plain data), keeping non-ASCII text readable."""
    is_instance = dataclasses.is_dataclass(result) and not isinstance(result, type)
    data = dataclasses.asdict(result) if is_instance else result
    return json.dumps(data, ensure_ascii=False, indent=2)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; no trailing blanks."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [list(headers), *rows]
    ]
    return "\n".join(lines)
