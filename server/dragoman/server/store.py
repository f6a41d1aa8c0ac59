"""The model store: a folder of CTranslate2 models, each with a ``dragoman.json`` manifest.

Installs are atomic: everything is unpacked or converted into a hidden temporary folder inside
the store and renamed into place only when complete, so a crash never leaves a half-written
model that the server would try to load. Zip packages are checked for path traversal before a
single byte is written.
"""

from __future__ import annotations

import builtins  # ModelStore.list shadows list inside the class
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from dragoman.server.confine import (  # noqa: F401 - safe_extract, MAX_UNPACKED_BYTES: API
    DEFAULT_MAX_MODEL_BYTES,
    MAX_UNPACKED_BYTES,
    argos_member,
    check_links,
    checked_languages,
    copy_confined,
    disk_errors,
    ensure_free_space,
    safe_extract,
    source_roots,
    too_big,
)
from dragoman.server.errors import ModelNotFound, StoreError
from dragoman.server.manifest import (  # InstallOptions: re-exported, callers import it here
    MANIFEST_NAME,
    InstallOptions,
    Manifest,
    Tokenizer,
    check_confined,
    read_manifest,
    write_manifest,
)
from dragoman.server.memory import model_bin_problem

logger = logging.getLogger(__name__)

SP_CANDIDATES = ("sentencepiece.model", "spiece.model", "source.spm", "sentencepiece.bpe.model")
_NAME_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def _install_id(folder: Path) -> tuple[int, int]:
    try:
        return folder.stat().st_ino, (folder / MANIFEST_NAME).stat().st_mtime_ns
    except OSError:
        return 0, 0


def name_from_folder(folder: Path) -> str:
    """A store name from a source folder's name (``./opus-mt-en-de-ct2/`` -> its last part)."""
    name = Path(os.path.abspath(folder)).name
    return (_NAME_BAD.sub("-", name).strip("-.") or "model")[:128]


def default_store_dir() -> Path:
    """``$DRAGOMAN_MODELS`` is handled by the config; this is the per-user default."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("dragoman", appauthor=False)) / "models"


@dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path
    manifest: Manifest
    # Which install this is (the folder's inode, the manifest's mtime): a reinstall under the
    # same name (``--force``) changes it, so a running server can tell and reload.
    install_id: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class BrokenFolder:
    """A store folder that holds no usable model, and why."""

    name: str  # the folder's name (its manifest, which would name the model, is unreadable)
    reason: str


class ModelStore:
    def __init__(self, root: Path, max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES) -> None:
        self.root = Path(root).expanduser()
        self.max_model_bytes = max_model_bytes

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"

    # -- reading --------------------------------------------------------------------

    def list(self) -> list[InstalledModel]:
        """Installed models by name; folders without a readable manifest are skipped."""
        models, unreadable = self.scan()
        for folder in unreadable:
            logger.warning("skipping %s: %s", self.root / folder.name, folder.reason)
        return models

    def scan(self) -> tuple[builtins.list[InstalledModel], builtins.list[BrokenFolder]]:
        """Installed models, and the folders whose manifest cannot be read (quietly: the
        caller decides how often to say so)."""
        if not self.root.is_dir():
            return [], []
        models = []
        unreadable = []
        for child in sorted(self.root.iterdir()):
            if child.name.startswith(".") or not (child / MANIFEST_NAME).is_file():
                continue
            try:
                manifest = read_manifest(child)
            except StoreError as exc:
                unreadable.append(BrokenFolder(child.name, str(exc)))
                continue
            models.append(InstalledModel(manifest.name, child, manifest, _install_id(child)))
        return models, unreadable

    @staticmethod
    def problem(model: InstalledModel) -> str | None:
        """Why the model's folder cannot be loaded, from a cheap look at its files (no
        weights are read), or None. Loading can still fail for reasons only it finds."""
        tokenizer = model.manifest.tokenizer
        for name in dict.fromkeys((tokenizer.source, tokenizer.target)):
            if not (model.path / name).is_file():
                return f"{name} is missing from {model.path}"
        return model_bin_problem(model.path)

    def get(self, name: str) -> InstalledModel:
        for model in self.list():
            if model.name == name:
                return model
        raise ModelNotFound(f"no model named {name!r} in {self.root}")

    def remove(self, name: str) -> None:
        model = self.get(name)
        trash = self.root / f".remove-{name}"
        shutil.rmtree(trash, ignore_errors=True)
        model.path.rename(trash)  # atomic: the model disappears at once
        shutil.rmtree(trash, ignore_errors=True)
        logger.info("removed model %s", name)

    # -- installing -----------------------------------------------------------------

    def install(self, source: Path, options: InstallOptions = InstallOptions()) -> InstalledModel:
        """Install from an Argos package, a CTranslate2 folder or (with the convert extra) a
        Hugging Face checkpoint or native Marian model."""
        source = Path(source).expanduser()
        if not source.exists():
            if source.is_symlink():
                raise StoreError(f"{source} is a broken or looping symbolic link")
            raise StoreError(f"{source} does not exist")
        self.root.mkdir(parents=True, exist_ok=True)
        with disk_errors(self.root):
            staging = Path(tempfile.mkdtemp(prefix=".install-", dir=self.root))
            try:
                target = staging / "model"
                manifest = self._stage(source, staging, target, options)
                if options.name:
                    manifest = manifest.with_name(options.name)
                if options.text_prefix is not None:
                    manifest = replace(manifest, text_prefix=options.text_prefix)
                manifest = checked_languages(manifest)
                self._check_size(target)
                write_manifest(target, manifest)
                check_confined(target, manifest)
                return self._commit(target, manifest, options.force)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def _stage(
        self, source: Path, staging: Path, target: Path, options: InstallOptions
    ) -> Manifest:
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise StoreError(
                    f"{source} is not a zip/.argosmodel package; give a model folder instead"
                )
            return self._install_argos(source, staging, target, options)
        roots = source_roots(source)
        check_links(source, roots)
        if (source / "model.bin").is_file():
            return self._install_ct2_folder(source, target, options, roots)
        if _is_marian_native(source) or (source / "config.json").is_file():
            from dragoman.server import convert  # optional extra: transformers + torch

            return convert.convert_model(source, target, options)
        raise StoreError(
            f"{source} is neither a CTranslate2 model (model.bin), an Argos package, "
            "a Hugging Face checkpoint (config.json) nor a Marian model (decoder.yml)"
        )

    def _check_size(self, folder: Path) -> None:
        total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        if total > self.max_model_bytes:
            raise StoreError(too_big(folder.name, self.max_model_bytes))

    def _commit(self, staged: Path, manifest: Manifest, force: bool) -> InstalledModel:
        final = self.root / manifest.name
        if any(m.name == manifest.name for m in self.list()) or final.exists():
            if not force:
                raise StoreError(
                    f"a model named {manifest.name!r} is already installed; "
                    "use --force to replace it or --name to install under another name"
                )
            old = self.root / f".replace-{manifest.name}"
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                final.rename(old)
            staged.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staged.rename(final)
        logger.info("installed model %s into %s", manifest.name, final)
        return InstalledModel(manifest.name, final, manifest)

    def _install_ct2_folder(
        self, source: Path, target: Path, options: InstallOptions, roots: Sequence[Path]
    ) -> Manifest:
        copy_confined(source, target, roots, self.max_model_bytes)
        if (target / MANIFEST_NAME).is_file():
            manifest = read_manifest(target)
            return _override(manifest, options)
        return _manifest_from_options(
            target, options, family="ctranslate2", default_name=name_from_folder(source)
        )

    def _install_argos(
        self, package: Path, staging: Path, target: Path, options: InstallOptions
    ) -> Manifest:
        unpacked = staging / "unpacked"
        safe_extract(package, unpacked, self.max_model_bytes, wanted=argos_member,
                     free_space_of=self.root)
        roots = [p for p in unpacked.iterdir() if p.is_dir()]
        root = roots[0] if len(roots) == 1 and not (unpacked / "metadata.json").exists() else unpacked
        meta_path = root / "metadata.json"
        if not meta_path.is_file():
            raise StoreError(f"{package} has no metadata.json: not an Argos Translate package")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{package}: bad metadata.json ({exc})") from exc
        if not isinstance(meta, dict):
            raise StoreError(f"{package}: metadata.json must hold a JSON object")
        try:
            from_code, to_code = str(meta["from_code"]), str(meta["to_code"])
        except KeyError as exc:
            raise StoreError(f"{package}: metadata.json lacks {exc}") from exc
        max_input = meta.get("max_input_tokens", 256)
        if isinstance(max_input, bool) or not isinstance(max_input, (int, str)) \
                or not str(max_input).strip().isdigit():
            raise StoreError(
                f"{package}: metadata.json max_input_tokens must be a whole number, "
                f"not {max_input!r}"
            )
        if meta.get("type", "translate") != "translate":
            raise StoreError(f"{package}: package type {meta.get('type')!r} is not supported")
        model_dir = root / "model"
        sp = root / "sentencepiece.model"
        if not (model_dir / "model.bin").is_file() or not sp.is_file():
            raise StoreError(f"{package} lacks model/model.bin or sentencepiece.model")
        shutil.copytree(model_dir, target)
        shutil.copy2(sp, target / "sentencepiece.model")
        prefix = meta.get("target_prefix") or ""
        manifest = Manifest(
            name=f"argos-{from_code}-{to_code}",
            task="translate",
            family="argos",
            source_languages=(from_code,),
            target_languages=(to_code,),
            tokenizer=Tokenizer("sentencepiece", "sentencepiece.model", "sentencepiece.model"),
            target_prefix=(prefix,) if prefix else (),
            max_input_tokens=int(str(max_input).strip()),
            description=str(meta.get("package_version", "")) and
            f"Argos Translate package {package.name} (version {meta.get('package_version')})",
        )
        return _override(manifest, options)


def _override(manifest: Manifest, options: InstallOptions) -> Manifest:
    changes: dict[str, object] = {}
    if options.task:
        changes["task"] = options.task
    if options.source_languages:
        changes["source_languages"] = tuple(options.source_languages)
    if options.target_languages:
        changes["target_languages"] = tuple(options.target_languages)
    return replace(manifest, **changes) if changes else manifest  # type: ignore[arg-type]


def _manifest_from_options(
    target: Path, options: InstallOptions, family: str, default_name: str
) -> Manifest:
    missing = [
        flag
        for flag, value in (
            ("--task", options.task),
            ("--source", options.source_languages),
            ("--target", options.target_languages or options.task == "summarise"),
        )
        if not value
    ]
    if missing:
        raise StoreError(
            "this CTranslate2 folder has no dragoman.json; say what it is with "
            + " ".join(missing)
        )
    tokenizer = _find_tokenizer(target)
    targets = options.target_languages or options.source_languages
    return Manifest(
        name=options.name or default_name,
        task=options.task,  # type: ignore[arg-type]
        family=family,
        source_languages=tuple(options.source_languages),
        target_languages=tuple(targets),
        tokenizer=tokenizer,
    )


def _find_tokenizer(folder: Path) -> Tokenizer:
    if (folder / "source.spm").is_file():
        tgt = "target.spm" if (folder / "target.spm").is_file() else "source.spm"
        return Tokenizer("sentencepiece", "source.spm", tgt)
    for name in SP_CANDIDATES:
        if (folder / name).is_file():
            return Tokenizer("sentencepiece", name, name)
    if (folder / "tokenizer.json").is_file():
        return Tokenizer("huggingface", "tokenizer.json", "tokenizer.json")
    raise StoreError(
        f"no tokenizer in {folder}: expected one of {', '.join(SP_CANDIDATES)}, "
        "source.spm/target.spm or tokenizer.json"
    )


def _is_marian_native(folder: Path) -> bool:
    return (folder / "decoder.yml").is_file() or any(folder.glob("*.npz"))
