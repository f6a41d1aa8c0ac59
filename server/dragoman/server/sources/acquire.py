"""One entry point for every source a model can come from, and the pairs ``serve --install``
asks for.

``argos:SRC-TGT``, ``hf:OWNER/REPO[@REV]``, ``opus-mt:SRC-TGT`` or a local package/folder;
everything ends in :meth:`ModelStore.install` (atomic, confined, validated).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from dragoman.server.errors import DragomanError, InvalidInput, StoreError
from dragoman.server.sources import argos, hub
from dragoman.server.sources.catalogue import catalogue_entry
from dragoman.server.store import InstalledModel, InstallOptions, ModelStore

logger = logging.getLogger(__name__)

SCHEMES = ("argos", "hf", "opus-mt")
_CODE = re.compile(r"^[a-z]{2,3}$")


def parse_pair(text: str, separator: str = "-") -> tuple[str, str]:
    """``de-en`` (or ``de:en``) -> ("de", "en")."""
    parts = text.strip().split(separator)
    if len(parts) != 2 or not all(_CODE.match(p) for p in parts):
        raise StoreError(f"{text!r}: expected SRC{separator}TGT language codes, e.g. "
                         f"de{separator}en")
    return parts[0], parts[1]


def _with_defaults(spec: str, options: InstallOptions) -> InstallOptions:
    """Catalogue entries say what their checkpoint does not (T5: task and language)."""
    entry = catalogue_entry(spec)
    if entry is None:
        return options
    changes = {k: v for k, v in entry.defaults.items() if not getattr(options, k)}
    if "text_prefix" in entry.defaults and options.text_prefix is not None:
        changes.pop("text_prefix", None)
    return replace(options, **changes) if changes else options  # type: ignore[arg-type]


def install(
    spec: str, store: ModelStore, options: InstallOptions = InstallOptions(), *,
    progress: Any = None,
) -> InstalledModel:
    """Install from ``spec`` (a source or a path; an existing path always wins)."""
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SCHEMES or Path(spec).exists():
        return store.install(Path(spec), options)
    if scheme == "argos":
        source, target = parse_pair(rest)
        return argos.install(source, target, store, options, progress=progress)
    ref = hub.opus_mt(rest) if scheme == "opus-mt" else hub.parse_ref(rest)
    return hub.install(ref, store, _with_defaults(spec, options), progress=progress)


def _served(store: ModelStore) -> set[tuple[str, str]]:
    return {pair for m in store.list() if m.manifest.task == "translate"
            for pair in m.manifest.pairs()}


def ensure_pairs(
    pairs: Sequence[str], store: ModelStore, *, progress: Any = None,
) -> list[str]:
    """Install a model for every ``SRC:TGT`` no installed model serves: the Argos package
    first, then OPUS-MT. Never fails for a source that cannot be reached: returns the pairs
    still without a model (and logs why), so the server starts with what it has."""
    wanted = []
    for text in pairs:
        try:
            wanted.append(parse_pair(text, ":"))
        except StoreError as exc:
            raise InvalidInput(f"--install: {exc}") from None
    missing = []
    for source, target in wanted:
        if (source, target) in _served(store):
            logger.info("%s->%s: already installed", source, target)
            continue
        reasons = []
        for spec in (f"argos:{source}-{target}", f"opus-mt:{source}-{target}"):
            try:
                model = install(spec, store, progress=progress)
            except DragomanError as exc:
                reasons.append(f"{spec}: {exc}")
                continue
            logger.info("%s->%s: installed %s from %s", source, target, model.name, spec)
            break
        else:
            logger.warning("%s->%s: could not install a model (%s); serving without it",
                           source, target, "; ".join(reasons))
            missing.append(f"{source}:{target}")
    return missing
