"""Benchmark text made from what every Python installation ships: stdlib docstrings.

No downloads: the English prose in the standard library's docstrings trains the SentencePiece
vocabulary and is cut into article-sized documents of unique sentences (so neither the
service's sentence cache nor its in-document de-duplication can flatter the numbers).
"""

from __future__ import annotations

import ast
import logging
import random
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

logger = logging.getLogger(__name__)

_CODE_LIKE = re.compile(r"[>{}=]{2}|::|\$|\w\(|\)\w|^\W|\\")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _docstrings(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*.py")):
        if "test" in path.parts or "tests" in path.parts or "site-packages" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield doc


def training_text(root: Path | None = None) -> list[str]:
    """Every docstring line, plus the stdlib's LICENSE.txt and (Debian-like hosts) the GPL-3 text."""
    root = root or stdlib_root()
    lines = [line.strip() for doc in _docstrings(root) for line in doc.splitlines()]
    for licence in (root / "LICENSE.txt", Path("/usr/share/common-licenses/GPL-3")):
        if licence.is_file():
            lines.extend(line.strip() for line in licence.read_text(errors="replace").splitlines())
    return [line for line in lines if len(line) > 20]


def prose_paragraphs(root: Path | None = None) -> list[str]:
    """Docstring paragraphs that read like prose (start capitalised, end with a full stop)."""
    root = root or stdlib_root()
    seen: set[str] = set()
    out: list[str] = []
    for doc in _docstrings(root):
        for para in re.split(r"\n\s*\n", doc):
            text = " ".join(para.split())
            if (
                80 <= len(text) <= 900
                and text[0].isupper()
                and text.endswith(".")
                and not _CODE_LIKE.search(text)
                and text not in seen
            ):
                seen.add(text)
                out.append(text)
    return out


@dataclass(frozen=True)
class Article:
    id: str
    text: str


def articles(
    paragraphs: list[str], count: int, target_chars: int = 2500, seed: int = 7
) -> list[Article]:
    """``count`` documents of about ``target_chars`` characters, paragraphs never reused.

    Raises ValueError when the paragraphs run out rather than silently repeating text.
    """
    pool = list(paragraphs)
    random.Random(seed).shuffle(pool)
    docs: list[Article] = []
    for n in range(count):
        parts: list[str] = []
        size = 0
        while size < target_chars:
            if not pool:
                raise ValueError(
                    f"only {len(paragraphs)} unique paragraphs: enough for {n} articles of "
                    f"{target_chars} characters, not {count}"
                )
            parts.append(pool.pop())
            size += len(parts[-1]) + 2
        docs.append(Article(f"doc-{n:04d}", "\n\n".join(parts)))
    return docs
