"""Hugging Face summarisers (BART, T5/mT5, PEGASUS) into CTranslate2 folders with manifests.

CTranslate2's converter writes the weights and the decoder start token; this module records
what it cannot: which tokens the Hugging Face tokenizer puts around a source (so the ids
CTranslate2 sees equal the ids ``transformers`` would feed the model), T5's task prefix, the
forced first target token, the input window and the checkpoint's own generation settings.

Languages: BART, PEGASUS and T5 checkpoints are English models (their pre-training corpora
are English), so they default to ``en``; ``--source`` overrides that for a checkpoint
fine-tuned on another language. mT5 is multilingual and needs ``--source``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from dragoman.server.convert.common import run_transformers_converter
from dragoman.server.errors import StoreError
from dragoman.server.manifest import (
    Generation,
    InstallOptions,
    Manifest,
    Tokenizer,
    read_json_object,
)

logger = logging.getLogger(__name__)

T5_TEXT_PREFIX = "summarize: "
# Families whose pre-training corpora are English: installed for "en" unless --source says.
ENGLISH_FAMILIES = frozenset({"bart", "t5", "pegasus"})
DEFAULT_T5_WINDOW = 512
_PROBE = "a"  # any text: the tokens around its encoding are the source prefix and suffix
# Layer-norm placement CTranslate2's BART loader reads from the config (``normalize_before``
# without a default). transformers 5 configs no longer carry these keys, so checkpoints saved
# with it lack them; the values are fixed facts of each architecture (and what checkpoints
# saved by transformers 4 state explicitly).
_ARCHITECTURE = {
    "bart": ("BartConfig", {"normalize_before": False, "normalize_embedding": True}),
    "pegasus": ("PegasusConfig", {"normalize_before": True, "normalize_embedding": False}),
}
_ARCHITECTURE_LOCK = threading.Lock()


def convert_bart(source: Path, target: Path, options: InstallOptions) -> Manifest:
    """BART: byte-level BPE (``tokenizer.json``), sources wrapped in ``<s>`` ... ``</s>``."""
    return _convert(source, target, options, tokenizer_kind="huggingface")


def convert_t5(source: Path, target: Path, options: InstallOptions) -> Manifest:
    """T5 and mT5: SentencePiece (``spiece.model``), sources end with ``</s>``; T5 reads a
    task prefix ("summarize: " unless the checkpoint names another), mT5 none."""
    return _convert(source, target, options, tokenizer_kind="sentencepiece")


def convert_pegasus(source: Path, target: Path, options: InstallOptions) -> Manifest:
    """PEGASUS: SentencePiece (``spiece.model``), sources end with ``</s>``."""
    return _convert(source, target, options, tokenizer_kind="sentencepiece")


# -- reading the checkpoint -----------------------------------------------------------------


def generation_settings(config: dict[str, Any], generation_config: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's summarisation settings: ``config.json``, then its
    ``task_specific_params["summarization"]`` (T5 keeps them there), then
    ``generation_config.json``; later sources win."""
    merged: dict[str, Any] = {}
    task = (config.get("task_specific_params") or {}).get("summarization") or {}
    for layer in (config, task, generation_config):
        merged.update({k: v for k, v in layer.items() if v is not None})
    return merged


def generation_defaults(settings: dict[str, Any]) -> Generation:
    """Map Hugging Face generation settings onto the manifest's.

    Absent settings take transformers' defaults (greedy: ``num_beams`` 1), not the manifest's.
    Hugging Face's ``max_length``/``min_length`` count the decoder start token of
    encoder-decoder models; CTranslate2's decoding lengths do not, hence the ``- 1``. With
    ``forced_eos_token_id`` (BART) Hugging Face spends the last position on ``</s>``, which
    CTranslate2 cannot force, so one more token is reserved: both then stop after the same
    text.
    """
    g = Generation()
    # transformers decodes greedily unless the checkpoint asks for beams (its GenerationConfig
    # default is num_beams=1, and save_pretrained writes only what differs from the defaults).
    values: dict[str, Any] = {"beam_size": max(1, int(settings.get("num_beams") or 1))}
    for key, name, cast in (
        ("length_penalty", "length_penalty", float),
        ("repetition_penalty", "repetition_penalty", float),
        ("no_repeat_ngram_size", "no_repeat_ngram_size", int),
    ):
        if key in settings:
            values[name] = cast(settings[key])
    forced_eos = 1 if settings.get("forced_eos_token_id") is not None else 0
    if settings.get("max_new_tokens"):
        values["max_decoding_length"] = max(1, int(settings["max_new_tokens"]) - forced_eos)
    elif settings.get("max_length"):
        values["max_decoding_length"] = max(1, int(settings["max_length"]) - 1 - forced_eos)
    if settings.get("min_new_tokens"):
        values["min_decoding_length"] = int(settings["min_new_tokens"])
    elif settings.get("min_length"):
        values["min_decoding_length"] = max(1, int(settings["min_length"]) - 1)
    top = values.get("max_decoding_length", g.max_decoding_length)
    if top and values.get("min_decoding_length", g.min_decoding_length) > top:
        values["min_decoding_length"] = top
    return replace(g, **values)


def input_window(model_type: str, config: dict[str, Any]) -> int:
    """Longest source in tokens: learned positions bound BART/PEGASUS; T5's relative
    positions do not, so its nominal ``n_positions`` (512 when absent) is used."""
    if model_type in ("t5", "mt5"):
        return int(config.get("n_positions") or DEFAULT_T5_WINDOW)
    window = config.get("max_position_embeddings")
    if not window:
        raise StoreError(f"config.json of this {model_type} checkpoint has no max_position_embeddings")
    return int(window)


def _languages(model_type: str, options: InstallOptions) -> tuple[str, ...]:
    if options.source_languages:
        return tuple(options.source_languages)
    if model_type in ENGLISH_FAMILIES:
        return ("en",)
    raise StoreError(
        f"{model_type} checkpoints are multilingual: say which languages this summariser "
        "reads with --source (e.g. --source en,de,fr)"
    )


def _text_prefix(model_type: str, settings: dict[str, Any]) -> str:
    if "prefix" in settings:
        return str(settings["prefix"])
    return T5_TEXT_PREFIX if model_type == "t5" else ""


def _name(source: Path, options: InstallOptions) -> str:
    if options.name:
        return options.name
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", source.resolve().name).lstrip("._-")[:128]
    return name or "summariser"


# -- the Hugging Face tokenizer --------------------------------------------------------------


def special_tokens(tokenizer: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The tokens the tokenizer adds before and after a source (BART ``<s>``/``</s>``,
    T5 and PEGASUS ``</s>``), found by encoding a probe with and without them."""
    plain = tokenizer.convert_ids_to_tokens(tokenizer(_PROBE, add_special_tokens=False)["input_ids"])
    full = tokenizer.convert_ids_to_tokens(tokenizer(_PROBE)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return tuple(full[:start]), tuple(full[start + len(plain):])
    raise StoreError(f"cannot tell which tokens {type(tokenizer).__name__} adds around a source")


def _forced_prefix(tokenizer: Any, settings: dict[str, Any]) -> tuple[str, ...]:
    """BART-CNN style ``forced_bos_token_id``: the first target token, as a target prefix."""
    forced = settings.get("forced_bos_token_id")
    if forced is None:
        return ()
    return (str(tokenizer.convert_ids_to_tokens(int(forced))),)


def _write_tokenizer(source: Path, target: Path, kind: str, tokenizer: Any) -> Tokenizer:
    """Tokenizer files for the manifest (the converter copied those the checkpoint has).

    SentencePiece families use ``spiece.model`` and fall back to ``tokenizer.json``; a
    checkpoint with only vocab.json/merges.txt gets a ``tokenizer.json`` exported from its
    (fast) Hugging Face tokenizer.
    """
    if kind == "sentencepiece" and (target / "spiece.model").is_file():
        return Tokenizer("sentencepiece", "spiece.model", "spiece.model")
    if not (target / "tokenizer.json").is_file():
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise StoreError(
                f"{source} has neither spiece.model nor tokenizer.json, and its tokenizer "
                "cannot be exported as tokenizer.json"
            )
        backend.save(str(target / "tokenizer.json"))
        logger.info("exported tokenizer.json from the checkpoint's tokenizer")
    return Tokenizer("huggingface", "tokenizer.json", "tokenizer.json")


# -- conversion -----------------------------------------------------------------------------


@contextmanager
def architecture_defaults(model_type: str) -> Iterator[None]:
    """Give the config class the architecture's layer-norm facts as class-level defaults
    while CTranslate2 converts; a value in the checkpoint's config.json still wins."""
    entry = _ARCHITECTURE.get(model_type)
    if entry is None:
        yield
        return
    import transformers

    cls = getattr(transformers, entry[0])
    with _ARCHITECTURE_LOCK:
        added = [key for key in entry[1] if not hasattr(cls, key)]
        for key in added:
            setattr(cls, key, entry[1][key])
        try:
            yield
        finally:
            for key in added:
                delattr(cls, key)


def _convert(source: Path, target: Path, options: InstallOptions, tokenizer_kind: str) -> Manifest:
    from transformers import AutoTokenizer

    config = read_json_object(source / "config.json")
    model_type = str(config.get("model_type", ""))
    if options.task and options.task != "summarise":
        raise StoreError(f"{model_type} checkpoints are installed as summarisers, not {options.task!r}")
    languages = _languages(model_type, options)
    settings = generation_settings(config, read_json_object(source / "generation_config.json"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError, TypeError) as exc:
        raise StoreError(f"cannot load the tokenizer of {source}: {exc}") from exc
    prefix, suffix = special_tokens(tokenizer)
    with architecture_defaults(model_type):
        run_transformers_converter(
            source, target, options.quantization or None,
            copy_files=("spiece.model", "tokenizer.json"),
        )
    manifest = Manifest(
        name=_name(source, options),
        task="summarise",
        family=model_type,
        source_languages=languages,
        target_languages=languages,
        tokenizer=_write_tokenizer(source, target, tokenizer_kind, tokenizer),
        source_prefix=prefix,
        source_suffix=suffix,
        target_prefix=_forced_prefix(tokenizer, settings),
        text_prefix=_text_prefix(model_type, settings) if model_type in ("t5", "mt5") else "",
        max_input_tokens=input_window(model_type, config),
        # T5's relative positions have no table to run past.
        max_output_tokens=0 if model_type in ("t5", "mt5") else input_window(model_type, config),
        generation=generation_defaults(settings),
        description=f"{model_type} summariser converted from {source.name}",
    )
    logger.info(
        "summariser %s: languages %s, window %d, source %s...%s, text prefix %r",
        manifest.name, ",".join(languages), manifest.max_input_tokens, prefix, suffix,
        manifest.text_prefix,
    )
    return manifest
