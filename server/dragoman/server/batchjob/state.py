"""The small state file that says how far a job got (``OUTPUT.state.json``).

It is replaced atomically (write a temporary file, fsync, rename, fsync the folder), only
after the output files it describes have been fsynced, so after a crash at any instant it
describes a prefix of the work that really is on disk. The fingerprint ties it to one job:
the same input, task and options; a different command must not resume it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from dragoman.server.atomicfile import write_atomic
from dragoman.server.errors import InvalidInput

STATE_VERSION = 1


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state.json")


@dataclass(frozen=True)
class Checkpoint:
    """Everything committed so far; documents ``0 .. committed-1`` are in the output."""

    fingerprint: dict[str, Any]
    committed: int = 0
    last_key: str | None = None
    done: int = 0
    failed: int = 0
    chars: int = 0
    output: dict[str, Any] | None = None
    errors_bytes: int = 0
    # Every input document is committed; only moving the output into place may be left.
    finished: bool = False
    # The output is in place: rerunning the job has nothing to do.
    complete: bool = False
    version: int = STATE_VERSION

    def advance(self, **changes: Any) -> Checkpoint:
        return replace(self, **changes)


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Checkpoint | None:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise ValueError("unknown layout")
            return Checkpoint(**data)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"{self.path} is not a state file of this version of dragoman ({exc}); "
                "start over with --restart"
            ) from None

    def save(self, checkpoint: Checkpoint) -> None:
        data = json.dumps(asdict(checkpoint), ensure_ascii=False, indent=1, sort_keys=True)
        write_atomic(self.path, (data + "\n").encode("utf-8"))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
