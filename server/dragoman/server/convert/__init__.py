"""Conversion of Hugging Face checkpoints and native Marian models into the store's format.

Optional extra (``pip install 'dragoman[convert]'``): it needs transformers and torch, which
the server itself never imports. Each family module turns a checkpoint into a CTranslate2
folder plus a manifest describing its tokens and languages; this module only dispatches.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

from dragoman.server.errors import StoreError
from dragoman.server.manifest import InstallOptions, Manifest

# model_type in config.json -> "module:function" converting that family.
FAMILIES: dict[str, str] = {
    "marian": "translation:convert_marian",
    "m2m_100": "translation:convert_m2m100_or_nllb",
    "nllb": "translation:convert_m2m100_or_nllb",
    "bart": "summarisation:convert_bart",
    "t5": "summarisation:convert_t5",
    "mt5": "summarisation:convert_t5",
    "pegasus": "summarisation:convert_pegasus",
}


def convert_model(source: Path, target: Path, options: InstallOptions) -> Manifest:
    """Convert ``source`` into ``target`` (a new CTranslate2 folder) and return its manifest,
    which records the precision the weights were saved at (the server loads them at it)."""
    return replace(
        _convert(source, target, options), quantization=options.quantization or "float32"
    )


def _convert(source: Path, target: Path, options: InstallOptions) -> Manifest:
    if (source / "decoder.yml").is_file() or any(source.glob("*.npz")):
        return _load("translation:convert_marian_native")(source, target, options)
    try:
        config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {source / 'config.json'}: {exc}") from exc
    model_type = str(config.get("model_type", ""))
    if model_type not in FAMILIES:
        raise StoreError(
            f"{source}: model_type {model_type!r} is not supported; supported families: "
            + ", ".join(sorted(FAMILIES))
        )
    check_tokenizer_files(source, model_type, config)
    return _load(FAMILIES[model_type])(source, target, options)


# Tokenizer files each family's transformers tokenizer is built from: alternatives, each a set
# of files that must all be there. Without them transformers may still build *a* tokenizer
# (T5 falls back to one that yields nothing useful), so the install is refused up front.
TOKENIZER_FILES: dict[str, tuple[tuple[str, ...], ...]] = {
    "marian": (("source.spm", "target.spm", "vocab.json"),),
    "t5": (("spiece.model",), ("tokenizer.json",)),
    "mt5": (("spiece.model",), ("tokenizer.json",)),
    "pegasus": (("spiece.model",), ("tokenizer.json",)),
    "bart": (("vocab.json", "merges.txt"), ("tokenizer.json",)),
    "nllb": (("sentencepiece.bpe.model",), ("tokenizer.json",)),
    "m2m_100": (("vocab.json", "sentencepiece.bpe.model"),),
}


def _family_label(model_type: str, config: dict[str, object], source: Path) -> str:
    """NLLB checkpoints say ``model_type: m2m_100``; their tokenizer class tells them apart."""
    declared = str(config.get("tokenizer_class") or "")
    if not declared:
        try:
            tok_config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
            declared = str(tok_config.get("tokenizer_class") or "")
        except (OSError, ValueError, AttributeError):
            declared = ""
    return "nllb" if model_type == "m2m_100" and declared.startswith("Nllb") else model_type


def check_tokenizer_files(source: Path, model_type: str, config: dict[str, object]) -> None:
    """Refuse a checkpoint that lacks the files its tokenizer is made of, naming them."""
    family = _family_label(model_type, config, source)
    alternatives = TOKENIZER_FILES.get(family)
    if not alternatives:
        return
    if any(all((source / name).is_file() for name in files) for files in alternatives):
        return

    def both(files: tuple[str, ...]) -> str:
        return files[0] if len(files) == 1 else ", ".join(files[:-1]) + " and " + files[-1]

    needs = both(alternatives[0]) + "".join(f" (or {both(f)})" for f in alternatives[1:])
    missing = [name for name in alternatives[0] if not (source / name).is_file()]
    raise StoreError(
        f"{source} has no tokenizer files: a {family} checkpoint needs {needs} next to its "
        f"config.json (missing: {', '.join(missing)}); download them with the weights, e.g. "
        f"`huggingface-cli download REPO {' '.join(alternatives[0])} --local-dir {source}`"
    )


def _load(spec: str) -> Callable[[Path, Path, InstallOptions], Manifest]:
    module_name, func = spec.split(":")
    try:
        import transformers  # noqa: F401 - fail early with an actionable message
    except ImportError:
        raise StoreError(
            "converting this model needs the convert extra: "
            "pip install torch==2.13.0 && pip install 'dragoman[convert]'"
        ) from None
    import importlib

    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, func)
