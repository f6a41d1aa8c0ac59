"""Replacing a file in one step: readers see the old file or the new one, never half of one,
and after a crash (power loss included) the new one is either whole or absent.

The recipe (temporary file in the same folder, fsync, rename, fsync the folder) was written
out by the batch state file, the Ray engine, the output writers and the model manifest; it
lives here once.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_path(path: Path) -> Path:
    """A hidden name next to ``path``, unique to this call (so concurrent writers, e.g. two
    Ray actors retrying one block, never share a temporary file)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def commit(temp: Path, path: Path) -> None:
    """Make the finished file ``temp`` durable and rename it to ``path``."""
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (see the module docstring)."""
    temp = temporary_path(path)
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
