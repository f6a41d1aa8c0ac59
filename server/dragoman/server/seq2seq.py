"""One CTranslate2 seq2seq model with its tokenizers and the manifest's token rules.

A single ``ctranslate2.Translator`` serves every request for the model (CTranslate2 releases
the GIL and runs ``inter_threads`` replicas over one copy of the weights). Everything
family-specific (language tokens, target prefixes, text prefixes) is applied here from the
manifest, so the layers above only speak ISO 639-1 codes.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dragoman.server.errors import InvalidInput
from dragoman.server.manifest import Manifest
from dragoman.server.memory import ModelShape, read_shape
from dragoman.server.tokenizer import load_tokenizers

# Source tokens per CTranslate2 batch on CPU (activation memory grows with it); the one default
# of RuntimeOptions, BatchingOptions and ServerConfig.
DEFAULT_MAX_BATCH_TOKENS = 512

logger = logging.getLogger(__name__)

# How long ``unload`` waits for CTranslate2 to let go of a model that just finished a batch.
UNLOAD_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class RuntimeOptions:
    """How models are loaded and run (shared by every model of a server)."""

    device: str = "cpu"
    # "auto": each model at the precision it was installed with (see compute_type_for).
    compute_type: str = "auto"
    inter_threads: int = 1
    intra_threads: int = 0  # 0 lets CTranslate2 pick
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS


@dataclass(frozen=True)
class DecodingOptions:
    """Decoding settings of one call; hashable so they can be part of a cache key."""

    beam_size: int = 4
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    min_decoding_length: int = 1
    max_decoding_length: int = 0  # 0 = derived from the input so output is never cut short


@dataclass(frozen=True)
class Encoded:
    """A tokenised source and the target prefix the model family needs."""

    source: tuple[str, ...]
    target_prefix: tuple[str, ...] = ()
    # Also return the output's attention over the source (see Hypothesis): sentences whose
    # inline markup is put back by word alignment ask for it.
    align: bool = False


class Hypothesis(tuple[str, ...]):
    """Output tokens; ``attention`` holds, for an ``align`` request, one row per output token
    over the source's text pieces (family prefix and suffix tokens left out)."""

    attention: np.ndarray | None = None  # float32, output tokens x source pieces


# Compute type of models whose manifest records no precision (Argos packages ship int8 weights).
UNRECORDED_COMPUTE_TYPE = "int8"


def compute_type_for(configured: str, manifest: Manifest) -> str:
    """The CTranslate2 compute type to load a model with.

    An explicit ``--compute-type`` wins. Otherwise ("auto" or "") the model runs at the
    precision it was installed with: a checkpoint converted with ``--quantization float32``
    must not be re-quantised to int8 at load. CTranslate2's "default" keeps the weights' saved
    type (falling back to the nearest one the device supports, e.g. float16 on a CPU); models
    that record nothing are loaded as int8, as before.
    """
    if configured and configured != "auto":
        return configured
    return "default" if manifest.quantization else UNRECORDED_COMPUTE_TYPE


# Derived decoding caps are rounded up to a multiple of this, so that sentences of similar
# length share a cap and beam search can decode them in one call (see ``decoding_cap``).
CAP_STEP = 32
# No derived cap is below CTranslate2's own default ``max_decoding_length``: every sentence of
# up to 120 tokens (nearly all of an article) shares this cap, so a beam-search batch is one
# CTranslate2 call instead of one per length class (2-3 smaller calls per batch cost about a
# tenth of the throughput), and a short sentence is never cut shorter than raw CTranslate2
# would cut it. The price: a model stuck repeating itself on a short sentence runs on to 256
# tokens, as it would under CTranslate2's defaults.
MIN_CAP = 256


def decoding_cap(encoded: Encoded, options: DecodingOptions, positions: int) -> int:
    """The most tokens ``encoded`` may decode to: a function of the sentence alone.

    ``options.max_decoding_length`` when set, else 2 x its source + 16 (rounded up to
    ``CAP_STEP``) and at least ``MIN_CAP``, so an output that never reaches ``</s>`` stops at
    the same length whatever shares its batch; bounded by the decoder's position table
    (``positions``) less the target prefix.
    """
    derived = -(-(2 * len(encoded.source) + 16) // CAP_STEP) * CAP_STEP
    cap = options.max_decoding_length or max(MIN_CAP, derived)
    if positions:
        cap = max(1, min(cap, positions - len(encoded.target_prefix) - 1))
    return cap


def _expand(templates: Sequence[str], src: str, tgt: str) -> tuple[str, ...]:
    return tuple(t.replace("{src}", src).replace("{tgt}", tgt) for t in templates)


class Seq2SeqModel:
    """A loaded model: encode text, generate in batches, decode tokens."""

    def __init__(self, model_dir: Path, manifest: Manifest, runtime: RuntimeOptions) -> None:
        self.path = model_dir
        self.manifest = manifest
        self.runtime = runtime
        import ctranslate2  # here, not at import: the CLI and config stay light

        self._source_tok, self._target_tok = load_tokenizers(model_dir, manifest.tokenizer)
        self._lock = threading.Lock()
        self._active = 0
        self.compute_type = compute_type_for(runtime.compute_type, manifest)
        kwargs: dict[str, object] = {
            "device": runtime.device,
            "compute_type": self.compute_type,
            "inter_threads": max(1, runtime.inter_threads),
        }
        if runtime.intra_threads:
            kwargs["intra_threads"] = runtime.intra_threads
        self._translator = ctranslate2.Translator(str(model_dir), **kwargs)
        logger.info(
            "loaded model %s (%s, compute type %s%s) from %s", manifest.name, manifest.task,
            self.compute_type,
            f" = installed {manifest.quantization}" if self.compute_type == "default" else "",
            model_dir,
        )

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def loaded(self) -> bool:
        return bool(self._translator.model_is_loaded)

    def unload(self) -> bool:
        """Free the weights (the tokenizers stay); refused while a batch is decoding.

        CTranslate2 silently skips ``unload_model`` while one of its replica threads still
        holds the model, which can briefly outlive a finished ``translate_batch``; so retry
        for a moment and report whether the weights really went.
        """
        deadline = time.monotonic() + UNLOAD_WAIT_SECONDS
        while True:
            with self._lock:
                if self._active:
                    return False
                if self._translator.model_is_loaded:
                    self._translator.unload_model()
                if not self._translator.model_is_loaded:
                    return True
            if time.monotonic() >= deadline:
                logger.warning("model %s: CTranslate2 kept the weights loaded", self.name)
                return False
            time.sleep(0.002)

    def load(self) -> None:
        with self._lock:
            if not self._translator.model_is_loaded:
                self._translator.load_model()

    @functools.cached_property
    def shape(self) -> ModelShape | None:
        """Decoder dimensions from ``model.bin``, read on first use (only a memory cap needs them)."""
        return read_shape(self.path)

    def batch_bytes(self, sentences: int, longest: int, options: DecodingOptions) -> int:
        """Estimated decoding memory of one call (0 when the model's shape is unknown)."""
        if self.shape is None:
            return 0
        return self.shape.batch_bytes(sentences, options.beam_size, longest)

    def default_options(self, beam_size: int = 0) -> DecodingOptions:
        g = self.manifest.generation
        return DecodingOptions(
            beam_size=beam_size or g.beam_size,
            length_penalty=g.length_penalty,
            repetition_penalty=g.repetition_penalty,
            no_repeat_ngram_size=g.no_repeat_ngram_size,
            min_decoding_length=g.min_decoding_length,
            max_decoding_length=g.max_decoding_length,
        )

    def _codes(self, source: str, target: str) -> tuple[str, str]:
        m = self.manifest
        if source not in m.source_languages:
            raise InvalidInput(f"model {m.name} does not read {source!r}")
        if target not in m.target_languages:
            raise InvalidInput(f"model {m.name} does not write {target!r}")
        return m.code(source), m.code(target)

    def tokenize(self, text: str) -> list[str]:
        return self._source_tok.encode(self.manifest.text_prefix + text)

    def encode(self, text: str, source: str, target: str) -> Encoded:
        src, tgt = self._codes(source, target)
        m = self.manifest
        tokens = (
            *_expand(m.source_prefix, src, tgt),
            *self.tokenize(text),
            *_expand(m.source_suffix, src, tgt),
        )
        return Encoded(tokens, _expand(m.target_prefix, src, tgt))

    def overhead(self) -> int:
        """Tokens the family adds around every source."""
        return len(self.manifest.source_prefix) + len(self.manifest.source_suffix)

    def fits(self, text: str) -> bool:
        """Whether ``text`` fits the model's input window once encoded."""
        return len(self.tokenize(text)) + self.overhead() <= self.manifest.max_input_tokens

    def decode(self, tokens: Sequence[str]) -> str:
        return self._target_tok.decode(tokens)

    def generate(
        self, batch: Sequence[Encoded], options: DecodingOptions
    ) -> list[tuple[str, ...]]:
        """Run ``translate_batch`` over ``batch``; returns output tokens without the prefix.

        The batch is handed over whole with a token budget: CTranslate2 sorts it by length and
        cuts it into padding-efficient sub-batches itself. ``max_input_length=0`` turns off
        CTranslate2's own input truncation: callers split long inputs before they get here.

        Every sentence decodes under its own length cap (:func:`decoding_cap`), so its output
        does not depend on its batch neighbours. CTranslate2 takes one cap per call: greedy
        search decodes the batch at the largest cap and cuts each output to its own (a greedy
        step depends only on the tokens before it, so that is exact); beam search, whose
        choice at the cap depends on the cap, decodes one call per distinct cap.
        """
        if not batch:
            return []
        with self._lock:
            if not self._translator.model_is_loaded:
                self._translator.load_model()
            self._active += 1
        try:
            return self._generate(batch, options)
        finally:
            with self._lock:
                self._active -= 1

    def _generate(
        self, batch: Sequence[Encoded], options: DecodingOptions
    ) -> list[tuple[str, ...]]:
        positions = self.manifest.max_output_tokens
        caps = [decoding_cap(e, options, positions) for e in batch]
        if options.beam_size <= 1:
            groups = [list(range(len(batch)))]
        else:
            by_cap: dict[int, list[int]] = {}
            for i, cap in enumerate(caps):
                by_cap.setdefault(cap, []).append(i)
            groups = list(by_cap.values())
        outputs: list[tuple[str, ...]] = [()] * len(batch)
        for group in groups:
            hypotheses = self._translate([batch[i] for i in group], options,
                                         max(caps[i] for i in group))
            for i, tokens in zip(group, hypotheses):
                encoded = batch[i]
                n = len(encoded.target_prefix)
                if n and tokens[:n] == list(encoded.target_prefix):
                    tokens = tokens[n:]
                tokens = tokens[:caps[i]]
                if len(tokens) >= caps[i] and not options.max_decoding_length:
                    logger.warning(
                        "model %s: output reached max_decoding_length=%d for a %d-token input",
                        self.name, caps[i], len(encoded.source),
                    )
                outputs[i] = tuple(tokens)
        wanted = [i for i, encoded in enumerate(batch) if encoded.align]
        if wanted:
            attention = self._attention([batch[i] for i in wanted], [outputs[i] for i in wanted])
            for i, hypothesis in zip(wanted, attention):
                outputs[i] = hypothesis
        return outputs

    def _attention(
        self, batch: Sequence[Encoded], outputs: Sequence[tuple[str, ...]]
    ) -> list[Hypothesis]:
        """Attention of each output over its source, from a forced greedy pass.

        Not from the decoding call itself: with CTranslate2 4.8.5, beam search over a padded
        batch can return a wrong attention row for the first output token of the shorter
        sentences. Re-decoding the chosen outputs as target prefixes with greedy search gives
        the attention of exactly those tokens; padding does not change it (tests compare it
        with raw CTranslate2 decoding each sentence alone).
        """
        prefixes = [list(e.target_prefix) + list(tokens) for e, tokens in zip(batch, outputs)]
        results = self._translator.translate_batch(
            [list(e.source) for e in batch], target_prefix=prefixes, beam_size=1,
            max_decoding_length=max(len(p) for p in prefixes) + 1, return_attention=True,
            max_batch_size=self.runtime.max_batch_tokens, batch_type="tokens",
            max_input_length=0,
        )
        hypotheses = []
        first = len(self.manifest.source_prefix)
        for encoded, tokens, result in zip(batch, outputs, results):
            out = Hypothesis(tokens)
            rows = result.attention[0] if result.attention else []
            last = len(encoded.source) - len(self.manifest.source_suffix)
            skip = len(encoded.target_prefix)
            matrix = np.asarray(rows[skip:skip + len(tokens)], dtype=np.float32)
            out.attention = matrix[:, first:last] if matrix.ndim == 2 else matrix.reshape(0, 0)
            hypotheses.append(out)
        return hypotheses

    def _translate(
        self, batch: Sequence[Encoded], options: DecodingOptions, max_len: int
    ) -> list[list[str]]:
        prefixes = [list(e.target_prefix) or None for e in batch]
        results = self._translator.translate_batch(
            [list(e.source) for e in batch],
            target_prefix=prefixes if any(prefixes) else None,
            max_batch_size=self.runtime.max_batch_tokens,
            batch_type="tokens",
            beam_size=options.beam_size,
            length_penalty=options.length_penalty,
            repetition_penalty=options.repetition_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            min_decoding_length=options.min_decoding_length,
            max_decoding_length=max_len,
            max_input_length=0,
        )
        return [list(result.hypotheses[0]) for result in results]
