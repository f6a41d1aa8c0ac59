"""Conversion of Hugging Face checkpoints and native Marian models into the store's format.

Optional extra (``pip install 'dragoman[convert]'``): it needs transformers and torch, which
the server itself never imports. Each family module turns a checkpoint into a CTranslate2
folder plus a manifest describing its tokens and languages; this module only dispatches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from dragoman.server.errors import StoreError
from dragoman.server.manifest import Manifest
from dragoman.server.store import InstallOptions

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
    """Convert ``source`` into ``target`` (a new CTranslate2 folder) and return its manifest."""
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
    return _load(FAMILIES[model_type])(source, target, options)


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
