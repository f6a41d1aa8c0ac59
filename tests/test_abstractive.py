"""Abstractive summaries through the real CTranslate2 path with a "lead" summariser.

The summariser is the tiny copy model installed as task "summarise" with
``generation.max_decoding_length = LEAD``: it "summarises" every chunk into its first LEAD
tokens, so what each pass produces is exactly predictable from its input.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from dragoman.server.batcher import Batcher, BatchingOptions
from dragoman.server.errors import DeadlineExceeded, InvalidInput
from dragoman.server.manifest import read_manifest
from dragoman.server.registry import LoadedModel
from dragoman.server.seq2seq import (
    DecodingOptions,
    Encoded,
    RuntimeOptions,
    Seq2SeqModel,
)
from dragoman.server.summarise.abstractive import (
    ELLIPSIS,
    final_options,
    fit_length,
    summarise_abstractive,
)
from dragoman.server.text.segment import split_sentences
from dragoman.server.text.words import count_words
from tests.conftest import install_copy_model
from tests.support.sentences import COPY_CORPUS
from tests.support.spmodels import train_sentencepiece

WINDOW = 128  # max_input_tokens of the lead model
LEAD = 32  # its max_decoding_length: every chunk becomes its first LEAD tokens
FIRST = "The city council approved the new budget on Tuesday evening."
# The English news lines at the head of the corpus (German ones follow).
ENGLISH = COPY_CORPUS[: COPY_CORPUS.index("Der Stadtrat hat am Dienstagabend den neuen Haushalt beschlossen.")]


def _article(paragraphs: int) -> str:
    """Paragraphs of five English news lines each, cycling through the corpus."""
    lines = [ENGLISH[i % len(ENGLISH)] for i in range(paragraphs * 5)]
    return "\n\n".join(" ".join(lines[p * 5:(p + 1) * 5]) for p in range(paragraphs))


@pytest.fixture(scope="module")
def lead_model(tmp_path_factory: pytest.TempPathFactory) -> Seq2SeqModel:
    sp = train_sentencepiece(COPY_CORPUS, tmp_path_factory.mktemp("sp-lead") / "lead", vocab_size=2000)
    store = tmp_path_factory.mktemp("lead-store") / "models"
    path = install_copy_model(
        store, sp, "lead-en", "en", "en", swap=False, max_input_tokens=WINDOW,
        task="summarise", max_decoding_length=LEAD,
    )
    manifest = read_manifest(path)
    manifest = replace(manifest, generation=replace(manifest.generation, beam_size=1))
    return Seq2SeqModel(path, manifest, RuntimeOptions(compute_type="int8"))


@dataclass
class _Call:
    items: list[Encoded]
    options: DecodingOptions
    futures: list[Future[tuple[str, ...]]] = field(default_factory=list)


class SpyBatcher(Batcher):
    """A real batcher that records every submission (one per pass is expected)."""

    def __init__(self, model: object) -> None:
        # One batch holds a whole pass of these test articles, so a pass is decoding (not
        # partly queued) once its first batch starts.
        super().__init__(model, BatchingOptions(wait_ms=0, max_batch_tokens=4096))  # type: ignore[arg-type]
        self.calls: list[_Call] = []

    def submit(self, items: Sequence[Encoded], options: DecodingOptions, deadline: float | None = None,
               **more: Any) -> list[Future[tuple[str, ...]]]:
        call = _Call(list(items), options)
        self.calls.append(call)
        call.futures = super().submit(items, options, deadline, **more)
        return call.futures


@pytest.fixture
def batcher(lead_model: Seq2SeqModel):  # type: ignore[no-untyped-def]
    spy = SpyBatcher(lead_model)
    yield spy
    spy.close(5)


def _chunk_texts(model: Seq2SeqModel, call: _Call) -> list[str]:
    return [model.decode(item.source) for item in call.items]


def _consumes(chunks: list[str], sentences: list[str]) -> list[int]:
    """How many whole sentences each chunk holds; fails if a chunk cuts a sentence."""
    sizes, i = [], 0
    for chunk in chunks:
        n = 0
        while i + n < len(sentences) and " ".join(sentences[i:i + n + 1]) != chunk:
            n += 1
            assert " ".join(sentences[i:i + n]) in chunk, f"chunk {chunk!r} is not whole sentences"
        assert i + n < len(sentences), f"chunk {chunk!r} does not end at a sentence boundary"
        sizes.append(n + 1)
        i += n + 1
    assert i == len(sentences), "some sentences were never summarised"
    return sizes


def _sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text, "en")]


# -- the long article ------------------------------------------------------------------------


def test_long_article_is_summarised_in_several_sentence_aligned_passes(
    lead_model: Seq2SeqModel, batcher: SpyBatcher,
) -> None:
    article = _article(40)
    assert len(lead_model.tokenize(article)) > 20 * WINDOW
    result = summarise_abstractive(LoadedModel(lead_model, batcher), article, "en", 0, 0, None).result(60)

    assert result.passes > 1
    assert result.passes == len(batcher.calls)
    # One submission per pass holding every chunk of that pass, map passes first.
    pass_input = _sentences(article)
    for number, call in enumerate(batcher.calls, start=1):
        chunks = _chunk_texts(lead_model, call)
        sizes = _consumes(chunks, pass_input)
        last = number == len(batcher.calls)
        assert (len(chunks) == 1) == last
        for chunk, size in zip(chunks, sizes):
            assert lead_model.fits(chunk)
        # Greedy packing: the next sentence would not have fitted in the chunk.
        start = 0
        for chunk, size in zip(chunks[:-1], sizes[:-1]):
            start += size
            assert not lead_model.fits(chunk + " " + pass_input[start])
        assert call.options.max_decoding_length == LEAD
        outputs = [f.result() for f in call.futures]
        assert all(len(o) <= LEAD for o in outputs)
        # The lead summariser: every output is the first LEAD pieces of its chunk.
        assert [list(o) for o in outputs] == [list(i.source[:LEAD]) for i in call.items]
        pass_input = _sentences(" ".join(lead_model.decode(o).strip() for o in outputs))
    # The final text is the lead of the lead of ...: the article's opening.
    assert result.summary.startswith(FIRST)
    assert result.summary == lead_model.decode(batcher.calls[-1].items[0].source[:LEAD]).strip()
    assert result.sentences == len(_sentences(result.summary))


def test_short_article_takes_one_pass(lead_model: Seq2SeqModel, batcher: SpyBatcher) -> None:
    article = " ".join(ENGLISH[:3])
    assert lead_model.fits(article)
    result = summarise_abstractive(LoadedModel(lead_model, batcher), article, "en", 0, 0, None).result(30)
    assert result.passes == 1
    assert [len(c.items) for c in batcher.calls] == [1]
    assert result.summary == lead_model.decode(lead_model.encode(article, "en", "en").source[:LEAD]).strip()
    assert result.summary.startswith(FIRST)


def test_only_a_sentence_longer_than_the_window_is_split(
    lead_model: Seq2SeqModel, batcher: SpyBatcher,
) -> None:
    words = ["the council", "the farmers", "the museum", "the police", "the festival", "the bank", "the school", "the airport", "the hospital"]
    giant = "Yesterday " + ", ".join(words * 8) + " all met in the square."
    assert not lead_model.fits(giant)
    before, after = ENGLISH[1], ENGLISH[2]
    article = f"{before} {giant} {after}"
    assert _sentences(article) == [before, giant, after]
    summarise_abstractive(LoadedModel(lead_model, batcher), article, "en", 0, 0, None).result(30)

    chunks = _chunk_texts(lead_model, batcher.calls[0])
    assert chunks[0] == before and chunks[-1] == after
    pieces = chunks[1:-1]
    assert len(pieces) >= 2
    assert " ".join(pieces) == giant
    assert all(lead_model.fits(p) for p in pieces)
    # Cuts fall after clause punctuation, never inside a word.
    assert all(p.endswith(",") or p == pieces[-1] for p in pieces)


# -- length limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_sentences", "max_words", "expected"),
    [
        (1, 0, FIRST),
        (0, 12, FIRST),  # 10 words; the second sentence would pass 12
        (0, 5, "The city council approved the" + ELLIPSIS),  # first sentence alone too long
        (2, 100, None),  # within both limits: the model's text, uncut
    ],
)
def test_length_limits_are_exact_on_the_final_text(
    lead_model: Seq2SeqModel, batcher: SpyBatcher,
    max_sentences: int, max_words: int, expected: str | None,
) -> None:
    article = _article(12)
    result = summarise_abstractive(LoadedModel(lead_model, batcher), article, "en", max_sentences, max_words, None).result(60)
    assert result.passes > 1
    if expected is None:
        final = batcher.calls[-1]
        expected = lead_model.decode(final.futures[0].result()).strip()
        assert len(_sentences(expected)) <= max_sentences and count_words(expected) <= max_words
    assert result.summary == expected
    if max_sentences:
        assert result.sentences <= max_sentences
    if max_words:
        assert count_words(result.summary.rstrip(ELLIPSIS)) <= max_words


def test_word_limit_sets_the_final_decoding_length(lead_model: Seq2SeqModel, batcher: SpyBatcher) -> None:
    article = " ".join(ENGLISH[:3])
    summarise_abstractive(LoadedModel(lead_model, batcher), article, "en", 0, 4, None).result(30)
    (call,) = batcher.calls
    tokens = sum(len(lead_model.tokenize(s)) for s in _sentences(article))
    ratio = tokens / count_words(article)
    assert call.options.max_decoding_length == math.ceil(4 * ratio * 1.2) + 2 < LEAD
    assert call.options.min_decoding_length == 1


def test_final_options_map_limits_to_tokens_and_cap_at_the_model_length(lead_model: Seq2SeqModel) -> None:
    assert final_options(lead_model, 0, 10, 1.5).max_decoding_length == 20  # ceil(10*1.5*1.2)+2
    assert final_options(lead_model, 0, 1000, 1.5).max_decoding_length == LEAD
    assert final_options(lead_model, 1, 0, 1.0).max_decoding_length == LEAD  # 25 words*1.2+2 > 32
    opts = final_options(lead_model, 0, 3, 1.0)
    assert opts.max_decoding_length == 6 and 1 <= opts.min_decoding_length <= 3


def test_fit_length_keeps_the_model_text_and_cuts_only_at_sentence_ends() -> None:
    text = "  First one here.  Second  one follows.\nThird line ends it.  "
    assert fit_length(text, "en", 0, 0) == text.strip()
    assert fit_length(text, "en", 3, 11) == text.strip()
    assert fit_length(text, "en", 2, 0) == "First one here.  Second  one follows."
    assert fit_length(text, "en", 0, 6) == "First one here.  Second  one follows."
    assert fit_length(text, "en", 0, 2) == "First one" + ELLIPSIS
    # Unspaced scripts: two characters count as one word, as in the extractive summariser.
    zh = "今天天气很好。我们去公园散步。"
    assert fit_length(zh, "zh", 0, 4) == "今天天气很好。"
    assert fit_length(zh, "zh", 0, 2) == "今天天气" + ELLIPSIS


# -- guards ----------------------------------------------------------------------------------


class _NoShrink:
    """A generator that copies whole chunks whatever the decoding length: it never condenses."""

    def __init__(self, model: Seq2SeqModel) -> None:
        self.model = model
        self.name = model.name

    def generate(self, batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
        return self.model.generate(batch, replace(options, max_decoding_length=4 * WINDOW))


def test_a_pass_that_does_not_shrink_stops_with_a_clear_error(lead_model: Seq2SeqModel) -> None:
    spy = SpyBatcher(_NoShrink(lead_model))
    try:
        fut = summarise_abstractive(LoadedModel(lead_model, spy), _article(6), "en", 0, 0, None)
        with pytest.raises(InvalidInput, match=r"did not shorten the text in pass 1"):
            fut.result(30)
        assert len(spy.calls) == 1
    finally:
        spy.close(5)


def test_pass_count_is_bounded(lead_model: Seq2SeqModel, batcher: SpyBatcher) -> None:
    article = _article(40)
    fut = summarise_abstractive(LoadedModel(lead_model, batcher), article, "en", 0, 0, None, max_passes=2)
    with pytest.raises(InvalidInput, match=r"within 2 passes; use the extractive method"):
        fut.result(30)
    assert len(batcher.calls) == 1  # the bound is known before a pass that could not finish


def test_negative_limits_and_empty_text_are_refused(lead_model: Seq2SeqModel, batcher: SpyBatcher) -> None:
    with pytest.raises(InvalidInput, match="must not be negative"):
        summarise_abstractive(LoadedModel(lead_model, batcher), FIRST, "en", -1, 0, None)
    with pytest.raises(InvalidInput, match="no sentences"):
        summarise_abstractive(LoadedModel(lead_model, batcher), " \n\n ", "en", 0, 0, None)
    assert batcher.calls == []


# -- deadlines and cancellation ---------------------------------------------------------------


class _Gated:
    """Delegates to the model, holding each batch until ``release`` is set."""

    def __init__(self, model: Seq2SeqModel) -> None:
        self.model = model
        self.name = model.name
        self.started = threading.Event()
        self.release = threading.Event()

    def generate(self, batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
        self.started.set()
        self.release.wait(10)
        return self.model.generate(batch, options)


def test_deadline_passing_in_a_pass_stops_before_the_next(lead_model: Seq2SeqModel) -> None:
    gated = _Gated(lead_model)
    spy = SpyBatcher(gated)
    try:
        deadline = time.monotonic() + 0.5
        fut = summarise_abstractive(LoadedModel(lead_model, spy), _article(12), "en", 0, 0, deadline)
        assert gated.started.wait(5)  # pass 1 was taken in time and is decoding
        time.sleep(max(0.0, deadline - time.monotonic()) + 0.05)
        gated.release.set()
        with pytest.raises(DeadlineExceeded, match="between summarisation passes"):
            fut.result(30)
        assert len(spy.calls) == 1
    finally:
        gated.release.set()
        spy.close(5)


def test_deadline_already_passed_is_refused_at_once(lead_model: Seq2SeqModel, batcher: SpyBatcher) -> None:
    with pytest.raises(DeadlineExceeded):
        summarise_abstractive(LoadedModel(lead_model, batcher), _article(2), "en", 0, 0, time.monotonic() - 1)
    assert batcher.calls == []


def test_deadline_passing_in_the_queue_fails_the_summary(lead_model: Seq2SeqModel) -> None:
    gated = _Gated(lead_model)
    spy = SpyBatcher(gated)
    try:
        blocker = spy.submit([lead_model.encode("Blocker.", "en", "en")], DecodingOptions(beam_size=2))
        assert gated.started.wait(5)
        deadline = time.monotonic() + 0.5
        fut = summarise_abstractive(LoadedModel(lead_model, spy), _article(12), "en", 0, 0, deadline)
        time.sleep(max(0.0, deadline - time.monotonic()) + 0.05)  # queued behind the blocker
        gated.release.set()
        with pytest.raises(DeadlineExceeded, match="while the text was queued"):
            fut.result(30)
        blocker[0].result(10)
        assert spy.stats.expired >= 1
    finally:
        gated.release.set()
        spy.close(5)


def test_cancel_drops_queued_chunks_and_starts_no_further_pass(lead_model: Seq2SeqModel) -> None:
    gated = _Gated(lead_model)
    spy = SpyBatcher(gated)
    try:
        blocker = spy.submit([lead_model.encode("Blocker.", "en", "en")], DecodingOptions(beam_size=2))
        assert gated.started.wait(5)
        fut = summarise_abstractive(LoadedModel(lead_model, spy), _article(12), "en", 0, 0, None)
        chunks = len(spy.calls[1].items)
        assert chunks > 1
        assert fut.cancel()
        assert all(f.cancelled() for f in spy.calls[1].futures)
        gated.release.set()
        blocker[0].result(10)
        spy.close(5)
        assert len(spy.calls) == 2  # the blocker and the first pass; no second pass
        assert spy.stats.cancelled == chunks
        with pytest.raises(CancelledError):
            fut.result(1)
    finally:
        gated.release.set()
        spy.close(5)


def test_cancelling_between_passes_reports_cancelled(lead_model: Seq2SeqModel) -> None:
    """A pass finishing after its caller went away starts nothing new."""
    gated = _Gated(lead_model)
    spy = SpyBatcher(gated)
    try:
        fut = summarise_abstractive(LoadedModel(lead_model, spy), _article(12), "en", 0, 0, None)
        assert gated.started.wait(5)  # the first pass is decoding
        fut.cancel()
        gated.release.set()
        spy.close(5)  # the worker has delivered the pass and run every callback
        assert len(spy.calls) == 1
        assert fut.cancelled()
    finally:
        gated.release.set()
        spy.close(5)
