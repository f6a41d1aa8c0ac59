"""The benchmark model: an OPUS-MT-sized random Transformer with a realistic decoding cost.

Its tokens are garbage, but it emits ``</s>`` exactly when the source ends, so output length
equals source length. Conventions shared with the copy model are in ``ct2spec``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ctranslate2.specs import transformer_spec

from tests.support.ct2spec import (
    Layer,
    PositionCode,
    Vocabulary,
    load_vocabulary,
    new_spec,
    plain_layer_norm,
    save_model,
)
from tests.support.spmodels import sentencepiece_pieces

logger = logging.getLogger(__name__)

_SUPPRESSED_LOGIT_BIAS = -1000.0


def _sinusoids(positions: int, dims: int) -> np.ndarray:
    """Standard Transformer sinusoidal position table, as OPUS-MT models carry."""
    steps = np.arange(positions, dtype=np.float64)[:, None]
    rates = np.power(10000.0, -2.0 * (np.arange(dims) // 2) / dims)[None, :]
    angles = steps * rates
    table = np.where(np.arange(dims) % 2 == 0, np.sin(angles), np.cos(angles))
    return table.astype(np.float32)


@dataclass(frozen=True)
class _RandomLayout:
    """Residual-stream split of the random model.

    Structured dims ``[0, random_start)`` hold position codes and the end-of-source signal;
    random sublayers may read them but never write them, so the length pointer survives.
    """

    position: PositionCode
    source_eos_flag: int  # encoder side: +F on the source </s>, -F on every other token
    target_end: int  # decoder side: written by the pointer head, read by the </s> logit
    d_model: int

    @property
    def random_start(self) -> int:
        return self.target_end + 1


def _random_matrix(rng: np.random.Generator, rows: int, cols: int, gain: float) -> np.ndarray:
    return (rng.standard_normal((rows, cols), dtype=np.float32) * (gain / math.sqrt(cols))).astype(np.float32)


def _random_sublayers(layer: Layer, rng: np.random.Generator, layout: _RandomLayout, ffn: int, *, cross: bool) -> None:
    """Dense random attention and feed-forward weights that write only the random dims."""
    d_model, keep = layout.d_model, layout.random_start
    plain_layer_norm(layer.self_attention.layer_norm, d_model)
    layer.self_attention.linear[0].weight = _random_matrix(rng, 3 * d_model, d_model, 1.0)
    layer.self_attention.linear[1].weight = _random_matrix(rng, d_model, d_model, 0.5)
    layer.self_attention.linear[1].weight[:keep] = 0.0
    if cross:
        plain_layer_norm(layer.attention.layer_norm, d_model)
        layer.attention.linear[0].weight = _random_matrix(rng, d_model, d_model, 1.0)
        layer.attention.linear[1].weight = _random_matrix(rng, 2 * d_model, d_model, 1.0)
        layer.attention.linear[2].weight = _random_matrix(rng, d_model, d_model, 0.5)
        layer.attention.linear[2].weight[:keep] = 0.0
    plain_layer_norm(layer.ffn.layer_norm, d_model)
    layer.ffn.linear_0.weight = _random_matrix(rng, ffn, d_model, 1.0)
    layer.ffn.linear_1.weight = _random_matrix(rng, d_model, ffn, 0.5)
    layer.ffn.linear_1.weight[:keep] = 0.0


_CODE_VALUE = 8.0  # residual value of an active position-code dim and of the source </s> flag
_POINTER_LOGIT_SCALE = 9.0  # query gain: about 60 logits for the aligned position, 30 for near misses
_END_LOGIT_GAIN = 12.0  # </s> logit per unit of the normalised end signal (about +-40)


def _install_length_pointer(
    layer: transformer_spec.TransformerDecoderLayerSpec, layout: _RandomLayout, head_dim: int
) -> None:
    """Turn cross-attention head 0 into a pointer: step t reads whether source piece t is </s>."""
    dims = layout.position.dims
    query, key_value = layer.attention.linear[0].weight, layer.attention.linear[1].weight
    output = layer.attention.linear[2].weight
    d_model = layout.d_model
    query[:head_dim] = 0.0
    key_value[:head_dim] = 0.0
    key_value[d_model : d_model + head_dim] = 0.0
    output[:, :head_dim] = 0.0
    for offset, dim in enumerate(range(dims.start, dims.stop)):
        query[offset, dim] = _POINTER_LOGIT_SCALE
        key_value[offset, dim] = 1.0
    key_value[d_model, layout.source_eos_flag] = 1.0
    output[layout.target_end, 0] = 1.0


def build_random_model(
    out_dir: Path,
    sp_model: Path,
    *,
    layers: int = 6,
    d_model: int = 512,
    heads: int = 8,
    ffn: int = 2048,
    quantization: str = "int8",
    seed: int = 0,
    max_positions: int = 1024,
    vocab_size: int | None = None,
    ends: bool = True,
) -> Path:
    """Build an OPUS-MT-sized Transformer with random weights, for benchmarks.

    The shape and cost match a converted OPUS-MT model (6+6 layers, d_model 512, 8 heads,
    FFN 2048, int8; pre-norm, which costs the same as OPUS-MT's post-norm; same config
    conventions as :func:`build_copy_model`: feed plain pieces). Output pieces are
    garbage, but the model emits ``</s>`` exactly when the source ends, so
    ``len(hypothesis) == len(source pieces)`` under greedy and beam search and decoding
    work is realistic without tuning ``max_decoding_length`` (which must stay <=
    ``max_positions``; CTranslate2's default 256 also caps longer outputs). A source that
    itself contains ``</s>`` pieces ends early, at the first one.

    Real OPUS-MT vocabularies have ~60k pieces; ``vocab_size`` pads the vocabulary with
    never-emitted ``<extra_N>`` pieces so the output projection and softmax cost as much
    (ids beyond the SentencePiece model's; its own ids are unchanged).
    ``<unk>`` and ``<s>`` are never emitted either. Same arguments give the same bytes.
    With ``ends=False`` it never emits ``</s>`` at all: every output runs to the decoding
    length cap (what a broken or looping real model does).

    How: random dense layers write only part of the residual stream; the rest carries
    factored position codes and a source-``</s>`` flag, and one head of the last decoder
    layer's cross-attention points at source position t to raise the ``</s>`` logit.
    """
    started = time.perf_counter()
    if layers < 1 or heads < 1 or d_model % heads:
        raise ValueError("need layers >= 1 and d_model divisible by heads")
    head_dim = d_model // heads
    position = PositionCode.covering(0, max_positions)
    if 2 * position.base > head_dim or 4 * position.base > d_model:
        raise ValueError(
            f"max_positions={max_positions} needs head_dim >= {2 * position.base}; "
            f"got d_model={d_model}, heads={heads}"
        )
    vocab = load_vocabulary(Path(sp_model))
    if vocab_size is not None:
        if vocab_size < len(vocab.tokens):
            raise ValueError(f"vocab_size {vocab_size} is smaller than the SentencePiece vocabulary")
        extra = [f"<extra_{i}>" for i in range(vocab_size - len(vocab.tokens))]
        vocab = Vocabulary(vocab.tokens + extra, vocab.unk, vocab.bos, vocab.eos, vocab.fixed_ids)
    layout = _RandomLayout(
        position=position,
        source_eos_flag=position.dims.stop,
        target_end=position.dims.stop + 1,
        d_model=d_model,
    )
    rng = np.random.default_rng(seed)
    tokens = len(vocab.tokens)
    random_dims = slice(layout.random_start, d_model)
    random_size = d_model - layout.random_start
    spec = new_spec(layers, heads, vocab)
    encoder, decoder = spec.encoder, spec.decoder

    positions = _sinusoids(max_positions, d_model) * 0.5
    positions[:, : layout.random_start] = 0.0
    positions += np.stack([position.encode(p, d_model, _CODE_VALUE) for p in range(max_positions)])

    def embeddings() -> np.ndarray:
        table = np.zeros((tokens, d_model), dtype=np.float32)
        rows = rng.standard_normal((tokens, random_size), dtype=np.float32)
        table[:, random_dims] = rows * (math.sqrt(random_size) / np.linalg.norm(rows, axis=1, keepdims=True))
        return table

    encoder_embeddings = embeddings()
    encoder_embeddings[:, layout.source_eos_flag] = -_CODE_VALUE
    encoder_embeddings[vocab.eos_id, layout.source_eos_flag] = _CODE_VALUE
    encoder.embeddings[0].weight = encoder_embeddings
    encoder.position_encodings.encodings = positions
    for layer in encoder.layer:
        _random_sublayers(layer, rng, layout, ffn, cross=False)
    plain_layer_norm(encoder.layer_norm, d_model)

    decoder.embeddings.weight = embeddings()
    decoder.position_encodings.encodings = positions.copy()
    for layer in decoder.layer:
        _random_sublayers(layer, rng, layout, ffn, cross=True)
    _install_length_pointer(decoder.layer[-1], layout, head_dim)
    plain_layer_norm(decoder.layer_norm, d_model)

    projection = np.zeros((tokens, d_model), dtype=np.float32)
    projection[:, random_dims] = _random_matrix(rng, tokens, random_size, 2.0)
    projection[vocab.eos_id] = 0.0
    projection[vocab.eos_id, layout.target_end] = _END_LOGIT_GAIN
    bias = np.zeros(tokens, dtype=np.float32)
    sp_size = len(sentencepiece_pieces(Path(sp_model)))
    suppressed = [vocab.tokens.index(vocab.unk), vocab.tokens.index(vocab.bos), *range(sp_size, tokens)]
    if not ends:
        suppressed.append(vocab.eos_id)
    bias[suppressed] = _SUPPRESSED_LOGIT_BIAS
    decoder.projection.weight = projection
    decoder.projection.bias = bias

    save_model(spec, vocab, Path(out_dir), quantization)
    logger.info(
        "built random model %s (%d+%d layers, d_model %d, vocab %d, %s) in %.2fs",
        out_dir, layers, layers, d_model, tokens, quantization, time.perf_counter() - started,
    )
    return Path(out_dir)
