"""Decoding-memory estimate: the model's shape is read from model.bin's headers, and a memory
cap shrinks batches (a sentence too large for the cap alone still decodes, alone)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from dragoman.server.batcher import Batcher, BatchingOptions
from dragoman.server.config import load_config
from dragoman.server.memory import FLOAT_BYTES, VOCAB_VECTORS, ModelShape, read_shape
from dragoman.server.seq2seq import DecodingOptions
from tests.support.randommodel import build_random_model
from tests.test_batcher import OPTIONS, WAIT, FakeModel, enc, start_blocked, wait_until


def test_shape_of_a_random_transformer(tmp_path: Path, sp_model: Path) -> None:
    out = build_random_model(tmp_path / "m", sp_model, layers=3, d_model=64, heads=2, ffn=128,
                             vocab_size=1000, max_positions=64)
    assert read_shape(out) == ModelShape(vocabulary=1000, decoder_layers=3, d_model=64)


def test_unreadable_model_gives_no_estimate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "model.bin").write_bytes(b"\x06\x00\x00\x00garbage")
    with caplog.at_level(logging.WARNING):
        assert read_shape(tmp_path) is None
    assert "decoding memory is not estimated" in caplog.text
    assert read_shape(tmp_path / "missing") is None


def test_batch_bytes_counts_hypotheses_vocabulary_and_caches() -> None:
    shape = ModelShape(vocabulary=1000, decoder_layers=2, d_model=8)
    one = FLOAT_BYTES * (VOCAB_VECTORS * 1000 + 2 * 2 * 8 * (10 + 10))
    assert shape.batch_bytes(1, 1, 10) == one
    assert shape.batch_bytes(3, 4, 10) == 12 * one
    assert shape.batch_bytes(2, 0, 10) == 2 * one  # greedy is one hypothesis per sentence


def per_sentence_cost(count: int, longest: int, options: DecodingOptions) -> int:
    return count * 100


def test_memory_cap_shrinks_batches() -> None:
    gated = FakeModel(gate=True)
    batcher = Batcher(gated, BatchingOptions(wait_ms=0.0, max_batch_bytes=250), cost=per_sentence_cost)
    (blocker,) = batcher.submit([enc("blocker")], OPTIONS)
    assert gated.started.wait(WAIT)
    futures = batcher.submit([enc(f"s{i}") for i in range(5)], OPTIONS)
    gated.release.set()
    for f in futures:
        f.result(WAIT)
    batcher.close(WAIT)
    assert [len(c) for c in gated.calls[1:]] == [2, 2, 1]


def test_a_sentence_over_the_cap_still_decodes_alone() -> None:
    model = FakeModel()
    batcher = Batcher(model, BatchingOptions(wait_ms=0.0, max_batch_bytes=50), cost=per_sentence_cost)
    futures = batcher.submit([enc("a"), enc("b")], OPTIONS)
    assert [f.result(WAIT) for f in futures] == [("a",), ("b",)]
    batcher.close(WAIT)
    assert [len(c) for c in model.calls] == [1, 1]


def test_no_cap_without_a_budget() -> None:
    gated = FakeModel(gate=True)
    batcher, _ = start_blocked(gated)
    futures = batcher.submit([enc(f"s{i}") for i in range(5)], OPTIONS)
    gated.release.set()
    for f in futures:
        f.result(WAIT)
    batcher.close(WAIT)
    assert [len(c) for c in gated.calls[1:]] == [5]


def test_config_splits_the_budget_between_replicas() -> None:
    config = load_config({"decode_memory_mb": 100, "inter_threads": 4}, env={})
    assert config.batching_options().max_batch_bytes == 25 * 1024 * 1024
    assert load_config({}, env={}).batching_options().max_batch_bytes == 0


def test_the_registry_caps_real_models_by_their_estimate(copy_store: Path, swapcase) -> None:  # type: ignore[no-untyped-def]
    from dragoman.server.cache import SentenceCache
    from dragoman.server.registry import ModelRegistry
    from dragoman.server.seq2seq import RuntimeOptions
    from dragoman.server.service import Dragoman, TranslateInput
    from dragoman.server.store import ModelStore
    from dragoman.server.text.segment import split_document

    text = "One short line. Another short line. A third one."
    for budget, calls in ((1, 3), (1 << 30, 1)):  # 1 byte: every sentence alone
        registry = ModelRegistry(ModelStore(copy_store), RuntimeOptions(intra_threads=1),
                                 BatchingOptions(wait_ms=20.0, max_batch_bytes=budget))
        service = Dragoman(registry, SentenceCache(max_entries=0))
        try:
            lm = registry.acquire("copy-en-de")
            assert lm.model.batch_bytes(1, 5, lm.model.default_options()) > 1
            out = service.translate(TranslateInput(text=text, target_language="de",
                                                   source_language="en")).result(30)
            doc = split_document(text, "en")
            assert out.text == doc.rebuild([swapcase(s) for s in doc.sentences])
            assert lm.batcher.stats.calls == calls
        finally:
            registry.close(10)


def size_cost(count: int, longest: int, options: DecodingOptions) -> int:
    return count * longest * 10


@pytest.mark.parametrize(("share", "overlaps"), [(100, False), (1000, True)])
def test_a_batch_over_its_share_waits_until_the_memory_in_flight_leaves_room(
    share: int, overlaps: bool
) -> None:
    # Two workers share 2 x share bytes. A 1-token sentence (10 bytes) is decoding and holds
    # the gate; a 20-token one (200 bytes) needs more than the 190 left under a 200-byte cap,
    # so it must wait for the first call to finish; with a 2,000-byte cap it runs at once.
    model = FakeModel(gate=True)
    batcher = Batcher(model, BatchingOptions(wait_ms=0.0, workers=2, max_batch_bytes=share),
                      cost=size_cost)
    (small,) = batcher.submit([enc("s")], OPTIONS)
    assert model.started.wait(WAIT)
    (big,) = batcher.submit([enc(*(f"b{i}" for i in range(20)))], OPTIONS)
    if overlaps:
        wait_until(lambda: len(model.calls) == 2)
    else:
        time.sleep(0.2)  # room to start, were the cap ignored
        assert len(model.calls) == 1
    model.release.set()
    assert small.result(WAIT) == ("s",)
    assert len(big.result(WAIT)) == 20
    batcher.close(WAIT)
    assert batcher._in_flight_bytes == 0
