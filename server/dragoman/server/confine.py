"""Install safety: what an install may read and write.

Nothing outside the source folder is read (symbolic links out of it, loops and links to folders
are refused), zip packages are checked before a byte is written and only a model's members are
unpacked, nothing larger than ``--max-model-mb`` or than the free disk is written, and the
languages a model is installed for are codes the service accepts. Every problem is one
:class:`StoreError` (the user's to fix) or :class:`SourceUnavailable` (disk full).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path, PurePosixPath

from dragoman.server.errors import SourceUnavailable, StoreError
from dragoman.server.langcodes import to_iso639_1
from dragoman.server.manifest import Manifest
from dragoman.server.text.languages import is_language_code

logger = logging.getLogger(__name__)

# The largest model folder an install may write (--max-model-mb): NLLB-200 1.3B in float32 is
# about 5.5 GB, the catalogue's int8 conversions and every Argos package far less.
DEFAULT_MAX_MODEL_BYTES = 8 * 1024**3
MAX_UNPACKED_BYTES = DEFAULT_MAX_MODEL_BYTES
# What an Argos package's folder holds that a model needs (besides model/); anything else
# (stanza/, junk) is not unpacked at all.
ARGOS_FILES = ("metadata.json", "sentencepiece.model", "README.md")


def argos_member(name: str) -> bool:
    """Whether an archive member is part of the model (``[pkg/]model/...`` or a known file)."""
    parts = PurePosixPath(name).parts
    if len(parts) > 1 and parts[0] != "model":
        parts = parts[1:]  # the package's own top folder
    return bool(parts) and (parts[0] == "model" or (len(parts) == 1 and parts[0] in ARGOS_FILES))


def too_big(what: object, max_bytes: int) -> str:
    return (f"{what}: the model would take more than {max_bytes} bytes; raise --max-model-mb "
            "(env DRAGOMAN_MAX_MODEL_MB) if it really is that large")


def safe_extract(
    package: Path, dest: Path, max_bytes: int = MAX_UNPACKED_BYTES, *,
    wanted: Callable[[str], bool] | None = None, free_space_of: Path | None = None,
) -> None:
    """Extract a zip, refusing absolute paths, ``..``, symlinks and zip bombs.

    Every member's name is checked; only those ``wanted`` accepts are extracted and count
    towards ``max_bytes``. A corrupt archive (bad CRC, truncated data) is a StoreError."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with zipfile.ZipFile(package) as zf:
            members = zf.infolist()
            chosen = []
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
                if wanted is not None and not wanted(name):
                    logger.info("%s: not unpacking %s (not part of a model)", package.name, name)
                    continue
                chosen.append(info)
                total += info.file_size
                if total > max_bytes:
                    raise StoreError(
                        f"{package}: unpacks to more than {max_bytes} bytes; raise "
                        "--max-model-mb (env DRAGOMAN_MAX_MODEL_MB) if the model really is "
                        "that large"
                    )
            if free_space_of is not None:
                ensure_free_space(free_space_of, total)
            for info in chosen:
                zf.extract(info, dest)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise StoreError(f"{package}: corrupt package ({exc})") from exc


def ensure_free_space(folder: Path, needed: int) -> None:
    """Fail before writing when the disk cannot hold ``needed`` more bytes."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise SourceUnavailable(
            f"disk full: need {needed / 1e6:.0f} MB in {folder}, {free / 1e6:.0f} MB free"
        )


@contextmanager
def disk_errors(folder: Path) -> Iterator[None]:
    """ENOSPC/EDQUOT anywhere in an install becomes one clear line."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise SourceUnavailable(f"disk full while installing into {folder}") from None
        if exc.errno == errno.ELOOP:
            raise StoreError(f"symbolic link loop: {exc.filename}") from None
        raise StoreError(f"cannot install: {exc}") from exc


# -- confinement: nothing outside the source folder is read, nothing outside is referenced --


def source_roots(source: Path) -> tuple[Path, ...]:
    """Folders a source's symbolic links may point into: the folder itself and, for a Hugging
    Face cache snapshot (``models--org--name/snapshots/<commit>``), that repository's cache
    (the snapshot's files are links into ``../../blobs``)."""
    real = source.resolve()
    roots = [real]
    if real.parent.name == "snapshots" and real.parent.parent.name.startswith("models--"):
        roots.append(real.parent.parent)
    return tuple(roots)


def _link_target(path: Path, roots: Sequence[Path]) -> Path:
    try:
        real = Path(os.path.realpath(path, strict=True))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{path}: symbolic link loop") from None
        raise StoreError(f"{path}: broken symbolic link ({exc.strerror})") from None
    if not any(real == root or root in real.parents for root in roots):
        raise StoreError(
            f"{path} is a symbolic link that points outside the source folder ({real}); "
            "refusing to copy it"
        )
    return real


def _walk(source: Path) -> Iterator[tuple[Path, bool]]:
    """(path, is_link) for every file below ``source``; links to folders are refused (they
    could loop or reach anywhere)."""
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        here = Path(dirpath)
        for name in dirnames:
            if (here / name).is_symlink():
                raise StoreError(
                    f"{here / name}: links to folders are not supported in a model folder; "
                    "copy the files instead"
                )
        for name in filenames:
            path = here / name
            yield path, path.is_symlink()


def check_links(source: Path, roots: Sequence[Path]) -> None:
    """Refuse a source folder holding a symbolic link out of ``roots``, a loop or a dangling
    link, before anything reads through it (the converters open files by name)."""
    for path, is_link in _walk(source):
        if is_link:
            _link_target(path, roots)


def copy_confined(source: Path, target: Path, roots: Sequence[Path], max_bytes: int) -> None:
    """Copy a folder; links inside ``roots`` become plain files, others are refused."""
    total = 0
    target.mkdir(parents=True)
    for path, is_link in _walk(source):
        real = _link_target(path, roots) if is_link else path
        total += real.stat().st_size
        if total > max_bytes:
            raise StoreError(too_big(source, max_bytes).replace("the model would take",
                                                                 "the folder holds"))
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real, dest)


def _language(code: str) -> str:
    """An ISO 639-1 code as the service accepts it; ISO 639-2/3 codes of one are mapped."""
    code = code.strip()
    if is_language_code(code):
        return code
    if re.fullmatch(r"[a-z]{3}", code):
        mapped = to_iso639_1(code)
        if mapped:
            return mapped
    raise StoreError(
        f"language {code!r} is not an ISO 639-1 code (nor an ISO 639-3 code of one) that the "
        "service accepts; say which languages the model serves with --source/--target"
    )


def checked_languages(manifest: Manifest) -> Manifest:
    """Validate (and normalise to ISO 639-1) the languages a model is installed for."""
    codes = {}
    for iso, own in manifest.language_codes.items():
        codes[_language(iso)] = own
    return replace(
        manifest,
        source_languages=tuple(dict.fromkeys(_language(c) for c in manifest.source_languages)),
        target_languages=tuple(dict.fromkeys(_language(c) for c in manifest.target_languages)),
        language_codes=codes,
    )

