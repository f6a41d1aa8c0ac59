"""``argos:SRC-TGT``: the newest package for a pair from the Argos Translate package index.

The index is Argos's own JSON list (as argospm reads it): one object per package with
``from_code``, ``to_code``, ``package_version``, ``links`` (download URLs, tried in order;
``ipfs://`` links are skipped) and optionally ``code``, ``type``, ``size`` (bytes) and
``sha256``. Argos's index publishes no checksum today, so a download is verified against the
size the server announces (and the index's ``size``/``sha256`` where a mirror adds them), and
the package is then checked as a zip like any local ``.argosmodel``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from dragoman.server.errors import DragomanError, ModelNotFound, SourceUnavailable, StoreError
from dragoman.server.sources.download import Expected, download, fetch_bytes
from dragoman.server.store import InstalledModel, InstallOptions, ModelStore

logger = logging.getLogger(__name__)

# Where Argos Translate itself reads its index (argostranslate.settings.remote_package_index).
DEFAULT_INDEX = "https://raw.githubusercontent.com/argosopentech/argospm-index/main/index.json"
INDEX_ENV = "DRAGOMAN_ARGOS_INDEX"
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class ArgosPackage:
    """One entry of the index."""

    code: str
    from_code: str
    to_code: str
    version: str
    links: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None

    @property
    def version_key(self) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", self.version)) or (0,)

    @property
    def file_name(self) -> str:
        return f"{self.code}-{self.version}.argosmodel"


def index_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(INDEX_ENV) or DEFAULT_INDEX


def parse_index(data: Any, base_url: str) -> list[ArgosPackage]:
    """Translation packages of an index document; malformed entries are skipped."""
    if not isinstance(data, list):
        raise SourceUnavailable(f"{base_url} is not an Argos package index (not a JSON list)")
    packages = []
    for entry in data:
        if not isinstance(entry, dict) or entry.get("type", "translate") != "translate":
            continue
        try:
            from_code, to_code = str(entry["from_code"]), str(entry["to_code"])
            links = tuple(
                urljoin(base_url, str(link)) for link in entry.get("links", ())
                if str(link).split(":", 1)[0] in ("http", "https", "file")
                or "://" not in str(link)
            )
            size = entry.get("size")
            sha = entry.get("sha256")
            packages.append(ArgosPackage(
                code=str(entry.get("code") or f"translate-{from_code}_{to_code}"),
                from_code=from_code, to_code=to_code,
                version=str(entry.get("package_version", "0")), links=links,
                size=int(size) if isinstance(size, int) and size > 0 else None,
                sha256=str(sha) if isinstance(sha, str) and _SHA256.match(sha) else None,
            ))
        except (KeyError, TypeError, ValueError):
            logger.debug("skipping malformed index entry %r", entry)
    return packages


def load_index(url: str | None = None, timeout: float = 30.0) -> list[ArgosPackage]:
    url = url or index_url()
    raw = fetch_bytes(url, "the Argos package index", timeout=timeout)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SourceUnavailable(f"{url} is not an Argos package index ({exc})") from None
    return parse_index(data, url)


def newest(packages: list[ArgosPackage], source: str, target: str) -> ArgosPackage:
    matches = [p for p in packages if (p.from_code, p.to_code) == (source, target) and p.links]
    if not matches:
        nearby = sorted({f"{p.from_code}-{p.to_code}" for p in packages
                         if p.links and source in (p.from_code, p.to_code)})
        hint = f"; pairs with {source}: {', '.join(nearby)}" if nearby else ""
        raise ModelNotFound(f"the Argos index has no package for {source}-{target}{hint}")
    return max(matches, key=lambda p: p.version_key)


def install(
    source: str, target: str, store: ModelStore, options: InstallOptions = InstallOptions(),
    *, progress: Any = None, index: str | None = None,
) -> InstalledModel:
    """Download the newest ``source``-``target`` package (resuming an earlier attempt) and
    install it; the package file is removed once installed or found unusable."""
    package = newest(load_index(index), source, target)
    downloads = store.root / ".downloads"
    dest = downloads / package.file_name
    last: DragomanError | None = None
    for link in package.links:
        try:
            download(link, dest, Expected(package.size, package.sha256), progress=progress,
                     what=Path(link).name or package.file_name)
            break
        except (SourceUnavailable, ModelNotFound, StoreError) as exc:
            logger.warning("%s: %s", link, exc)
            last = exc
    else:
        assert last is not None
        raise last
    try:
        return store.install(dest, options)
    finally:
        dest.unlink(missing_ok=True)
