"""Steps every family shares: run CTranslate2's converter, copy tokenizer files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Sequence

from dragoman.server.errors import StoreError

logger = logging.getLogger(__name__)


def run_transformers_converter(
    source: Path, target: Path, quantization: str | None, copy_files: Sequence[str] = ()
) -> Path:
    """Convert a Hugging Face checkpoint folder into a CTranslate2 folder at ``target``."""
    from ctranslate2.converters import TransformersConverter

    present = [name for name in copy_files if (source / name).is_file()]
    try:
        converter = TransformersConverter(str(source), copy_files=present or None)
        converter.convert(str(target), quantization=quantization or None, force=True)
    except (ValueError, OSError, RuntimeError, KeyError) as exc:
        raise StoreError(f"conversion of {source} failed: {exc}") from exc
    logger.info("converted %s -> %s (%s)", source, target, quantization or "float32")
    return target


def copy_into(target: Path, files: dict[str, Path]) -> None:
    """Copy files into the model folder under the given names."""
    for name, path in files.items():
        if not path.is_file():
            raise StoreError(f"expected tokenizer file {path} is missing")
        shutil.copy2(path, target / name)
