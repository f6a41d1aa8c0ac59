"""The readable text of a crawled news page: title and paragraphs, without the page chrome.

A crawl stores whole pages; translating menus, scripts and cookie banners wastes the model
and pollutes the output. We keep what a reader would read: the text inside ``<article>``
(or ``<main>``, or else the whole body), minus scripts, styles, navigation, asides, footers
and forms, one paragraph per block element.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

# Never prose: their content is skipped entirely.
_SKIPPED = frozenset({
    "script", "style", "noscript", "template", "svg", "math", "head", "nav", "aside",
    "footer", "form", "button", "select", "iframe", "object", "canvas",
})
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr",
})
# Elements that start and end a paragraph of their own.
_BLOCKS = frozenset({
    "address", "article", "blockquote", "body", "caption", "dd", "details", "div", "dl", "dt",
    "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "ol", "p", "pre", "section", "summary", "table", "td", "th", "tr", "ul", "br",
})
# HTML collapses ASCII whitespace only; a no-break space is meant to stay.
_SPACE = re.compile(r"[ \t\n\r\f\v]+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class PageText:
    title: str
    text: str


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title_parts: list[str] = []
        # (paragraph, inside <article>, inside <main>)
        self.blocks: list[tuple[str, bool, bool]] = []
        self._current: list[str] = []
        self._skip: list[str] = []
        self._in_title = False
        self._title_done = False  # only the page's first <title>, not an SVG's
        self._article = 0
        self._main = 0

    def _flush(self) -> None:
        text = _SPACE.sub(" ", "".join(self._current)).strip()
        if text:
            self.blocks.append((text, self._article > 0, self._main > 0))
        self._current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self._title_done:
            self._in_title = True
            return
        if self._skip:
            if tag not in _VOID:
                self._skip.append(tag)
            return
        if tag in _SKIPPED:
            self._flush()
            self._skip.append(tag)
            return
        if tag in _BLOCKS:
            self._flush()
        if tag == "article":
            self._article += 1
        elif tag == "main":
            self._main += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._skip and tag in _BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self._title_done = True
            return
        if self._skip:
            # Pop up to the matching open tag; stray end tags inside are ignored.
            if tag in self._skip:
                while self._skip and self._skip.pop() != tag:
                    pass
            return
        if tag in _BLOCKS:
            self._flush()
        if tag == "article" and self._article:
            self._article -= 1
        elif tag == "main" and self._main:
            self._main -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skip:
            self._current.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def extract_text(html: str) -> PageText:
    """Title and paragraphs (joined by blank lines) of an HTML page."""
    parser = _Extractor()
    parser.feed(html)
    parser.close()
    blocks = parser.blocks
    if any(in_article for _, in_article, _ in blocks):
        blocks = [b for b in blocks if b[1]]
    elif any(in_main for _, _, in_main in blocks):
        blocks = [b for b in blocks if b[2]]
    title = _SPACE.sub(" ", "".join(parser.title_parts)).strip()
    return PageText(title, "\n\n".join(text for text, _, _ in blocks))


def decode_html(body: bytes, declared: str | None = None) -> str:
    """Decode a page with its HTTP charset, else its ``<meta charset>``, else UTF-8.

    Pages are often mislabelled, so undecodable bytes become U+FFFD rather than losing the
    page; a page that is not UTF-8 and declares nothing is read as Windows-1252, which is
    what browsers do.
    """
    candidates: list[str] = []
    if declared:
        candidates.append(declared)
    match = _META_CHARSET.search(body[:4096])
    if match:
        candidates.append(match.group(1).decode("ascii", "replace"))
    for charset in candidates:
        try:
            return body.decode(charset, errors="replace")
        except LookupError:
            continue
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")
