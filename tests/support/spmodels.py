"""Tiny SentencePiece models trained offline, the vocabulary of every test and benchmark model."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

logger = logging.getLogger(__name__)


def train_sentencepiece(
    lines: Iterable[str],
    prefix: Path,
    vocab_size: int = 300,
    model_type: str = "unigram",
    user_defined_symbols: Sequence[str] = (),
) -> Path:
    """Train a SentencePiece model on ``lines`` and return the path of ``<prefix>.model``.

    Deterministic (one thread, no sampling or shuffling): the same lines give the same
    pieces and scores (the file also records ``prefix``). Ids 0/1/2 are ``<unk>``, ``<s>``
    and ``</s>`` as in OPUS-MT vocabularies; every character seen is kept. ``vocab_size``
    is an upper bound: a corpus too small for it yields a smaller vocabulary rather than
    an error (but one smaller than its distinct characters is an error).
    """
    sentences = [line for line in lines if line.strip()]
    if not sentences:
        raise ValueError("train_sentencepiece needs at least one non-empty line")
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        user_defined_symbols=list(user_defined_symbols),
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    model_path = prefix.with_name(prefix.name + ".model")
    logger.info("trained SentencePiece %s model %s on %d lines", model_type, model_path, len(sentences))
    return model_path


def sentencepiece_pieces(sp_model: Path) -> list[str]:
    """The pieces of a SentencePiece model in id order (the models' vocabulary)."""
    processor = spm.SentencePieceProcessor(model_file=str(sp_model))
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
