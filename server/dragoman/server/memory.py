"""Decoding memory: what a CTranslate2 beam-search batch holds, estimated from the model's shape.

Under load a translation server's memory is not its weights but its batches in flight: for
every hypothesis (sentence x beam) beam search keeps a few float32 vectors the size of the
target vocabulary (logits, log-probabilities, scores) and the decoder's attention caches,
which grow with the source and target lengths. ``--decode-memory-mb`` caps the sum of these
estimates over the replicas, so an operator can bound RSS instead of guessing a token budget.

The shape is read from ``model.bin``'s variable headers (names and dimensions only; the
weights are skipped), so nothing is loaded twice and no CTranslate2 import is needed.
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

FLOAT_BYTES = 4
# Vocabulary-sized float32 vectors held per hypothesis and decoding step (projection output,
# log-probabilities, accumulated scores). Checked on CTranslate2 4.8.5 on CPU with the bench
# model (58k vocabulary, 6 decoder layers, d_model 512, beam 4): two replicas' RSS growth was
# 0.8-1.25x the estimate for length-sorted batches of 4 to 25 sentences of 7 to 36 tokens.
VOCAB_VECTORS = 3
_LAYER = re.compile(r"^decoder/layer_(\d+)/")
# Far above any binary format version CTranslate2 has had (6 in 4.x): a larger first word is
# not a model file at all.
MAX_BINARY_VERSION = 100


@dataclass(frozen=True)
class ModelShape:
    """The dimensions that decide decoding memory."""

    vocabulary: int  # target vocabulary (rows of the output projection)
    decoder_layers: int
    d_model: int

    def hypothesis_bytes(self, source_tokens: int, target_tokens: int) -> int:
        """Memory one hypothesis holds: vocabulary vectors plus the decoder's attention keys
        and values (cross-attention over the source, self-attention over the target)."""
        caches = 2 * self.decoder_layers * self.d_model * (source_tokens + target_tokens)
        return FLOAT_BYTES * (VOCAB_VECTORS * self.vocabulary + caches)

    def batch_bytes(self, sentences: int, beam_size: int, longest_source: int) -> int:
        """Estimate for one generate call of ``sentences`` padded to ``longest_source`` tokens;
        the output is assumed as long as the input (translation, not generation)."""
        hypotheses = sentences * max(1, beam_size)
        return hypotheses * self.hypothesis_bytes(longest_source, longest_source)


def _string(f: BinaryIO) -> str:
    (length,) = struct.unpack("<H", f.read(2))
    return f.read(length).rstrip(b"\0").decode("utf-8")


def _variables(f: BinaryIO) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Names and shapes of the variables of an open ``model.bin``, and its aliases."""
    (version,) = struct.unpack("<I", f.read(4))
    if version < 5:
        raise ValueError(f"model.bin format {version} is too old to read")
    _string(f)  # spec name
    f.read(4)  # spec revision
    (count,) = struct.unpack("<I", f.read(4))
    shapes: dict[str, tuple[int, ...]] = {}
    for _ in range(count):
        name = _string(f)
        (rank,) = struct.unpack("<B", f.read(1))
        shape = struct.unpack(f"<{rank}I", f.read(4 * rank))
        f.read(1)  # dtype
        (size,) = struct.unpack("<I", f.read(4))
        f.seek(size, 1)
        shapes[name] = shape
    aliases: dict[str, str] = {}
    raw = f.read(4)
    if len(raw) == 4:
        (count,) = struct.unpack("<I", raw)
        for _ in range(count):
            alias = _string(f)
            aliases[alias] = _string(f)
    return shapes, aliases


def model_bin_problem(model_dir: Path) -> str | None:
    """Why ``model.bin`` is not a whole CTranslate2 model file, from its variable headers (the
    weights are skipped), or None. Finds garbage and truncation, not bad weights."""
    path = model_dir / "model.bin"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or not 1 <= struct.unpack("<I", head)[0] <= MAX_BINARY_VERSION:
                return f"{path} is not a CTranslate2 model file"
            if struct.unpack("<I", head)[0] < 5:
                return None  # too old to walk; CTranslate2 itself decides
            f.seek(0)
            try:
                _variables(f)
            except struct.error:
                if f.tell() < size:
                    raise
            if f.tell() > size:
                return f"{path} is truncated ({size} bytes)"
    except FileNotFoundError:
        return f"{path} is missing"
    except (OSError, ValueError, struct.error, UnicodeDecodeError, MemoryError) as exc:
        return f"{path} is corrupt ({type(exc).__name__}: {exc})"
    return None


def read_shape(model_dir: Path) -> ModelShape | None:
    """The decoder shape of a converted Transformer, or None when ``model.bin`` is not one
    (then no memory estimate is made and only the token budget applies)."""
    try:
        with open(model_dir / "model.bin", "rb") as f:
            shapes, aliases = _variables(f)
        projection = "decoder/projection/weight"
        shape = shapes.get(projection) or shapes.get(aliases.get(projection, ""))
        layers = {int(m.group(1)) for name in shapes if (m := _LAYER.match(name))}
        if not shape or len(shape) != 2 or not layers:
            raise ValueError("no decoder output projection or decoder layers")
        return ModelShape(vocabulary=shape[0], decoder_layers=len(layers), d_model=shape[1])
    except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        logger.warning("cannot read the shape of %s (%s); decoding memory is not estimated",
                       model_dir, exc)
        return None
