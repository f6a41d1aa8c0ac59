"""Hold a loaded model's decoding until the test lets it go: the way tests put work in the
queue behind a batch that is being decoded, without timing."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dragoman.server.seq2seq import DecodingOptions, Encoded


@dataclass
class Gate:
    """``started`` is set when a batch reaches the model; it decodes once ``release`` is set.
    ``decoded`` records the source text of every sentence the model was given."""

    decoded: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def hold_decoding(loaded: Any, wait: float) -> Gate:
    """Patch ``loaded.model.generate`` (a registry's LoadedModel) to wait at the gate."""
    model, real = loaded.model, loaded.model.generate
    gate = Gate()

    def generate(batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
        gate.decoded.extend(model.decode(e.source) for e in batch)
        gate.started.set()
        assert gate.release.wait(wait)
        return real(batch, options)

    model.generate = generate
    return gate
