"""An Argos Translate ``.argosmodel`` package around a CTranslate2 model, built offline."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)


_LANGUAGE_NAMES = {
    "ar": "Arabic", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
    "it": "Italian", "ja": "Japanese", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese",
    "ru": "Russian", "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese",
}


def build_argos_package(
    path: Path,
    sp_model: Path,
    ct2_model_dir: Path,
    from_code: str,
    to_code: str,
    *,
    name: str | None = None,
    target_prefix: str | None = None,
    package_version: str = "1.0",
) -> Path:
    """Write an Argos Translate ``.argosmodel`` package to ``path`` and return ``path``.

    Same layout as Argos Translate's published packages: a zip holding one top-level folder
    (``name``, default ``translate-<from>_<to>-<version with _>``, as argospm names them)
    with ``metadata.json``, ``model/`` (the CTranslate2 model folder),
    ``sentencepiece.model`` and ``README.md``. ``target_prefix`` is written to the metadata
    the way multilingual Argos packages declare it (a raw target-vocabulary token).
    """
    path, ct2_model_dir = Path(path), Path(ct2_model_dir)
    if not (ct2_model_dir / "model.bin").is_file():
        raise FileNotFoundError(f"{ct2_model_dir} is not a CTranslate2 model folder (no model.bin)")
    folder = name or f"translate-{from_code}_{to_code}-{package_version.replace('.', '_')}"
    from_name = _LANGUAGE_NAMES.get(from_code, from_code)
    to_name = _LANGUAGE_NAMES.get(to_code, to_code)
    metadata: dict[str, object] = {
        "package_version": package_version,
        "argos_version": "1.0",
        "from_code": from_code,
        "from_name": from_name,
        "to_code": to_code,
        "to_name": to_name,
        "type": "translate",
        "links": [],
    }
    if target_prefix:
        metadata["target_prefix"] = target_prefix
    readme = f"# {from_name} to {to_name}\n\nTest package built offline by tests/support/argospackage.py.\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.mkdir(f"{folder}/")
        archive.writestr(f"{folder}/metadata.json", json.dumps(metadata, indent=4, ensure_ascii=False) + "\n")
        archive.writestr(f"{folder}/README.md", readme)
        archive.write(sp_model, f"{folder}/sentencepiece.model")
        archive.mkdir(f"{folder}/model/")
        for file in sorted(ct2_model_dir.rglob("*")):
            relative = file.relative_to(ct2_model_dir).as_posix()
            if file.is_dir():
                archive.mkdir(f"{folder}/model/{relative}/")
            else:
                archive.write(file, f"{folder}/model/{relative}")
    logger.info("wrote Argos package %s (%s -> %s)", path, from_code, to_code)
    return path
