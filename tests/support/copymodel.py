"""The copy model: a hand-set one-layer Transformer whose translation is its source.

Exactly its source, or a fixed piece-to-piece bijection of it (e.g. :func:`swapcase_mapping`),
so tests can assert exact output through the real CTranslate2 path: greedy and beam search,
mixed-length batches, int8 and float32. Conventions shared with the random model are in
``ct2spec``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import sentencepiece as spm
from ctranslate2.specs import common_spec, transformer_spec

from tests.support.ct2spec import (
    LAYER_NORM_EPSILON,
    Layer,
    PositionCode,
    Vocabulary,
    load_vocabulary,
    new_spec,
    plain_layer_norm,
    save_model,
)

logger = logging.getLogger(__name__)

_MAX_ONE_HOT_VOCABULARY = 128  # larger vocabularies get dense +-1 token codes instead
_MAX_COPY_VOCABULARY = 8192
_MAX_CODE_OVERLAP = 0.3  # keeps every wrong token >= 0.45 * _OUTPUT_LOGIT below the right one
_ATTENTION_LOGIT_GAP = 30.0  # logit margin between the aligned source position and any other
_OUTPUT_LOGIT = 30.0  # logit of the copied token


def swapcase_mapping(sp_model: Path) -> Callable[[str], str]:
    """A piece bijection for :func:`build_copy_model`: each piece to its swap-cased twin.

    A piece moves only when its swap-cased form is also a piece and swapping back returns
    it (so the map is an involution, hence a bijection); all other pieces, and control and
    unknown pieces, map to themselves. Text made only of paired pieces comes out of the
    mapped copy model as ``text.swapcase()``.
    """
    processor = spm.SentencePieceProcessor(model_file=str(sp_model))
    special = {i for i in range(processor.get_piece_size()) if processor.is_control(i) or processor.is_unknown(i)}
    pieces = {processor.id_to_piece(i) for i in range(processor.get_piece_size()) if i not in special}
    table: dict[str, str] = {}
    for piece in pieces:
        twin = piece.swapcase()
        if twin != piece and twin in pieces and twin.swapcase() == piece:
            table[piece] = twin

    def mapping(piece: str) -> str:
        return table.get(piece, piece)

    return mapping


def _permutation(vocab: Vocabulary, mapping: Callable[[str], str] | None) -> np.ndarray:
    """Output id for each source id; checks that ``mapping`` is a bijection fixing specials."""
    size = len(vocab.tokens)
    if mapping is None:
        return np.arange(size)
    index = {token: i for i, token in enumerate(vocab.tokens)}
    targets = np.empty(size, dtype=np.int64)
    for i, token in enumerate(vocab.tokens):
        mapped = mapping(token)
        if mapped not in index:
            raise ValueError(f"mapping sends {token!r} to {mapped!r}, which is not in the vocabulary")
        if i in vocab.fixed_ids and mapped != token:
            raise ValueError(f"mapping must leave special token {token!r} unchanged, got {mapped!r}")
        targets[i] = index[mapped]
    if len(set(targets.tolist())) != size:
        raise ValueError("mapping is not a bijection over the vocabulary pieces")
    return targets


def _token_codes(vocab_size: int) -> np.ndarray:
    """Unit-norm identity code per token, kept short because d_model sets the decoding cost.

    Small vocabularies get one-hot codes; larger ones balanced +-1 codes whose pairwise
    overlap is at most ``_MAX_CODE_OVERLAP`` (drawn greedily from a fixed seed). Every code
    has the same sum and norm, which keeps layer-norm statistics constant.
    """
    if vocab_size <= _MAX_ONE_HOT_VOCABULARY:
        return np.eye(vocab_size, dtype=np.float32)
    if vocab_size > _MAX_COPY_VOCABULARY:
        raise ValueError(f"copy models support at most {_MAX_COPY_VOCABULARY} pieces, got {vocab_size}")
    size = 128 if vocab_size <= 1024 else 256
    rng = np.random.default_rng(1234)
    signs = np.repeat(np.array([1.0, -1.0], dtype=np.float32), size // 2) / math.sqrt(size)
    accepted = np.empty((0, size), dtype=np.float32)
    while len(accepted) < vocab_size:
        candidates = rng.permuted(np.tile(signs, (256, 1)), axis=1)
        if len(accepted):
            candidates = candidates[np.abs(candidates @ accepted.T).max(axis=1) <= _MAX_CODE_OVERLAP]
        overlaps = np.abs(candidates @ candidates.T)
        kept: list[int] = []
        for i in range(len(candidates)):
            if all(overlaps[i, j] <= _MAX_CODE_OVERLAP for j in kept):
                kept.append(i)
        accepted = np.concatenate([accepted, candidates[kept][: vocab_size - len(accepted)]])
    return accepted


def _identity_layer_norm(norm_spec: common_spec.LayerNormSpec, samples: np.ndarray) -> None:
    """Set gamma/beta so the layer norm returns its input for vectors like ``samples``.

    Valid because every vector reaching that norm has the same mean and variance.
    """
    means, variances = samples.mean(axis=1), samples.var(axis=1)
    if np.ptp(means) > 1e-6 or np.ptp(variances) > 1e-6:
        raise AssertionError("layer-norm inputs must share mean and variance")
    d_model = samples.shape[1]
    norm_spec.gamma = np.full(d_model, math.sqrt(variances[0] + LAYER_NORM_EPSILON), dtype=np.float32)
    norm_spec.beta = np.full(d_model, means[0], dtype=np.float32)


def _inert_sublayers(layer: Layer, d_model: int, ffn: int) -> None:
    """Self-attention and feed-forward that add nothing to the residual stream."""
    plain_layer_norm(layer.self_attention.layer_norm, d_model)
    layer.self_attention.linear[0].weight = np.zeros((3 * d_model, d_model), dtype=np.float32)
    layer.self_attention.linear[1].weight = np.zeros((d_model, d_model), dtype=np.float32)
    plain_layer_norm(layer.ffn.layer_norm, d_model)
    layer.ffn.linear_0.weight = np.zeros((ffn, d_model), dtype=np.float32)
    layer.ffn.linear_1.weight = np.zeros((d_model, ffn), dtype=np.float32)


def _install_missing_prefix_gate(
    ffn: transformer_spec.FeedForwardSpec,
    codes: np.ndarray,
    eos_id: int,
    second_step: int,
    other_input: int,
    d_model: int,
) -> None:
    """Feed-forward that swaps the copied token for </s> at the second step if no prefix was fed.

    ReLU units gated by ``second_step + other_input - 2 >= 0`` (both flags set) pass the
    copied code's positive and negative parts, which are subtracted, plus a unit that adds
    the </s> code; at every other step all units are exactly zero.
    """
    code_size = codes.shape[1]
    gate = 2.0  # exceeds any code entry, so a half-open gate still clamps to zero
    hidden = 2 * code_size + 1
    inputs = np.zeros((hidden, d_model), dtype=np.float32)
    bias = np.full(hidden, -2.0 * gate, dtype=np.float32)
    inputs[:, [second_step, other_input]] = gate
    inputs[np.arange(code_size), np.arange(code_size)] = 1.0
    inputs[code_size + np.arange(code_size), np.arange(code_size)] = -1.0
    bias[-1] += 1.0
    outputs = np.zeros((d_model, hidden), dtype=np.float32)
    outputs[np.arange(code_size), np.arange(code_size)] = -1.0
    outputs[np.arange(code_size), code_size + np.arange(code_size)] = 1.0
    outputs[:code_size, -1] = codes[eos_id]
    ffn.linear_0.weight, ffn.linear_0.bias = inputs, bias
    ffn.linear_1.weight = outputs


def build_copy_model(
    out_dir: Path,
    sp_model: Path,
    *,
    mapping: Callable[[str], str] | None = None,
    quantization: str | None = "int8",
    max_positions: int = 512,
    target_prefix_tokens: Sequence[str] = (),
    order: Callable[[int], int] | None = None,
) -> Path:
    """Build a CTranslate2 model that translates a piece sequence into itself, mapped.

    Contract (greedy or beam search, any batch mix, any compute type):
    ``translate_batch([pieces])[0].hypotheses[0] == [mapping(p) for p in pieces]`` where
    ``pieces = sp.encode(text, out_type=str)`` - callers feed plain pieces; the config's
    ``add_source_eos`` appends ``</s>``, which the model copies to stop. Sources may hold
    up to ``max_positions`` pieces; longer ones make CTranslate2 raise ``RuntimeError``
    ("No position encodings ..."). CTranslate2's default ``max_decoding_length`` (256)
    cuts longer outputs, so pass ``max_decoding_length >= len(pieces) + 2``; values above
    ``max(1024, 2 * max_positions + 4)`` raise.

    With ``target_prefix_tokens`` (added to the vocabulary when SentencePiece lacks them)
    the model expects exactly one of them as ``target_prefix=[[token]]`` and returns
    ``[token] + mapped pieces``. Called without a prefix it returns ``["<unk>"]`` (nothing
    with ``min_decoding_length=0``), so a caller that forgets the prefix is caught.

    How: token identity rides the residual stream; one cross-attention head, queried with
    factored one-hot position codes, attends to source position t at decoder step t (t-1
    after a prefix; a feed-forward gate turns the second step into </s> when its input is
    not a prefix token); the output projection maps the copied identity to mapping(token).
    Layer norms are set to identity (every vector has fixed statistics by construction)
    and the remaining sublayers are zero, so int8 weights and activations stay exact.

    With ``order`` (not with a prefix), output step t copies source piece ``order(t)``
    instead of piece t: a word-order-changing "translation" whose alignment is known
    exactly (its one attention head is the alignment). Decoding ends at the first step
    whose ``order(t)`` is no source piece. ``order=lambda t: t ^ 1`` swaps adjacent pieces;
    give it an even number of pieces (with an odd number the last one is dropped).
    """
    started = time.perf_counter()
    if max_positions < 1:
        raise ValueError("max_positions must be positive")
    vocab = load_vocabulary(Path(sp_model), target_prefix_tokens)
    targets = _permutation(vocab, mapping)
    codes = _token_codes(len(vocab.tokens))
    code_size = codes.shape[1]
    vocab_size = len(vocab.tokens)
    prefix_ids = [vocab.tokens.index(token) for token in target_prefix_tokens]
    shift = 1 if prefix_ids else 0

    source_positions = max_positions + 1  # the pieces plus the appended </s>
    position = PositionCode.covering(code_size, source_positions)
    # One-hot flags, exactly one per group set in every decoder vector (fixed statistics):
    # step group - first step, second step, later steps; input group - prefix token or not.
    first_step, second_step, later_step, prefix_input, other_input = range(position.dims.stop, position.dims.stop + 5)
    if order is not None and prefix_ids:
        raise ValueError("order and target_prefix_tokens cannot be combined")
    # With ``order``: source </s> carries a key flag (every other piece its twin, to keep the
    # statistics fixed) that every query matches for half a position match, so a step that
    # points past the source reads </s> and decoding ends.
    eos_on, eos_off, bonus = other_input + 1, other_input + 2, other_input + 3
    d_model = -(-((bonus if order is not None else other_input) + 1) // 16) * 16
    decoder_positions = max(1024, 2 * max_positions + 4)

    spec = new_spec(1, 1, vocab)
    encoder, decoder = spec.encoder, spec.decoder

    encoder_embeddings = np.zeros((vocab_size, d_model), dtype=np.float32)
    encoder_embeddings[:, :code_size] = codes
    if order is not None:
        encoder_embeddings[:, eos_off] = 1.0
        encoder_embeddings[vocab.eos_id, eos_off] = 0.0
        encoder_embeddings[vocab.eos_id, eos_on] = 1.0
    encoder.embeddings[0].weight = encoder_embeddings
    encoder.position_encodings.encodings = np.stack([position.encode(p, d_model) for p in range(source_positions)])
    _inert_sublayers(encoder.layer[0], d_model, ffn=16)
    _identity_layer_norm(encoder.layer_norm, encoder_embeddings[:8] + encoder.position_encodings.encodings[:8])

    def decoder_position(step: int) -> np.ndarray:
        if order is not None:
            row = position.encode(order(step), d_model)
            row[later_step] = 1.0
            row[bonus] = 1.0
            return row
        row = position.encode(max(step - shift, 0), d_model)
        flag = later_step if not shift or step >= 2 else (first_step if step == 0 else second_step)
        row[flag] = 1.0
        return row

    decoder_embeddings = np.zeros((vocab_size, d_model), dtype=np.float32)
    decoder_embeddings[:, other_input] = 1.0
    decoder_embeddings[prefix_ids, other_input] = 0.0
    decoder_embeddings[prefix_ids, prefix_input] = 1.0
    decoder.embeddings.weight = decoder_embeddings
    decoder.position_encodings.encodings = np.stack([decoder_position(step) for step in range(decoder_positions)])
    layer = decoder.layer[0]
    _inert_sublayers(layer, d_model, ffn=16)
    decoder_inputs = decoder.position_encodings.encodings[:8] + decoder_embeddings[-8:]
    _identity_layer_norm(layer.attention.layer_norm, decoder_inputs)

    # CTranslate2 divides attention scores by sqrt(head_dim); with one head that is d_model.
    query_scale = _ATTENTION_LOGIT_GAP * math.sqrt(d_model)
    query = np.zeros((d_model, d_model), dtype=np.float32)
    key = np.zeros((d_model, d_model), dtype=np.float32)
    for dim in range(position.dims.start, position.dims.stop):
        query[dim, dim] = query_scale
        key[dim, dim] = 1.0
    # At the first step of a prefixed model, "go to the source </s>" outscores any position
    # match (4 vs 2): that step's output is the forced prefix token unless none was given.
    query[first_step, first_step] = 4.0 * query_scale
    key[first_step, :code_size] = codes[vocab.eos_id]
    if order is not None:
        query[bonus, bonus] = 0.5 * query_scale
        key[bonus, eos_on] = 1.0
    value = np.zeros((d_model, d_model), dtype=np.float32)
    value[:code_size, :code_size] = np.eye(code_size, dtype=np.float32)
    layer.attention.linear[0].weight = query
    layer.attention.linear[1].weight = np.concatenate([key, value])
    layer.attention.linear[2].weight = value.copy()

    final_inputs = decoder_inputs + encoder_embeddings[:8]
    if shift:
        _install_missing_prefix_gate(layer.ffn, codes, vocab.eos_id, second_step, other_input, d_model)
        _identity_layer_norm(layer.ffn.layer_norm, final_inputs)
    _identity_layer_norm(decoder.layer_norm, final_inputs)
    projection = np.zeros((vocab_size, d_model), dtype=np.float32)
    projection[targets, :code_size] = _OUTPUT_LOGIT * codes
    # When </s> is copied but not allowed (CTranslate2's min_decoding_length defaults to 1),
    # <unk> is the clear runner-up instead of an arbitrary tie.
    unk_id = vocab.tokens.index(vocab.unk)
    projection[unk_id, :code_size] += 0.5 * _OUTPUT_LOGIT * codes[vocab.eos_id]
    decoder.projection.weight = projection

    save_model(spec, vocab, Path(out_dir), quantization)
    logger.info(
        "built copy model %s (vocab %d, d_model %d, %s) in %.2fs",
        out_dir, len(vocab.tokens), d_model, quantization, time.perf_counter() - started,
    )
    return Path(out_dir)
