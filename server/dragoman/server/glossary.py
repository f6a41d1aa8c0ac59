"""Named glossaries kept with the model store, and the checks every glossary goes through.

A glossary maps source terms to the target terms a newsroom wants ("council" -> "Stadtrat")
for one language pair. Named glossaries live as JSON files in ``<model store>/.glossaries``
(hidden, so the store never mistakes them for models; on the same volume as the models, so a
server and ``dragoman glossaries add`` agree on where they are without another setting).
Files are written atomically and re-read when they change.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dragoman.server.errors import GlossaryNotFound, InvalidInput
from dragoman.server.text.languages import is_language_code

logger = logging.getLogger(__name__)

FOLDER = ".glossaries"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_TERMS = 10_000
MAX_TERM_CHARS = 200


@dataclass(frozen=True)
class Glossary:
    name: str
    source: str  # ISO 639-1 code of the source terms
    target: str
    terms: tuple[tuple[str, str], ...]  # (source term, target term), in file order

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "source": self.source, "target": self.target,
                "terms": dict(self.terms)}


def check_terms(pairs: Iterable[tuple[str, str]], what: str = "glossary") -> tuple[tuple[str, str], ...]:
    """Validated (source, target) pairs: non-empty, bounded, no source term twice."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for source, target in pairs:
        if not isinstance(source, str) or not isinstance(target, str):
            raise InvalidInput(f"{what} terms must be strings")
        if not source.strip() or not target.strip():
            raise InvalidInput(f"{what} has an empty term ({source!r} -> {target!r})")
        if source != source.strip() or target != target.strip():
            raise InvalidInput(f"{what} term {source!r} -> {target!r} has spaces around it")
        if len(source) > MAX_TERM_CHARS or len(target) > MAX_TERM_CHARS:
            raise InvalidInput(f"{what} terms are limited to {MAX_TERM_CHARS} characters")
        if source in seen:
            raise InvalidInput(f"{what} lists {source!r} twice")
        seen.add(source)
        out.append((source, target))
    if len(out) > MAX_TERMS:
        raise InvalidInput(f"{what} has {len(out)} terms; the limit is {MAX_TERMS}")
    return tuple(out)


def check_keep(terms: Iterable[str]) -> tuple[str, ...]:
    """Validated do-not-translate terms."""
    out = []
    for term in terms:
        if not term.strip() or term != term.strip():
            raise InvalidInput(f"do-not-translate term {term!r} is empty or has spaces around it")
        if len(term) > MAX_TERM_CHARS:
            raise InvalidInput(f"do-not-translate terms are limited to {MAX_TERM_CHARS} characters")
        out.append(term)
    if len(out) > MAX_TERMS:
        raise InvalidInput(f"{len(out)} do-not-translate terms; the limit is {MAX_TERMS}")
    return tuple(dict.fromkeys(out))


def read_terms(path: Path) -> tuple[tuple[str, str], ...]:
    """Terms from a file: a JSON object {source: target}, or lines "source<TAB>target"
    (CSV-like "source,target" also accepted when there is no tab; "#" starts a comment)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read glossary file {path}: {exc}") from exc
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{path} must hold an object of source: target terms")
        return check_terms(data.items(), str(path))
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        separator = "\t" if "\t" in line else ","
        source, found, target = line.partition(separator)
        if not found:
            raise InvalidInput(f"{path} line {number}: expected source<TAB>target")
        pairs.append((source.strip(), target.strip()))
    return check_terms(pairs, str(path))


class GlossaryStore:
    """The named glossaries of one model store."""

    def __init__(self, models_dir: Path) -> None:
        self.root = Path(models_dir) / FOLDER
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, int, Glossary]] = {}

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise InvalidInput(
                f"glossary name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
        return self.root / f"{name}.json"

    def add(self, name: str, source: str, target: str,
            terms: Iterable[tuple[str, str]], replace: bool = False) -> Glossary:
        path = self._path(name)
        for code, what in ((source, "source"), (target, "target")):
            if not is_language_code(code):
                raise InvalidInput(f"glossary {what} language {code!r} is not an ISO 639-1 code")
        glossary = Glossary(name, source, target, check_terms(terms, f"glossary {name}"))
        if not glossary.terms:
            raise InvalidInput(f"glossary {name} has no terms")
        if path.exists() and not replace:
            raise InvalidInput(f"glossary {name} exists; remove it first or use --replace")
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".add-", dir=self.root)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(glossary.as_json(), out, ensure_ascii=False, indent=1)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        logger.info("glossary %s saved (%s->%s, %d terms)", name, source, target,
                    len(glossary.terms))
        return glossary

    def remove(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise GlossaryNotFound(f"no glossary named {name!r}") from None

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json") if _NAME.fullmatch(p.stem))

    def list(self) -> list[Glossary]:
        return [self.get(name) for name in self.names()]

    def get(self, name: str) -> Glossary:
        """The glossary called ``name``, re-read only when its file changed."""
        path = self._path(name)
        try:
            stat = path.stat()
        except FileNotFoundError:
            have = ", ".join(self.names()) or "none"
            raise GlossaryNotFound(
                f"no glossary named {name!r} (have: {have}); add one with "
                "`dragoman glossaries add`") from None
        with self._lock:
            cached = self._cache.get(name)
            if cached and cached[:2] == (stat.st_mtime, stat.st_size):
                return cached[2]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            glossary = Glossary(str(data["name"]), str(data["source"]), str(data["target"]),
                                check_terms(dict(data["terms"]).items(), f"glossary {name}"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"glossary {name} is unreadable: {exc}") from exc
        with self._lock:
            self._cache[name] = (stat.st_mtime, stat.st_size, glossary)
        return glossary
