"""Word alignment of a translation to its source, from the model's own attention.

Inline markup is put back around the target words that translate the marked source words.
Which target word translates which source word is what the model attended to when it wrote it:
CTranslate2 returns, per output token, the cross-attention over the source pieces (of the
alignment head the converter picked; models trained with guided alignment, such as OPUS-MT,
make it a real alignment). Pieces are summed into words (a piece starting with the
SentencePiece word marker starts a word), and each target word is aligned to the source word
it attended to most, and each source word to the target word that attended to it most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_WORD_MARKERS = ("\u2581", "\u0120")  # SentencePiece "▁", byte-level BPE "Ġ"


@dataclass(frozen=True)
class Alignment:
    """Word-level alignment: ``target_to_source[t]`` and ``source_to_target[s]`` word indexes."""

    target_to_source: tuple[int, ...]
    source_to_target: tuple[int, ...]

    def then(self, other: Alignment) -> Alignment:
        """This alignment (source -> middle) followed by ``other`` (middle -> target): pivoting."""
        middle = len(self.target_to_source)
        if len(other.source_to_target) != middle:
            return proportional(len(other.target_to_source), len(self.source_to_target))
        return Alignment(
            tuple(self.target_to_source[m] for m in other.target_to_source),
            tuple(other.source_to_target[m] for m in self.source_to_target),
        )


def _words(pieces: Sequence[str]) -> list[int]:
    """Word index of each piece."""
    out: list[int] = []
    word = -1
    for n, piece in enumerate(pieces):
        if n == 0 or piece.startswith(_WORD_MARKERS):
            word += 1
        out.append(word)
    return out


def word_alignment(
    source_pieces: Sequence[str], target_pieces: Sequence[str],
    attention: Sequence[Sequence[float]],
) -> Alignment | None:
    """Alignment of the words of ``target_pieces`` to those of ``source_pieces``.

    ``attention`` has one row per target piece, one column per source piece. None when there
    is nothing to align.
    """
    if not source_pieces or not target_pieces or len(attention) < len(target_pieces):
        return None
    source_words = _words(source_pieces)
    target_words = _words(target_pieces)
    matrix = np.zeros((target_words[-1] + 1, source_words[-1] + 1))
    for i, row in enumerate(attention[:len(target_pieces)]):
        values = np.asarray(row[:len(source_pieces)], dtype=np.float64)
        if len(values) < len(source_pieces):
            return None
        np.add.at(matrix[target_words[i]], source_words, values)
    return Alignment(
        tuple(int(j) for j in matrix.argmax(axis=1)), tuple(int(i) for i in matrix.argmax(axis=0))
    )


def proportional(target_words: int, source_words: int) -> Alignment:
    """Monotonic alignment by relative position: the fallback when the model gave none."""
    return Alignment(
        tuple(min(source_words - 1, t * source_words // max(1, target_words))
              for t in range(target_words)) if source_words else (),
        tuple(min(target_words - 1, s * target_words // max(1, source_words))
              for s in range(source_words)) if target_words else (),
    )


def joined(parts: Sequence[Alignment | None]) -> Alignment | None:
    """The alignments of consecutive pieces of one sentence (a sentence too long for the
    model is translated in pieces, joined with a space) as one alignment; None if any is."""
    t2s: list[int] = []
    s2t: list[int] = []
    for part in parts:
        if part is None:
            return None
        t2s.extend(s + len(s2t) for s in part.target_to_source)
        s2t.extend(t + len(t2s) - len(part.target_to_source) for t in part.source_to_target)
    return Alignment(tuple(t2s), tuple(s2t))
