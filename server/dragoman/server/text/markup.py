"""Where the translatable text is in HTML and Markdown.

Both functions return sorted, non-overlapping ``(start, end)`` ranges into the source; everything
outside them (tags, attributes, code, link targets, structural markers) must stay byte-for-byte as
it is. Sentence splitting of the ranges is the job of :mod:`dragoman.server.text.segment`; this
module only knows the structure, so it stays independent of the segmenter.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser

logger = logging.getLogger(__name__)

Range = tuple[int, int]

# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

# Elements whose content is code or data, never prose.
VERBATIM_ELEMENTS: frozenset[str] = frozenset(
    {"script", "style", "code", "pre", "kbd", "samp", "var", "math", "svg", "template"}
)
# Elements without an end tag: they never open a region.
_VOID_ELEMENTS: frozenset[str] = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
     "source", "track", "wbr"}
)
_TEXT, _OTHER = "text", "other"
_TAG_START = re.compile(r"[A-Za-z/!?]")


def _opts_out(attrs: list[tuple[str, str | None]]) -> bool:
    """HTML's translate="no" and the common "notranslate" class both mean: leave this alone."""
    for name, value in attrs:
        if name == "translate" and (value or "").strip().lower() == "no":
            return True
        if name == "class" and "notranslate" in (value or "").split():
            return True
    return False


class _EventRecorder(HTMLParser):
    """Records where each parser event starts and whether it is translatable text.

    html.parser reports the source position of the construct being handled (``getpos``), so the
    event starts cut the source into consecutive spans without re-implementing HTML tokenising.
    """

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.events: list[tuple[int, str]] = []
        self._open: list[str] = []  # element stack while inside a verbatim region

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def _mark(self, kind: str) -> None:
        self.events.append((self._offset(), kind))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._mark(_OTHER)
        if tag in _VOID_ELEMENTS:
            return
        if self._open or tag in VERBATIM_ELEMENTS or _opts_out(attrs):
            self._open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._mark(_OTHER)

    def handle_endtag(self, tag: str) -> None:
        self._mark(_OTHER)
        if tag in self._open:
            # Close the element and anything left unclosed inside it (like <p> without </p>).
            while self._open.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self._mark(_OTHER if self._open else _TEXT)

    def handle_comment(self, data: str) -> None:
        self._mark(_OTHER)

    def handle_decl(self, decl: str) -> None:
        self._mark(_OTHER)

    def handle_pi(self, data: str) -> None:
        self._mark(_OTHER)

    def unknown_decl(self, data: str) -> None:
        self._mark(_OTHER)


def html_text_ranges(text: str) -> list[Range]:
    """Ranges of the text nodes of an HTML document or fragment that should be translated.

    Tags, attributes, comments, declarations and the content of code-like elements
    (:data:`VERBATIM_ELEMENTS`) or of elements marked ``translate="no"`` are left out. Entities
    stay in the ranges (``&amp;``): the caller unescapes them for the model.
    """
    recorder = _EventRecorder(text)
    recorder.feed(text)
    recorder.close()
    events = recorder.events
    ranges: list[Range] = []
    in_broken_tag = False
    for index, (start, kind) in enumerate(events):
        if kind != _TEXT:
            in_broken_tag = False
            continue
        stop = events[index + 1][0] if index + 1 < len(events) else len(text)
        if text.startswith("<", start):
            # The parser hands back tags it gave up on (e.g. unterminated at the end) as text,
            # sometimes as "<" then the rest: keep all of it verbatim. Only a "<" that could not
            # start a tag ("a < b") is prose.
            if stop - start > 1 or _TAG_START.match(text, start + 1):
                in_broken_tag = True
                continue
            end = stop
        elif in_broken_tag:
            continue
        else:
            # Text never contains a raw "<"; anything after one was silently skipped by the
            # parser (e.g. "</>") and stays verbatim.
            lt = text.find("<", start, stop)
            end = stop if lt < 0 else lt
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        elif start < end:
            ranges.append((start, end))
    return ranges


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})")
_INDENTED_CODE = re.compile(r"(?: {4}|\t)")
_HTML_BLOCK_OPEN = re.compile(r" {0,3}<(script|pre|style|textarea)(?=[\s>]|$)", re.IGNORECASE)
_COMMENT_OPEN = re.compile(r" {0,3}<!--")
_RULE_OR_UNDERLINE = re.compile(r" {0,3}(?:=+|-+|(?:[-*_][ \t]*){3,})[ \t]*$")
_REFERENCE_DEFINITION = re.compile(r" {0,3}\[(?!\^)[^\]]+\]:[ \t]*\S")
_FOOTNOTE_DEFINITION = re.compile(r" {0,3}\[\^[^\]\s]+\]:[ \t]*")
_QUOTE_PREFIX = re.compile(r"(?: {0,3}>[ \t]?)+")
_HEADING_PREFIX = re.compile(r" {0,3}#{1,6}(?:[ \t]+|$)")
_HEADING_CLOSE = re.compile(r"[ \t]+#+[ \t]*$")
_LIST_PREFIX = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]+(?:\[[ xX]\][ \t]+)?|$)")
_TABLE_DELIMITER = re.compile(r" {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_FRONT_MATTER_FENCE = re.compile(r"---[ \t]*$")
_FRONT_MATTER_CLOSE = re.compile(r"(?:---|\.\.\.)[ \t]*$")

_ATTRIBUTE = r"""\s+[A-Za-z_:][A-Za-z0-9_.:-]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?"""
_INLINE_HTML = re.compile(
    r"<!--.*?-->"
    r"|<(?P<close>/)?(?P<tag>[A-Za-z][A-Za-z0-9-]*)(?:" + _ATTRIBUTE + r")*\s*/?>"
    r"|<[A-Za-z][A-Za-z0-9.+-]{1,31}:[^\s<>]*>"  # autolink
    r"|<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>",  # email autolink
    re.DOTALL,
)
_FOOTNOTE_REFERENCE = re.compile(r"\[\^[^\]\s]+\]")
_REFERENCE_LABEL = re.compile(r"\[[^\]]*\]")


class _Lines:
    """The lines of a text as (start, content_end, line_end) offsets, line breaks kept."""

    def __init__(self, text: str) -> None:
        self.spans = [(m.start(), m.start() + len(m.group().rstrip("\r\n")), m.end())
                      for m in _LINE.finditer(text)]


@functools.lru_cache(maxsize=16)
def _backtick_run(length: int) -> re.Pattern[str]:
    return re.compile(rf"(?<!`)`{{{length}}}(?!`)")


def code_span_end(text: str, start: int, end: int) -> int | None:
    """End of the code span opened by the backtick run at ``start``, or None if it never closes."""
    run = 1
    while start + run < end and text[start + run] == "`":
        run += 1
    closing = _backtick_run(run).search(text, start + run, end)
    return closing.end() if closing else None


def paren_end(text: str, start: int, end: int) -> int | None:
    """End of the balanced parenthesised group starting at ``start`` (a link target)."""
    depth = 0
    i = start
    while i < end:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _raw_element_end(text: str, match: re.Match[str], end: int) -> int:
    """For an opening inline <code>-like tag, the end of its element; else the tag's own end."""
    tag = (match.group("tag") or "").lower()
    if match.group("close") or tag not in VERBATIM_ELEMENTS or match.group().endswith("/>"):
        return match.end()
    closing = re.compile(rf"</{re.escape(tag)}\s*>", re.IGNORECASE).search(text, match.end(), end)
    return closing.end() if closing else match.end()


def _inline_verbatim(text: str, start: int, end: int) -> list[Range]:
    """Verbatim spans inside a Markdown block: code spans, HTML, link/image targets, footnotes."""
    spans: list[Range] = []
    openers: list[int] = []
    i = start
    while i < end:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == "`":
            close = code_span_end(text, i, end)
            if close is None:
                while i < end and text[i] == "`":
                    i += 1
            else:
                spans.append((i, close))
                i = close
        elif c == "<" and (m := _INLINE_HTML.match(text, i, end)):
            close = _raw_element_end(text, m, end)
            spans.append((i, close))
            i = close
        elif c == "!" and text.startswith("[", i + 1):
            openers.append(i)
            i += 2
        elif c == "[":
            if m := _FOOTNOTE_REFERENCE.match(text, i, end):
                spans.append(m.span())
                i = m.end()
            else:
                openers.append(i)
                i += 1
        elif c == "]" and openers:
            opener = openers.pop()
            opener_end = opener + (2 if text[opener] == "!" else 1)
            target_end: int | None = None
            if text.startswith("(", i + 1):
                target_end = paren_end(text, i + 1, end)
            elif text.startswith("[", i + 1) and (m := _REFERENCE_LABEL.match(text, i + 1, end)):
                target_end = m.end()
            if target_end is None:
                i += 1
            else:
                spans.extend([(opener, opener_end), (i, target_end)])
                i = target_end
        else:
            i += 1
    return spans


def _table_cells(text: str, start: int, end: int) -> list[Range]:
    """Cell contents of one table row: between unescaped pipes outside code spans."""
    cells: list[Range] = []
    cell_start = i = start
    while i < end:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "`":
            close = code_span_end(text, i, end)
            i = close if close is not None else i + 1
            continue
        if c == "|":
            cells.append((cell_start, i))
            cell_start = i + 1
        i += 1
    cells.append((cell_start, end))
    return cells


def _subtract(block: Range, holes: Iterable[Range]) -> Iterator[Range]:
    """The parts of ``block`` not covered by ``holes``."""
    position, end = block
    for hole_start, hole_end in sorted(holes):
        if hole_start > position:
            yield position, min(hole_start, end)
        position = max(position, hole_end)
    if position < end:
        yield position, end


class _MarkdownScanner:
    """Line-by-line block structure of CommonMark/GFM, just enough to find the prose."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = _Lines(text).spans
        self.blocks: list[Range] = []
        self.paragraph: list[int] | None = None  # [start, end] of the open paragraph
        self.in_list = False

    def flush(self) -> None:
        if self.paragraph is not None:
            self.blocks.append((self.paragraph[0], self.paragraph[1]))
            self.paragraph = None

    def line(self, index: int) -> str:
        start, content_end, _ = self.lines[index]
        return self.text[start:content_end]

    def skip_front_matter(self) -> int:
        """Index of the first line after a YAML front-matter block (0 if there is none)."""
        if not self.lines or not _FRONT_MATTER_FENCE.match(self.line(0)):
            return 0
        for index in range(1, len(self.lines)):
            if _FRONT_MATTER_CLOSE.match(self.line(index)):
                return index + 1
        return 0

    def skip_until(self, index: int, closes: re.Pattern[str]) -> int:
        """Index of the line after the one that matches ``closes`` (or the end of the text)."""
        while index < len(self.lines):
            if closes.search(self.line(index)):
                return index + 1
            index += 1
        return index

    def scan(self) -> list[Range]:
        text = self.text
        index = self.skip_front_matter()
        previous_blank = True
        while index < len(self.lines):
            start, content_end, _ = self.lines[index]
            line = text[start:content_end]
            if not line.strip():
                self.flush()
                previous_blank = True
                index += 1
                continue
            indented = bool(_INDENTED_CODE.match(line))
            if previous_blank and not indented and not _LIST_PREFIX.match(line):
                self.in_list = False
            previous_blank = False
            if m := _FENCE_OPEN.match(line):
                self.flush()
                fence = m.group(1)
                closes = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
                index = self.skip_until(index + 1, closes)
                continue
            if m := _HTML_BLOCK_OPEN.match(line):
                self.flush()
                closes = re.compile(rf"</{m.group(1)}\s*>", re.IGNORECASE)
                index = index + 1 if closes.search(line, m.end()) else self.skip_until(index + 1, closes)
                continue
            if m := _COMMENT_OPEN.match(line):
                self.flush()
                index = index + 1 if "-->" in line[m.end():] else self.skip_until(index + 1, re.compile("-->"))
                continue
            if indented and self.paragraph is None and not self.in_list:
                index += 1  # indented code block
                continue
            if _RULE_OR_UNDERLINE.match(line):
                self.flush()
                index += 1
                continue
            if _REFERENCE_DEFINITION.match(line):
                self.flush()
                index += 1
                continue
            if ("|" in line and index + 1 < len(self.lines)
                    and "|" in self.line(index + 1) and _TABLE_DELIMITER.match(self.line(index + 1))):
                self.flush()
                index = self.table(index)
                continue
            self.block_line(start, content_end)
            index += 1
        self.flush()
        return self.blocks

    def table(self, index: int) -> int:
        """Each cell of a GFM table is its own block; the delimiter row stays verbatim."""
        delimiter = index + 1
        while index < len(self.lines):
            start, content_end, _ = self.lines[index]
            line = self.text[start:content_end]
            if not line.strip() or "|" not in line:
                break
            if index != delimiter:
                self.blocks.extend(_table_cells(self.text, start, content_end))
            index += 1
        return index

    def block_line(self, start: int, end: int) -> None:
        """A line of prose, possibly after quote, heading, list or footnote markers."""
        text = self.text
        quote = _QUOTE_PREFIX.match(text, start, end)
        position = quote.end() if quote else start
        if heading := _HEADING_PREFIX.match(text, position, end):
            self.flush()
            closing = _HEADING_CLOSE.search(text, heading.end(), end)
            self.blocks.append((heading.end(), closing.start() if closing else end))
            return
        marker = _LIST_PREFIX.match(text, position, end) or _FOOTNOTE_DEFINITION.match(text, position, end)
        if marker:
            self.flush()
            self.in_list = self.in_list or bool(_LIST_PREFIX.match(text, position, end))
            position = marker.end()
        if quote:
            self.flush()
            self.blocks.append((position, end))
        elif marker or self.paragraph is None:
            self.flush()
            self.paragraph = [position, end]
        else:
            self.paragraph[1] = end  # continuation line: sentences may span the line break


def markdown_blocks(text: str) -> list[Range]:
    """The prose blocks of a Markdown text (paragraphs, headings, list items, quote lines,
    table cells), inline markup included: sentences are found inside them."""
    return sorted(b for b in _MarkdownScanner(text).scan() if b[0] < b[1])


def markdown_text_ranges(text: str) -> list[Range]:
    """Ranges of Markdown prose that should be translated.

    Left out: YAML front matter, fenced and indented code blocks, raw HTML blocks (script, pre,
    style, textarea, comments), reference definitions, table delimiter rows, heading/list/quote/
    table markers, inline code, HTML tags, autolinks, footnote references and link/image targets
    (``](url "title")``, ``][ref]``). Paragraph lines are one block, so a sentence may span a
    soft line break; quoted lines are blocks of their own.
    """
    scanner = _MarkdownScanner(text)
    ranges: list[Range] = []
    for block in scanner.scan():
        holes = _inline_verbatim(text, *block)
        ranges.extend(r for r in _subtract(block, holes) if r[0] < r[1])
    ranges.sort()
    merged: list[Range] = []
    for start, end in ranges:
        if merged and start < merged[-1][1]:
            logger.debug("overlapping markdown ranges %s and %s", merged[-1], (start, end))
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
