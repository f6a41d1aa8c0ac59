"""Abstractive summaries through a CTranslate2 seq2seq summariser, map-reduce for long articles.

A summariser reads at most ``manifest.max_input_tokens`` tokens, and cutting the rest away
would silently drop most of a long article. So an article that does not fit is cut into
sentence-aligned chunks that do (a sentence is only split when it alone is too long), every
chunk of a pass is summarised in one batcher submission (one CTranslate2 batch, shared with
other requests), the partial summaries are joined and the loop repeats until the joined text
fits the window; a final pass then writes the summary at the requested length.

Length control: ``max_words`` / ``max_sentences`` become the final pass's
``max_decoding_length`` (words x the article's measured tokens-per-word, with 20 % slack so the
model can finish its sentence; sentences x :data:`WORDS_PER_SENTENCE`), capped by the model's
own default length. Models do not count words, so the limits are then enforced exactly on the
decoded text by keeping whole leading sentences (words counted by
:func:`dragoman.server.text.words.count_words`, like the extractive summariser); only when the
very first sentence alone is longer than ``max_words`` is it cut at a word boundary and marked
with "…". Nothing is cut
when the model stays within the limits.

Everything after the first submission runs in future callbacks: no thread waits for a pass.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace

from dragoman.server.batcher import Priority
from dragoman.server.errors import DeadlineExceeded, InvalidInput
from dragoman.server.futures import chain, then
from dragoman.server.registry import LoadedModel
from dragoman.server.seq2seq import DecodingOptions, Seq2SeqModel
from dragoman.server.text.segment import joiner, split_sentences, split_to_fit
from dragoman.server.text.words import count_words

logger = logging.getLogger(__name__)

# Upper bound on model passes (map passes + the final pass) for one article. Each map pass
# shrinks the text several times over, so real articles need 2-3; the bound only stops a
# model that condenses too little from going round for a long time.
MAX_PASSES = 8
# News sentences average roughly this many words; turns max_sentences into a token budget.
WORDS_PER_SENTENCE = 25
# Slack on the word-derived token budget so the model can end its last sentence.
LENGTH_SLACK = 1.2
# Bounds on the measured tokens-per-word ratio (guards against odd texts, e.g. all numbers).
MIN_TOKENS_PER_WORD, MAX_TOKENS_PER_WORD = 0.5, 4.0
ELLIPSIS = "…"


@dataclass(frozen=True)
class AbstractiveResult:
    summary: str
    passes: int
    sentences: int


@dataclass(frozen=True)
class _Plan:
    """Per-call constants shared by every pass."""

    loaded: LoadedModel
    language: str
    glue: str
    map_options: DecodingOptions
    final_options: DecodingOptions
    max_sentences: int
    max_words: int
    deadline: float | None
    max_passes: int
    priority: int = Priority.INTERACTIVE

    @property
    def model(self) -> Seq2SeqModel:
        return self.loaded.model


def summarise_abstractive(
    loaded: LoadedModel,
    text: str,
    language: str,
    max_sentences: int,
    max_words: int,
    deadline: float | None,
    max_passes: int = MAX_PASSES,
    priority: int = Priority.INTERACTIVE,
) -> Future[AbstractiveResult]:
    """Summarise ``text`` with the ``loaded`` model; limits of 0 mean "no limit".

    ``deadline`` is a ``time.monotonic()`` instant; ``priority`` the batcher's class for the
    chunks. Cancelling the returned future drops the
    queued chunks of the pass in progress and starts no further pass. Raises (or fails the
    future with) :class:`InvalidInput` for text without sentences or a model that does not
    condense the text, and :class:`DeadlineExceeded` when the deadline passes between passes.
    """
    if max_sentences < 0 or max_words < 0:
        raise InvalidInput("max_sentences and max_words must not be negative")
    if max_passes < 1:
        raise ValueError("max_passes must be at least 1")
    sentences = _sentences(text, language)
    if not sentences:
        raise InvalidInput("the text has no sentences to summarise")
    model = loaded.model
    counts = [len(model.tokenize(s)) for s in sentences]
    words = sum(count_words(s) for s in sentences)
    tokens = _size(counts, _prefix_tokens(model))
    ratio = min(max(tokens / max(words, 1), MIN_TOKENS_PER_WORD), MAX_TOKENS_PER_WORD)
    plan = _Plan(
        loaded=loaded,
        language=language,
        glue=joiner(language),
        map_options=map_options(model),
        final_options=final_options(model, max_sentences, max_words, ratio),
        max_sentences=max_sentences,
        max_words=max_words,
        deadline=deadline,
        max_passes=max_passes,
        priority=priority,
    )
    return _pass(plan, sentences, counts, done=0)


# -- decoding lengths -----------------------------------------------------------------------


def _default_length(model: Seq2SeqModel) -> int:
    """The model's summary length, or a quarter of its window when the manifest has none
    (0 would let the model wrapper derive a translation-like length from the input)."""
    return model.manifest.generation.max_decoding_length or max(8, model.manifest.max_input_tokens // 4)


def _with_length(options: DecodingOptions, max_length: int) -> DecodingOptions:
    max_length = max(1, max_length)
    # A minimum at the maximum would forbid ending a sentence; keep it at half at most.
    min_length = max(1, min(options.min_decoding_length, max_length // 2))
    return replace(options, max_decoding_length=max_length, min_decoding_length=min_length)


def map_options(model: Seq2SeqModel) -> DecodingOptions:
    """Options for the chunk passes: the model's length, at most half a window so every pass
    shrinks the text."""
    half = max(1, model.manifest.max_input_tokens // 2)
    return _with_length(model.default_options(), min(_default_length(model), half))


def final_options(
    model: Seq2SeqModel, max_sentences: int, max_words: int, tokens_per_word: float
) -> DecodingOptions:
    """Options for the last pass: the requested length in tokens, capped by the model's own."""
    limits = [_default_length(model)]
    if max_words:
        limits.append(math.ceil(max_words * tokens_per_word * LENGTH_SLACK) + 2)
    if max_sentences:
        words = max_sentences * WORDS_PER_SENTENCE
        limits.append(math.ceil(words * tokens_per_word * LENGTH_SLACK) + 2)
    return _with_length(model.default_options(), min(limits))


# -- chunking ------------------------------------------------------------------------------


def _sentences(text: str, language: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text, language)]


def _prefix_tokens(model: Seq2SeqModel) -> int:
    """Tokens of the manifest's text prefix, which ``model.tokenize`` adds to every text."""
    return len(model.tokenize("")) if model.manifest.text_prefix else 0


def _size(counts: Sequence[int], prefix: int) -> int:
    """Tokens of sentences without the text prefix counted once per sentence."""
    return sum(max(0, c - prefix) for c in counts)


def chunk_sentences(
    model: Seq2SeqModel, sentences: Sequence[str], language: str,
    counts: Sequence[int] | None = None,
) -> list[str]:
    """Pack consecutive sentences into as few chunks as fit the model's window.

    Token counts of single sentences (``counts``: ``len(model.tokenize(s))``) estimate a
    chunk's size; every chunk is then checked with ``model.fits`` and gives back its last
    sentences until it does fit (tokenisers may merge across the joint). A sentence that
    alone does not fit is cut with :func:`split_to_fit` into pieces that are chunks of their own.
    """
    if counts is None:
        counts = [len(model.tokenize(s)) for s in sentences]
    glue = joiner(language)
    budget = model.manifest.max_input_tokens - model.overhead()
    prefix = _prefix_tokens(model)
    pending = deque(zip(sentences, counts))
    chunks: list[str] = []
    while pending:
        sentence, count = pending.popleft()
        if count > budget:
            chunks.extend(p.strip() for p in split_to_fit(sentence, model.fits) if p.strip())
            continue
        group = [(sentence, count)]
        used = count
        while pending and not pending[0][1] > budget:
            nxt = pending[0][1] - prefix
            if used + nxt > budget:
                break
            group.append(pending.popleft())
            used += nxt
        while len(group) > 1 and not model.fits(glue.join(s for s, _ in group)):
            pending.appendleft(group.pop())
        chunks.append(glue.join(s for s, _ in group))
    return chunks


# -- passes --------------------------------------------------------------------------------


def _check_deadline(plan: _Plan) -> None:
    if plan.deadline is not None and time.monotonic() >= plan.deadline:
        raise DeadlineExceeded("the deadline passed between summarisation passes")


def _submit(plan: _Plan, chunks: Sequence[str], options: DecodingOptions) -> Future[list[str]]:
    """All chunks of a pass in one submission, decoded when the batch is done (the chunks
    fit the window, so none is cut further)."""
    return then(
        plan.loaded.run(chunks, plan.language, plan.language, options, plan.deadline,
                        priority=plan.priority),
        lambda outs: [out.text for out in outs])


def _pass(plan: _Plan, sentences: list[str], counts: list[int], done: int) -> Future[AbstractiveResult]:
    _check_deadline(plan)
    chunks = chunk_sentences(plan.model, sentences, plan.language, counts)
    if len(chunks) == 1:
        return then(_submit(plan, chunks, plan.final_options), lambda outs: _finish(plan, outs[0], done + 1))
    if done + 2 > plan.max_passes:
        raise InvalidInput(
            f"model {plan.model.name} did not condense the article into its "
            f"{plan.model.manifest.max_input_tokens}-token window within {plan.max_passes} "
            "passes; use the extractive method"
        )
    prefix = _prefix_tokens(plan.model)
    size = _size(counts, prefix)
    logger.debug("model %s: pass %d over %d chunks (%d tokens)", plan.model.name, done + 1, len(chunks), size)

    def reduce(partials: list[str]) -> Future[AbstractiveResult]:
        joined = plan.glue.join(p.strip() for p in partials if p.strip())
        next_sentences = _sentences(joined, plan.language)
        next_counts = [len(plan.model.tokenize(s)) for s in next_sentences]
        if not next_sentences:
            raise InvalidInput(f"model {plan.model.name} returned empty summaries for every chunk")
        shrunk = _size(next_counts, prefix)
        if shrunk >= size:
            raise InvalidInput(
                f"model {plan.model.name} did not shorten the text in pass {done + 1} "
                f"({size} -> {shrunk} tokens); use the extractive method"
            )
        return _pass(plan, next_sentences, next_counts, done + 1)

    return chain(_submit(plan, chunks, plan.map_options), reduce)


# -- length limits on the final text ------------------------------------------------------


def _word_end(text: str, start: int, limit: int) -> int:
    """End of the longest prefix of ``text[start:]`` with at most ``limit`` words (as
    :func:`count_words` counts them, so it never ends inside a word)."""
    lo, hi = start, len(text)  # count_words(text[start:lo]) <= limit holds for lo
    while lo < hi:
        middle = (lo + hi + 1) // 2
        if count_words(text[start:middle]) <= limit:
            lo = middle
        else:
            hi = middle - 1
    return lo


def fit_length(summary: str, language: str, max_sentences: int, max_words: int) -> str:
    """``summary`` within the limits (0 = no limit), returned as the model wrote it.

    Only an overlong summary is cut, after its last whole sentence within both limits; when
    even the first sentence has more than ``max_words`` words it is cut after that many words
    and ends with "…" so the cut is visible.
    """
    text = summary.strip()
    spans = split_sentences(text, language)
    keep = len(spans)
    if max_sentences:
        keep = min(keep, max_sentences)
    if max_words:
        used = 0
        for i, (a, b) in enumerate(spans[:keep]):
            used += count_words(text[a:b])
            if used > max_words:
                keep = i
                break
        if keep == 0 and spans:
            return text[: _word_end(text, spans[0][0], max_words)].rstrip() + ELLIPSIS
    if keep == len(spans):
        return text
    return text[: spans[keep - 1][1]] if keep else ""


def _finish(plan: _Plan, summary: str, passes: int) -> AbstractiveResult:
    text = fit_length(summary, plan.language, plan.max_sentences, plan.max_words)
    if not text:
        logger.warning("model %s returned an empty summary", plan.model.name)
    elif text != summary.strip():
        logger.debug("model %s: summary cut to the requested length", plan.model.name)
    return AbstractiveResult(text, passes, len(split_sentences(text, plan.language)))
