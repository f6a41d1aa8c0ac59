"""``hf:OWNER/REPO[@REVISION]`` and ``opus-mt:SRC-TGT``: checkpoints from the Hugging Face Hub.

Downloads go through ``huggingface_hub`` (the convert extra), so ``HF_ENDPOINT`` (mirrors),
``HF_TOKEN`` (gated and private repositories), ``HF_HUB_OFFLINE`` and its cache (``HF_HOME``,
``HF_HUB_CACHE``) work as everywhere else; they are read when the install runs. Only the files
a conversion reads are fetched: the configs, tokenizer files, the README (OPUS-MT languages)
and one set of weights, safetensors when the repository has them, never TensorFlow, Flax,
Rust or ONNX copies. Once downloaded, every file is checked against the hash it is stored
under in the cache (SHA-256 for LFS files, the git blob SHA-1 otherwise); the snapshot is then
converted and installed like a local checkpoint folder.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dragoman.server.errors import ModelNotFound, SourceUnavailable, StoreError
from dragoman.server.store import InstalledModel, InstallOptions, ModelStore, name_from_folder

logger = logging.getLogger(__name__)

OPUS_MT_OWNER = "Helsinki-NLP"
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HEX = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")

# Files conversion reads (top level of the repository only).
CONFIG_FILES = (
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
    "source.spm", "target.spm", "spiece.model", "sentencepiece.model", "sentencepiece.bpe.model",
    "*.spm", "README.md",
)
SAFETENSORS = ("model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json")
TORCH_WEIGHTS = ("pytorch_model.bin", "pytorch_model-*-of-*.bin", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"hf:{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def parse_ref(spec: str) -> HubRef:
    """``OWNER/REPO[@REVISION]``."""
    repo, _, revision = spec.partition("@")
    if not _REPO.match(repo) or ".." in repo:
        raise StoreError(f"hf:{spec}: expected hf:OWNER/REPO or hf:OWNER/REPO@REVISION")
    return HubRef(repo, revision or None)


def opus_mt(pair: str) -> HubRef:
    """``de-en`` -> Helsinki-NLP/opus-mt-de-en."""
    parts = pair.split("-")
    if len(parts) != 2 or not all(re.fullmatch(r"[A-Za-z_]{2,12}", p) for p in parts):
        raise StoreError(
            f"opus-mt:{pair}: expected opus-mt:SRC-TGT (e.g. opus-mt:de-en); other OPUS-MT "
            f"repositories install with hf:{OPUS_MT_OWNER}/REPO"
        )
    return HubRef(f"{OPUS_MT_OWNER}/opus-mt-{parts[0]}-{parts[1]}")


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return "/" not in name and any(fnmatch.fnmatchcase(name, p) for p in patterns)


def choose_files(ref: HubRef, names: Iterable[str]) -> list[str]:
    """What to download from a repository listing: configs, tokenizers, one set of weights."""
    names = sorted(set(names))
    if "config.json" not in names:
        raise StoreError(f"{ref} has no config.json: not a transformers checkpoint")
    weights = [n for n in names if _matches(n, SAFETENSORS)] or \
        [n for n in names if _matches(n, TORCH_WEIGHTS)]
    if not weights:
        raise StoreError(
            f"{ref} has no PyTorch weights (model.safetensors or pytorch_model.bin) to convert"
        )
    return [n for n in names if _matches(n, CONFIG_FILES)] + weights


@dataclass(frozen=True)
class HubSettings:
    """huggingface_hub's environment, read when an install runs (not at import)."""

    endpoint: str | None
    token: str | None
    offline: bool
    cache_dir: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubSettings:
        env = os.environ if env is None else env
        cache = env.get("HF_HUB_CACHE") or (
            str(Path(env["HF_HOME"]) / "hub") if env.get("HF_HOME") else None)
        return cls(
            endpoint=(env.get("HF_ENDPOINT") or "").rstrip("/") or None,
            token=env.get("HF_TOKEN") or None,
            offline=(env.get("HF_HUB_OFFLINE") or "").strip().lower() in ("1", "true", "yes", "on"),
            cache_dir=cache,
        )

    @property
    def where(self) -> str:
        return self.endpoint or "https://huggingface.co"


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise StoreError(
            "downloading from the Hugging Face Hub needs the convert extra: "
            "pip install torch==2.13.0 && pip install 'dragoman[convert]'"
        ) from None
    return huggingface_hub


def fetch(ref: HubRef, *, progress: Any = None, settings: HubSettings | None = None) -> Path:
    """Download (or find in the cache) the files conversion needs; return the snapshot."""
    settings = settings or HubSettings.from_env()
    hub = _hub()
    try:
        return _fetch(hub, ref, progress, settings)
    except Exception as exc:  # every failure becomes one domain error
        raise _domain_error(hub, ref, settings, exc) from None


def _fetch(hub: Any, ref: HubRef, progress: Any, settings: HubSettings) -> Path:
    revision = ref.revision
    names: list[str] | None = None
    if not settings.offline:
        try:
            info = hub.HfApi(endpoint=settings.endpoint, token=settings.token).model_info(
                ref.repo_id, revision=revision)
            names = [s.rfilename for s in info.siblings or ()]
        except _connection_errors(hub) as exc:
            logger.warning("cannot reach %s (%s); looking in the Hugging Face cache",
                           settings.where, exc)
    offline = names is None
    if offline:
        names = [f.path for f in hub.get_cached_repo_tree(
            ref.repo_id, revision=revision, cache_dir=settings.cache_dir)]
    wanted = choose_files(ref, names or ())
    # The branch or tag itself (not the commit it points to) goes to snapshot_download, so the
    # cache records the ref and later offline installs of the same name find the snapshot.
    logger.info("%s: fetching %s", ref, ", ".join(wanted))
    snapshot = Path(hub.snapshot_download(
        ref.repo_id, revision=revision, allow_patterns=wanted, endpoint=settings.endpoint,
        token=settings.token, cache_dir=settings.cache_dir, local_files_only=offline,
        tqdm_class=progress, max_workers=4,
    ))
    verify_snapshot(snapshot, wanted)
    return snapshot


def _connection_errors(hub: Any) -> tuple[type[BaseException], ...]:
    import httpx2  # huggingface_hub's HTTP client

    return (httpx2.ConnectError, httpx2.TimeoutException, hub.errors.OfflineModeIsEnabled,
            ConnectionError)


def verify_snapshot(snapshot: Path, names: Iterable[str]) -> None:
    """Check every file against the hash it is cached under (blobs/<sha256 or git sha1>); a
    mismatching file is removed from the cache so the next run downloads it again."""
    for name in names:
        path = snapshot / name
        if not path.is_file():
            raise SourceUnavailable(f"{name} is missing from {snapshot}; run again")
        blob = Path(os.path.realpath(path))
        expected = blob.name
        if not _HEX.match(expected):
            continue  # not a cache blob (a local_dir copy, or no symlinks on this system)
        data = blob.read_bytes()
        actual = hashlib.sha256(data).hexdigest() if len(expected) == 64 else \
            hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        if actual != expected:
            blob.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            raise SourceUnavailable(
                f"{name}: checksum mismatch (got {actual}, expected {expected}); removed from "
                "the Hugging Face cache, run again"
            )


def _domain_error(hub: Any, ref: HubRef, settings: HubSettings, exc: Exception) -> Exception:
    errors = hub.errors
    if isinstance(exc, (StoreError, ModelNotFound, SourceUnavailable)):
        return exc
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, errors.GatedRepoError):
        return StoreError(
            f"{ref} is gated ({status}): accept its terms on the Hub, then set HF_TOKEN")
    if isinstance(exc, errors.RevisionNotFoundError):
        return ModelNotFound(f"{ref}: no such revision at {settings.where}")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return ModelNotFound(
            f"{ref}: no such repository at {settings.where} (a private one needs HF_TOKEN)")
    if isinstance(exc, errors.LocalEntryNotFoundError) or \
            isinstance(exc, errors.CachedRepoTreeNotFoundError):
        why = "HF_HUB_OFFLINE is set" if settings.offline else \
            f"{settings.where} cannot be reached (offline?)"
        return SourceUnavailable(f"{why} and {ref} is not in the Hugging Face cache")
    if isinstance(exc, errors.HfHubHTTPError):
        if status in (401, 403):
            return StoreError(
                f"{ref}: access denied by {settings.where} ({status}); check HF_TOKEN")
        if status == 404:
            return ModelNotFound(f"{ref}: not found at {settings.where}")
        return SourceUnavailable(f"{ref}: {settings.where} answered {status}; try later")
    if isinstance(exc, OSError) and getattr(exc, "errno", None) in (28, 122):  # ENOSPC, EDQUOT
        return SourceUnavailable(f"disk full while downloading {ref}")
    if isinstance(exc, _connection_errors(hub)):
        return SourceUnavailable(f"cannot download {ref}: {settings.where} cannot be reached "
                                 f"({exc}) (offline?)")
    if isinstance(exc, (OSError, ValueError)):
        return SourceUnavailable(f"cannot download {ref}: {' '.join(str(exc).split())}")
    raise exc


def default_name(ref: HubRef) -> str:
    return name_from_folder(Path(ref.repo_id.split("/", 1)[1]))


def install(
    ref: HubRef, store: ModelStore, options: InstallOptions = InstallOptions(), *,
    progress: Any = None, settings: HubSettings | None = None,
) -> InstalledModel:
    """Fetch ``ref`` and convert it into the store (named after the repository)."""
    snapshot = fetch(ref, progress=progress, settings=settings)
    return store.install(snapshot, replace(options, name=options.name or default_name(ref)))
