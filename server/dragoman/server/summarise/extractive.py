"""Extractive summaries by sentence ranking (TextRank-style), for any language, without weights.

Sentences are graph nodes, edges are TF-IDF cosine similarities of their word tokens (character
bigrams for scripts without spaces), and PageRank with a mild preference for early sentences (news
puts the point first) ranks them. The best sentences are returned verbatim, in article order.

Scraped pages carry furniture as lines of their own (bylines, dates, "2 min read", captions,
"Click to enlarge"): those lines are not candidates (see :mod:`.boilerplate`), nor is a repeat
of a sentence already seen (pages often print the headline twice). A sentence that was a line
of its own without final punctuation (a headline) or a list item keeps a line break in the
summary text instead of being run into the next sentence.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import numpy as np

from dragoman.server.errors import InvalidInput
from dragoman.server.summarise.boilerplate import is_boilerplate
from dragoman.server.text.segment import joiner, line_spans, split_sentences
from dragoman.server.text.words import count_words, tokens

logger = logging.getLogger(__name__)

DAMPING = 0.85
# The first sentence is this many times as likely as the last to receive teleport mass.
LEAD_PREFERENCE = 2.0
# A candidate this similar to a sentence already chosen is only taken if nothing else fits.
REDUNDANCY = 0.8
_TOLERANCE = 1e-7  # L1 change of the score vector; far below any rank difference that matters
_MAX_ITERATIONS = 200


@dataclass(frozen=True)
class ExtractiveSummary:
    sentences: tuple[str, ...]  # verbatim sentences of the article, in article order
    # The sentences joined with joiner(language), or a line break before and after a sentence
    # that was a line of its own without final punctuation (a headline) or a list item.
    text: str
    total_sentences: int  # sentences in the article


def _similarities(sentence_tokens: list[list[str]]) -> np.ndarray:
    """Cosine similarities of the sentences' TF-IDF vectors (log-scaled counts, smooth IDF)."""
    n = len(sentence_tokens)
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    columns: list[int] = []
    for row, words in enumerate(sentence_tokens):
        for word in words:
            rows.append(row)
            columns.append(vocabulary.setdefault(word, len(vocabulary)))
    counts = np.zeros((n, len(vocabulary)), dtype=np.float32)
    np.add.at(counts, (np.array(rows, dtype=np.intp), np.array(columns, dtype=np.intp)), 1.0)
    document_frequency = (counts > 0).sum(axis=0)
    idf = np.log((1.0 + n) / (1.0 + document_frequency)) + 1.0
    vectors = np.log1p(counts) * idf.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    vectors /= norms[:, None]
    # Words in a single sentence add nothing to any pair: drop them before the n x n product.
    shared = vectors[:, document_frequency > 1]
    similarity: np.ndarray = shared @ shared.T  # float32: n x n is the largest allocation of a summary
    np.fill_diagonal(similarity, 0.0)
    return similarity


def _pagerank(similarity: np.ndarray) -> np.ndarray:
    """Stationary scores of the weighted graph with a lead-biased teleport (power iteration)."""
    n = similarity.shape[0]
    prior = np.linspace(LEAD_PREFERENCE, 1.0, n) if n > 1 else np.ones(1)
    prior /= prior.sum()
    out_weight = similarity.sum(axis=1, dtype=np.float64)
    dangling = out_weight == 0
    # similarity is symmetric, so column j of it divided by j's out-weight is the transposed
    # transition matrix, already contiguous for the mat-vec products below.
    incoming = similarity.astype(np.float64)  # dangling columns are all zero already
    np.divide(incoming, out_weight[None, :], out=incoming, where=~dangling[None, :])
    scores: np.ndarray = prior.copy()
    for iteration in range(_MAX_ITERATIONS):
        updated: np.ndarray = DAMPING * (incoming @ scores + scores[dangling].sum() * prior)
        updated += (1.0 - DAMPING) * prior
        if np.abs(updated - scores).sum() < _TOLERANCE:
            logger.debug("pagerank converged after %d iterations", iteration + 1)
            return updated
        scores = updated
    return scores


def _check_limits(max_sentences: int | None, max_words: int | None) -> None:
    if max_sentences is None and max_words is None:
        raise InvalidInput("a summary needs a limit: set max_sentences, max_words or both")
    if max_sentences is not None and max_sentences < 1:
        raise InvalidInput(f"max_sentences must be at least 1, got {max_sentences}")
    if max_words is not None and max_words < 1:
        raise InvalidInput(f"max_words must be at least 1, got {max_words}")


def summarise_extractive(
    text: str, language: str, max_sentences: int | None = 3, max_words: int | None = None
) -> ExtractiveSummary:
    """The most central sentences of ``text``, verbatim and in their original order.

    Limits hold exactly: never more than ``max_sentences`` sentences, and never more than
    ``max_words`` words as counted by :func:`dragoman.server.text.words.count_words` (unspaced
    scripts count one word per two characters), with one exception: when not a single sentence
    fits in ``max_words``, the best-ranked sentence is returned alone rather than nothing. An
    article with fewer sentences than asked for is returned whole.
    """
    _check_limits(max_sentences, max_words)
    if not text.strip():
        raise InvalidInput("text to summarise is empty")
    spans = split_sentences(text, language)
    sentences = [text[a:b] for a, b in spans]
    sentence_tokens = [tokens(s) for s in sentences]
    total = sum(1 for words in sentence_tokens if words)
    if not total:
        raise InvalidInput("text to summarise has no words")
    own_line = _own_lines(text, spans)
    keep = _candidates(text, spans, sentences, sentence_tokens)
    sentences = [sentences[i] for i in keep]
    sentence_tokens = [sentence_tokens[i] for i in keep]
    standalone = [own_line[i] for i in keep]

    similarity = _similarities(sentence_tokens)
    scores = _pagerank(similarity)
    ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    chosen = _select(ranked, sentences, similarity, max_sentences, max_words)
    order = sorted(chosen)
    picked = tuple(sentences[i] for i in order)
    return ExtractiveSummary(
        sentences=picked, text=_join(order, sentences, standalone, joiner(language)),
        total_sentences=total,
    )


# Final punctuation, possibly followed by closing quotes or brackets.
_FINAL = re.compile(r"[.!?…。！？؟।॥။።][\"'”’»)\]]*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•‣◦⁃–—]|\d{1,3}[.)])\s")


def _own_lines(text: str, spans: list[tuple[int, int]]) -> list[bool]:
    """Per sentence: was it a headline (a whole line without final punctuation) or a list item?"""
    out = []
    lines = line_spans(text)
    li = 0
    for a, b in spans:
        while lines[li][1] < a:
            li += 1
        start, end = lines[li]
        whole = not text[start:a].strip() and not text[b:end].strip()
        sentence = text[a:b]
        out.append(bool(whole and (not _FINAL.search(sentence) or _LIST_ITEM.match(text[start:end]))))
    return out


def _candidates(
    text: str, spans: list[tuple[int, int]], sentences: list[str], sentence_tokens: list[list[str]]
) -> list[int]:
    """Sentences worth ranking: with words, not on a boilerplate line, not seen before.

    A text that is all boilerplate keeps its sentences (a summary of it is still asked for).
    """
    lines = line_spans(text)
    keep: list[int] = []
    seen: set[str] = set()
    li = 0
    for i, (a, _) in enumerate(spans):
        while lines[li][1] < a:
            li += 1
        if not sentence_tokens[i] or sentences[i] in seen:
            continue
        if is_boilerplate(text[lines[li][0]:lines[li][1]]):
            continue
        seen.add(sentences[i])
        keep.append(i)
    if not keep:
        logger.debug("every line is boilerplate; ranking them all")
        keep = [i for i, words in enumerate(sentence_tokens) if words]
    return keep


def _join(order: list[int], sentences: list[str], standalone: list[bool], separator: str) -> str:
    parts: list[str] = []
    for n, i in enumerate(order):
        if n:
            parts.append("\n" if standalone[i] or standalone[order[n - 1]] else separator)
        parts.append(sentences[i])
    return "".join(parts)


def _select(
    ranked: list[int],
    sentences: list[str],
    similarity: np.ndarray,
    max_sentences: int | None,
    max_words: int | None,
) -> list[int]:
    """Best-ranked sentences within the limits; near-duplicates only as a last resort."""
    sentence_limit = max_sentences if max_sentences is not None else len(sentences)
    word_budget = max_words if max_words is not None else math.inf
    words: dict[int, int] = {}  # counted on demand: usually only a few sentences are examined
    chosen: list[int] = []
    used = 0
    for avoid_duplicates in (True, False):
        for i in ranked:
            if len(chosen) == sentence_limit:
                return chosen
            if i in chosen:
                continue
            if i not in words:
                words[i] = count_words(sentences[i])
            if used + words[i] > word_budget:
                continue
            if avoid_duplicates and chosen and similarity[i, chosen].max() >= REDUNDANCY:
                continue
            chosen.append(i)
            used += words[i]
    if not chosen:
        logger.debug("no sentence fits in %s words; returning the best one alone", max_words)
        chosen.append(ranked[0])
    return chosen
