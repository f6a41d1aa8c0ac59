"""The model store: a folder of CTranslate2 models, each with a ``dragoman.json`` manifest.

Installs are atomic: everything is unpacked or converted into a hidden temporary folder inside
the store and renamed into place only when complete, so a crash never leaves a half-written
model that the server would try to load. Zip packages are checked for path traversal before a
single byte is written.
"""

from __future__ import annotations

import json
import logging
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from dragoman.server.errors import ModelNotFound, StoreError
from dragoman.server.manifest import (
    MANIFEST_NAME,
    Manifest,
    Tokenizer,
    read_manifest,
    write_manifest,
)

logger = logging.getLogger(__name__)

SP_CANDIDATES = ("sentencepiece.model", "spiece.model", "source.spm", "sentencepiece.bpe.model")
MAX_UNPACKED_BYTES = 8 * 1024**3


def default_store_dir() -> Path:
    """``$DRAGOMAN_MODELS`` is handled by the config; this is the per-user default."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("dragoman", appauthor=False)) / "models"


@dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path
    manifest: Manifest


@dataclass(frozen=True)
class InstallOptions:
    """What the user tells ``models install`` where the source does not say it itself."""

    name: str | None = None
    task: str | None = None
    source_languages: tuple[str, ...] = ()
    target_languages: tuple[str, ...] = ()
    quantization: str = "int8"
    force: bool = False
    # Replaces the text prefix a converter would pick (T5: "summarize: "); None keeps it.
    text_prefix: str | None = None


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"

    # -- reading --------------------------------------------------------------------

    def list(self) -> list[InstalledModel]:
        """Installed models by name; folders without a readable manifest are skipped."""
        if not self.root.is_dir():
            return []
        models = []
        for child in sorted(self.root.iterdir()):
            if child.name.startswith(".") or not (child / MANIFEST_NAME).is_file():
                continue
            try:
                manifest = read_manifest(child)
            except StoreError as exc:
                logger.warning("skipping %s: %s", child, exc)
                continue
            models.append(InstalledModel(manifest.name, child, manifest))
        return models

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
            raise StoreError(f"{source} does not exist")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".install-", dir=self.root))
        try:
            target = staging / "model"
            if source.is_file():
                if not zipfile.is_zipfile(source):
                    raise StoreError(
                        f"{source} is not a zip/.argosmodel package; give a model folder instead"
                    )
                manifest = self._install_argos(source, staging, target, options)
            elif (source / "model.bin").is_file():
                manifest = self._install_ct2_folder(source, target, options)
            elif _is_marian_native(source) or (source / "config.json").is_file():
                from dragoman.server import convert  # optional extra: transformers + torch

                manifest = convert.convert_model(source, target, options)
            else:
                raise StoreError(
                    f"{source} is neither a CTranslate2 model (model.bin), an Argos package, "
                    "a Hugging Face checkpoint (config.json) nor a Marian model (decoder.yml)"
                )
            if options.name:
                manifest = manifest.with_name(options.name)
            if options.text_prefix is not None:
                manifest = replace(manifest, text_prefix=options.text_prefix)
            write_manifest(target, manifest)
            return self._commit(target, manifest, options.force)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

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
        self, source: Path, target: Path, options: InstallOptions
    ) -> Manifest:
        shutil.copytree(source, target, symlinks=False)
        if (target / MANIFEST_NAME).is_file():
            manifest = read_manifest(target)
            return _override(manifest, options)
        return _manifest_from_options(target, options, family="ctranslate2")

    def _install_argos(
        self, package: Path, staging: Path, target: Path, options: InstallOptions
    ) -> Manifest:
        unpacked = staging / "unpacked"
        safe_extract(package, unpacked)
        roots = [p for p in unpacked.iterdir() if p.is_dir()]
        root = roots[0] if len(roots) == 1 and not (unpacked / "metadata.json").exists() else unpacked
        meta_path = root / "metadata.json"
        if not meta_path.is_file():
            raise StoreError(f"{package} has no metadata.json: not an Argos Translate package")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            from_code, to_code = str(meta["from_code"]), str(meta["to_code"])
        except (ValueError, KeyError) as exc:
            raise StoreError(f"{package}: bad metadata.json ({exc})") from exc
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
            max_input_tokens=int(meta.get("max_input_tokens", 256)),
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


def _manifest_from_options(target: Path, options: InstallOptions, family: str) -> Manifest:
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
        name=options.name or target.parent.name,
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


def safe_extract(package: Path, dest: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> None:
    """Extract a zip, refusing absolute paths, ``..``, symlinks and zip bombs."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with zipfile.ZipFile(package) as zf:
        members = zf.infolist()
        total = 0
        for info in members:
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise StoreError(f"{package}: unsafe path {name!r} in archive")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise StoreError(f"{package}: symbolic link {name!r} in archive")
            resolved = (root / name).resolve()
            if resolved != root and root not in resolved.parents:
                raise StoreError(f"{package}: unsafe path {name!r} in archive")
            total += info.file_size
            if total > max_bytes:
                raise StoreError(f"{package}: unpacks to more than {max_bytes} bytes")
        for info in members:
            zf.extract(info, dest)

