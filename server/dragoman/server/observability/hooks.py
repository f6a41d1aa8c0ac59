"""What the model layer reports, as a protocol: the batcher and the registry call an observer
when they have one, and know nothing of Prometheus or tracing."""

from __future__ import annotations

from typing import Protocol


class ModelObserver(Protocol):
    def batch_done(self, model: str, sentences: int, source_tokens: int, padded_tokens: int,
                   output_tokens: int, seconds: float) -> None:
        """One ``generate`` call finished (``padded_tokens``: sentences x longest source)."""

    def model_loaded(self, model: str, seconds: float) -> None:
        """A model was loaded into memory (first use, preload, or again after an unload)."""
