"""The comparison modes: "paragraph" decodes each paragraph of a request in its own call (the
Argos Translate way), "request" each request; both translate exactly like "dynamic"."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from dragoman.server.batcher import BatchingOptions
from dragoman.server.cache import SentenceCache
from dragoman.server.registry import ModelRegistry
from dragoman.server.seq2seq import DecodingOptions, Encoded, RuntimeOptions
from dragoman.server.service import Dragoman, TranslateInput
from dragoman.server.store import ModelStore
from dragoman.server.text.segment import split_document

TEXT = "First one here. Second one here.\nThird one here.\n\nFourth one. Fifth one. First one here."


def translate_counting_calls(store: Path, mode: str, text: str) -> tuple[str, list[int]]:
    registry = ModelRegistry(ModelStore(store), RuntimeOptions(intra_threads=1),
                             BatchingOptions(wait_ms=0.0, mode=mode))
    service = Dragoman(registry, SentenceCache(max_entries=0))
    model = registry.acquire("copy-en-de").model
    sizes: list[int] = []
    real = model.generate

    def generate(batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
        sizes.append(len(batch))
        return real(batch, options)

    model.generate = generate  # type: ignore[method-assign]
    try:
        req = TranslateInput(text=text, target_language="de", source_language="en")
        return service.translate(req).result(30).text, sizes
    finally:
        registry.close(10)


@pytest.mark.parametrize(("mode", "calls"), [
    ("dynamic", [5]),  # the repeated sentence is decoded once
    ("request", [5]),
    ("paragraph", [2, 1, 2]),
])
def test_modes_split_calls_and_translate_alike(copy_store: Path, swapcase, mode: str,
                                               calls: list[int]) -> None:  # type: ignore[no-untyped-def]
    text, sizes = translate_counting_calls(copy_store, mode, TEXT)
    doc = split_document(TEXT, "en")
    assert text == doc.rebuild([swapcase(s) for s in doc.sentences])
    assert sorted(sizes) == sorted(calls)
