"""The same sentence gives the same tokens whatever shares its CTranslate2 batch.

A model that never emits ``</s>`` runs every output to the decoding length cap; when the cap
was set per batch (2 x the longest source + 16), a short sentence decoded beside a long one
from another client came back longer. Caps are per sentence now.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sentencepiece as spm

from dragoman.server.batcher import Batcher, BatchingOptions
from dragoman.server.manifest import Manifest, Tokenizer, write_manifest
from dragoman.server.seq2seq import (
    DecodingOptions,
    Encoded,
    RuntimeOptions,
    Seq2SeqModel,
    decoding_cap,
)
from tests.support.randommodel import build_random_model

WAIT = 30.0
SHORT = "the council approved the budget"
LONG = [  # each over 120 tokens: a cap of its own above the short sentence's (MIN_CAP)
    4 * "the minister said that prices rose again in the spring and the council approved a new "
    "budget for the schools, the hospitals and the roads of the northern districts ",
    4 * "after a long debate about jobs and clean air the city decided to close the old coal "
    "power station on the northern pier three years ahead of schedule ",
]


@pytest.fixture(scope="module")
def runaway(tmp_path_factory: pytest.TempPathFactory, sp_model: Path) -> Iterator[Seq2SeqModel]:
    """A small random model that never emits </s>."""
    folder = build_random_model(
        tmp_path_factory.mktemp("runaway") / "m", sp_model, layers=2, d_model=128, heads=2,
        ffn=256, quantization="float32", max_positions=512, ends=False,
    )
    shutil.copy2(sp_model, folder / "sentencepiece.model")
    manifest = Manifest(
        "runaway", "translate", ("en",), ("de",),
        tokenizer=Tokenizer("sentencepiece", "sentencepiece.model", "sentencepiece.model"),
        max_input_tokens=300, max_output_tokens=512,
    )
    write_manifest(folder, manifest)
    yield Seq2SeqModel(folder, manifest, RuntimeOptions(compute_type="float32", intra_threads=1))


def _encode(model: Seq2SeqModel, text: str) -> Encoded:
    return model.encode(text, "en", "de")


@pytest.mark.parametrize("beam", [1, 2, 4])
def test_same_tokens_alone_and_beside_long_sentences(runaway: Seq2SeqModel, beam: int) -> None:
    options = runaway.default_options(beam_size=beam)
    short = _encode(runaway, SHORT)
    (alone,) = runaway.generate([short], options)
    mixed = runaway.generate([_encode(runaway, LONG[0]), short, _encode(runaway, LONG[1])], options)
    assert mixed[1] == alone
    # The output ran to the short sentence's own cap, not the batch's.
    assert len(alone) == decoding_cap(short, options, runaway.manifest.max_output_tokens)
    assert len(mixed[0]) > len(alone)


def test_cap_is_a_function_of_the_sentence_only() -> None:
    options = DecodingOptions(beam_size=2)
    a = Encoded(tuple("x" * 10))
    b = Encoded(tuple("x" * 60))
    assert decoding_cap(a, options, 0) == decoding_cap(Encoded(tuple("y" * 10)), options, 0)
    assert decoding_cap(a, options, 0) >= 2 * 10 + 16
    assert decoding_cap(b, options, 0) >= 2 * 60 + 16
    # The model's position table still bounds it, minus the target prefix.
    assert decoding_cap(b, options, 64) == 63
    assert decoding_cap(Encoded(b.source, ("<de>",)), options, 64) == 62
    # An explicit setting wins and is the same for every sentence.
    fixed = DecodingOptions(beam_size=2, max_decoding_length=40)
    assert decoding_cap(a, fixed, 0) == decoding_cap(b, fixed, 0) == 40


class _Gated:
    """The real model behind a gate, so a test can queue sentences behind a blocker call."""

    def __init__(self, model: Seq2SeqModel) -> None:
        self.model = model
        self.name = model.name
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls: list[int] = []

    def generate(self, batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
        self.calls.append(len(batch))
        self.started.set()
        assert self.release.wait(WAIT)
        return self.model.generate(batch, options)


def test_same_request_same_output_beside_other_clients(runaway: Seq2SeqModel) -> None:
    options = runaway.default_options(beam_size=2)
    gated = _Gated(runaway)
    gated.release.set()
    batcher = Batcher(gated, BatchingOptions(max_batch_tokens=2048, wait_ms=0.0, workers=1))  # type: ignore[arg-type]
    try:
        (alone,) = batcher.submit([_encode(runaway, SHORT)], options)
        expected = alone.result(WAIT)
        gated.release.clear()
        gated.started.clear()
        (blocker,) = batcher.submit([_encode(runaway, "blocker")], options)
        assert gated.started.wait(WAIT)
        # Two other clients' long sentences and ours queue behind the blocker...
        others = [batcher.submit([_encode(runaway, text)], options)[0] for text in LONG]
        (ours,) = batcher.submit([_encode(runaway, SHORT)], options)
        gated.release.set()
        assert ours.result(WAIT) == expected
        blocker.result(WAIT)
        for future in others:
            future.result(WAIT)
        # ...and were decoded in one call with them.
        assert gated.calls[-1] == 3
    finally:
        gated.release.set()
        batcher.close(WAIT)


def test_decoded_text_is_the_same(runaway: Seq2SeqModel, sp_model: Path) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    options = runaway.default_options(beam_size=2)
    short = _encode(runaway, SHORT)
    alone = runaway.decode(runaway.generate([short], options)[0])
    mixed = runaway.generate([_encode(runaway, LONG[1]), short], options)
    assert runaway.decode(mixed[1]) == alone
    assert sp.encode(alone)  # not empty: the model really produced text
