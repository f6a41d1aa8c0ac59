"""Language identification with py3langid, answered in ISO 639-1 codes.

The identifier is loaded once, on first use, and never mutated afterwards (py3langid's
``set_languages`` rewrites the shared model, so it is not used): restricting to ``allowed`` is done
on the scores of each call, which keeps detection thread-safe.
"""

from __future__ import annotations

import logging
import math
import threading
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dragoman.server.errors import InvalidInput
from dragoman.server.text.languages import base_language, is_language_code

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

logger = logging.getLogger(__name__)

# py3langid labels that are not ISO 639-1 but varieties of a 639-1 language: their probability
# counts for that language. Other non-639-1 labels (e.g. "kab", "zxx") are never answered.
_VARIETY_OF: dict[str, str] = {
    "yue": "zh", "wuu": "zh", "ary": "ar", "arz": "ar", "uzs": "uz", "gug": "gn", "kik": "ki",
    "fuv": "ff", "sdh": "ku",
}


@dataclass(frozen=True)
class LanguageScore:
    language: str
    confidence: float


@dataclass(frozen=True)
class Detection:
    language: str
    confidence: float
    candidates: tuple[LanguageScore, ...]


@dataclass(frozen=True)
class _Model:
    identifier: LanguageIdentifier
    labels: tuple[str, ...]  # one per score column of identifier.rank, in model order
    columns: dict[str, tuple[int, ...]]  # ISO 639-1 code -> label columns counting for it


_model: _Model | None = None
_model_lock = threading.Lock()


def _load() -> _Model:
    global _model
    if _model is not None:
        return _model
    with _model_lock:
        if _model is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)
            labels = tuple(identifier.labels)
            columns: dict[str, list[int]] = {}
            for column, label in enumerate(labels):
                code = _VARIETY_OF.get(label, label)
                if is_language_code(code):
                    columns.setdefault(code, []).append(column)
            _model = _Model(identifier, labels, {k: tuple(v) for k, v in columns.items()})
            logger.info("language identifier loaded: %d languages", len(columns))
        return _model


def detectable_languages() -> frozenset[str]:
    """The ISO 639-1 codes the detector can answer."""
    return frozenset(_load().columns)


def _probabilities(model: _Model, text: str) -> np.ndarray:
    """Softmax over all labels with py3langid's length temperature (1/sqrt(bytes)), in float64.

    Raw log-scores are normalised here rather than by py3langid so that restricting to a few
    languages renormalises without float32 underflow.
    """
    raw = dict(model.identifier.rank(text))
    scores = np.array([raw[label] for label in model.labels], dtype=np.float64)
    if scores.max() == scores.min():
        # py3langid found none of its byte n-grams: every language scores the same floor.
        raise InvalidInput("too little text to detect a language from")
    normalised = text.lower() if text.isupper() else text
    size = len(unicodedata.normalize("NFC", normalised).encode("utf-8", errors="surrogatepass"))
    scores /= math.sqrt(size or 1)
    scores = np.exp(scores - scores.max())
    probabilities: np.ndarray = scores / scores.sum()
    return probabilities


def detect_language(text: str, allowed: Collection[str] | None = None, top: int = 3) -> Detection:
    """The most likely ISO 639-1 language of ``text`` and up to ``top`` candidates, best first.

    Confidences are probabilities in [0, 1]. Without ``allowed`` they are shares of the whole
    model, so text in a language without a 639-1 code gets low confidence rather than a confident
    wrong answer; with ``allowed`` (e.g. the installed languages, tags like "pt-BR" accepted) they
    are renormalised over the allowed languages the detector knows.
    """
    if top < 1:
        raise InvalidInput(f"top must be at least 1, got {top}")
    if not any(c.isalpha() for c in text):
        raise InvalidInput("text has no letters to detect a language from")
    model = _load()
    codes: list[str]
    if allowed is None:
        codes = list(model.columns)
    else:
        wanted = {base_language(code) for code in allowed}
        codes = sorted(code for code in wanted if code in model.columns)
        if not codes:
            raise InvalidInput(
                f"language detection knows none of the allowed languages {sorted(wanted)}"
            )
    probabilities = _probabilities(model, text)
    totals = np.array([probabilities[list(model.columns[code])].sum() for code in codes])
    if allowed is not None:
        mass = totals.sum()
        totals = totals / mass if mass > 0 else np.full(len(codes), 1.0 / len(codes))
    order = sorted(range(len(codes)), key=lambda i: (-totals[i], codes[i]))[:top]
    candidates = tuple(LanguageScore(codes[i], float(min(1.0, totals[i]))) for i in order)
    return Detection(candidates[0].language, candidates[0].confidence, candidates)
