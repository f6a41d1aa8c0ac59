"""What the copy and random model builders share: vocabulary, position codes, spec and save.

Conventions of both builders (they mirror converted OPUS-MT models): the vocabulary is the
SentencePiece model's pieces in id order (shared source/target), the config sets
``add_source_eos`` so callers feed plain ``sp.encode(text, out_type=str)`` pieces, and the
decoder starts from ``<s>``. Pieces that are not in the vocabulary (e.g. a character
SentencePiece never saw, which ``out_type=str`` returns verbatim) reach the model as ``<unk>``;
the copy model returns ``<unk>`` there, or the original piece when called with
``replace_unknowns=True`` (its attention is sharp, so the alignment is exact).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import sentencepiece as spm
from ctranslate2.specs import common_spec, transformer_spec

from tests.support.spmodels import sentencepiece_pieces

LAYER_NORM_EPSILON = 1e-6


@dataclass(frozen=True)
class Vocabulary:
    """Model vocabulary: SentencePiece pieces, then any extra tokens, plus special ids."""

    tokens: list[str]
    unk: str
    bos: str
    eos: str
    fixed_ids: frozenset[int]  # ids every mapping must leave in place

    @property
    def eos_id(self) -> int:
        return self.tokens.index(self.eos)


def load_vocabulary(sp_model: Path, extra_tokens: Sequence[str] = ()) -> Vocabulary:
    """The SentencePiece model's pieces plus ``extra_tokens``; specials and extras stay fixed."""
    processor = spm.SentencePieceProcessor(model_file=str(sp_model))
    if processor.bos_id() < 0 or processor.eos_id() < 0 or processor.unk_id() < 0:
        raise ValueError(f"{sp_model} must define <unk>, <s> and </s> pieces")
    tokens = sentencepiece_pieces(sp_model)
    fixed = {i for i in range(len(tokens)) if processor.is_control(i) or processor.is_unknown(i)}
    for token in extra_tokens:
        if token not in tokens:
            tokens.append(token)
        fixed.add(tokens.index(token))
    return Vocabulary(
        tokens=tokens,
        unk=processor.id_to_piece(processor.unk_id()),
        bos=processor.id_to_piece(processor.bos_id()),
        eos=processor.id_to_piece(processor.eos_id()),
        fixed_ids=frozenset(fixed),
    )


@dataclass(frozen=True)
class PositionCode:
    """Factored one-hot position code: position p lights dim (p mod base) and (p div base).

    Two matching dims score 2, one 1, none 0, so attention that scales the match by a
    large factor picks the exact position while needing only 2*sqrt(positions) dims.
    """

    offset: int
    base: int

    @classmethod
    def covering(cls, offset: int, positions: int) -> PositionCode:
        return cls(offset=offset, base=max(2, math.ceil(math.sqrt(positions))))

    @property
    def dims(self) -> slice:
        return slice(self.offset, self.offset + 2 * self.base)

    @property
    def capacity(self) -> int:
        return self.base * self.base

    def encode(self, position: int, d_model: int, value: float = 1.0) -> np.ndarray:
        row = np.zeros(d_model, dtype=np.float32)
        position %= self.capacity
        row[self.offset + position % self.base] = value
        row[self.offset + self.base + position // self.base] = value
        return row


def plain_layer_norm(norm_spec: common_spec.LayerNormSpec, d_model: int) -> None:
    """Gamma 1, beta 0: the layer norm only normalises."""
    norm_spec.gamma = np.ones(d_model, dtype=np.float32)
    norm_spec.beta = np.zeros(d_model, dtype=np.float32)


Layer: TypeAlias = transformer_spec.TransformerEncoderLayerSpec | transformer_spec.TransformerDecoderLayerSpec
"""An encoder or decoder layer spec (both have self-attention and a feed-forward)."""


def new_spec(layers: int, heads: int, vocab: Vocabulary) -> transformer_spec.TransformerSpec:
    """An empty pre-norm Transformer spec with the conventions above (weights set by the caller)."""
    spec = transformer_spec.TransformerSpec.from_config((layers, layers), heads)
    spec.config.layer_norm_epsilon = LAYER_NORM_EPSILON
    spec.config.add_source_eos = True
    spec.config.unk_token = vocab.unk
    spec.config.bos_token = vocab.bos
    spec.config.eos_token = vocab.eos
    spec.config.decoder_start_token = vocab.bos
    spec.encoder.scale_embeddings = False
    spec.decoder.scale_embeddings = False
    return spec


def save_model(
    spec: transformer_spec.TransformerSpec, vocab: Vocabulary, out_dir: Path, quantization: str | None
) -> Path:
    """Validate, quantise and write the CTranslate2 model folder ``out_dir`` (new or empty)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"model directory {out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.register_source_vocabulary(vocab.tokens)
    spec.register_target_vocabulary(vocab.tokens)
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(out_dir))
    return out_dir
