"""Cut text into verbatim pieces and sentences, so translations can be put back losslessly.

The invariant everywhere: ``"".join(document.pieces) == text`` and
``document.rebuild(document.sentences) == text``. Only sentence pieces are ever replaced; the
whitespace, markup and code around them are kept exactly as they came.
"""

from __future__ import annotations

import bisect
import enum
import html
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import sentencex

from dragoman.server.text.align import Alignment
from dragoman.server.text.inline import (
    ATOM,
    INLINE_ELEMENTS,
    TAG,
    VOID,
    VOID_INLINE,
    InlineSentence,
    Terms,
    html_tokens,
    make_sentence,
    markdown_tokens,
    place,
    plain_text,
    protect_elements,
    protected_tokens,
    sentence_in,
    split_protected,
    unescape_map,
)
from dragoman.server.text.languages import UNSPACED_LANGUAGES, base_language
from dragoman.server.text.markup import html_text_ranges, markdown_blocks

logger = logging.getLogger(__name__)

Span = tuple[int, int]


class TextFormat(enum.Enum):
    PLAIN = "plain"
    HTML = "html"
    MARKDOWN = "markdown"
    WRAPPED = "wrapped"  # plain text whose single line breaks are soft (hard-wrapped prose)


# Whitespace that HTML rendering (and Markdown soft breaks) collapse to one space. No-break
# spaces are meaningful and kept.
_COLLAPSIBLE = re.compile(r"[ \t\r\n\f]+")
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
# A line break with the spaces around it, inside a paragraph of wrapped text.
_SOFT_BREAK = re.compile(r"[ \t]*(?:\r\n|[\n\r])[ \t]*")
# What separates the paragraphs of wrapped text: blank lines, and the line-break characters
# that are never soft (form feed, vertical tab, the Unicode line and paragraph separators...).
_PARAGRAPH_BREAK = re.compile(
    r"(?:\r\n|[\n\r])(?:[ \t]*(?:\r\n|[\n\r]))+|[\v\f\x1c-\x1e\x85\u2028\u2029]")


def _sentence_text(piece: str, fmt: TextFormat) -> str:
    """What the model sees for a sentence piece (markup formats: unescaped, soft breaks collapsed)."""
    if fmt is TextFormat.HTML:
        return _COLLAPSIBLE.sub(" ", html.unescape(piece))
    if fmt is TextFormat.MARKDOWN:
        return _COLLAPSIBLE.sub(" ", piece)
    if fmt is TextFormat.WRAPPED:
        return _SOFT_BREAK.sub(" ", piece)
    return piece


@dataclass(frozen=True)
class SegmentedText:
    """A text cut into verbatim pieces; some pieces are sentences to translate."""

    pieces: tuple[str, ...]
    sentence_index: tuple[int, ...]
    fmt: TextFormat = TextFormat.PLAIN
    # Per sentence: its inline markup (HTML/Markdown elements inside it), or None.
    inline: tuple[InlineSentence | None, ...] = ()

    def markup(self, n: int) -> InlineSentence | None:
        """The inline markup of sentence ``n``, if it has any."""
        return self.inline[n] if self.inline else None

    @property
    def sentences(self) -> list[str]:
        """The sentences to translate, in order (HTML unescaped, soft line breaks collapsed,
        inline markup taken out)."""
        out = []
        for n, i in enumerate(self.sentence_index):
            marked = self.markup(n)
            out.append(marked.plain if marked else _sentence_text(self.pieces[i], self.fmt))
        return out

    def paragraphs(self) -> tuple[int, ...]:
        """Each sentence's paragraph number: a new one starts after a line break or markup.

        Only the request-by-paragraph comparison mode uses it (one call per paragraph, the
        way Argos Translate calls CTranslate2).
        """
        numbers: list[int] = []
        current = 0
        for n, index in enumerate(self.sentence_index):
            if n:
                gap = "".join(self.pieces[self.sentence_index[n - 1] + 1:index])
                if any(c in "\r\n" or not c.isspace() for c in gap):
                    current += 1
            numbers.append(current)
        return tuple(numbers)

    def rebuild(
        self, translations: Sequence[str],
        alignments: Sequence[Alignment | None] | None = None,
    ) -> str:
        """The original text with each sentence replaced by its translation.

        A translation equal to the sentence restores the source piece exactly (entities, line
        breaks); any other HTML translation is escaped so it cannot inject markup. A sentence
        with inline markup gets it back around the target words ``alignments`` (one per
        sentence, word level) align to its marked words; without one, by relative position.
        """
        if isinstance(translations, str):
            raise TypeError("translations must be a sequence of strings, not one string")
        if len(translations) != len(self.sentence_index):
            raise ValueError(
                f"expected {len(self.sentence_index)} translations, got {len(translations)}"
            )
        out = list(self.pieces)
        for n, (index, translation) in enumerate(zip(self.sentence_index, translations)):
            piece = self.pieces[index]
            marked = self.markup(n)
            if marked is not None:
                if translation != marked.plain:
                    out[index] = place(marked, translation, alignments[n] if alignments else None)
                continue
            if translation == _sentence_text(piece, self.fmt):
                continue
            out[index] = html.escape(translation, quote=False) if self.fmt is TextFormat.HTML else translation
        return "".join(out)


def joiner(language: str) -> str:
    """The separator between sentences: "" for languages written without spaces, else " "."""
    return "" if base_language(language) in UNSPACED_LANGUAGES else " "


def _has_letter(text: str) -> bool:
    return any(c.isalpha() for c in text)


def _segment(text: str, start: int, end: int, language: str) -> Iterator[Span]:
    """Sentence spans (stripped, non-empty) of ``text[start:end]``, which holds no structure."""
    chunk = text[start:end]
    if not chunk or chunk.isspace():
        return
    cuts: list[Span] = []
    try:
        position = 0
        for boundary in sentencex.get_sentence_boundaries(language, chunk):
            if boundary["start_index"] != position:
                raise ValueError(f"gap before {boundary['start_index']}")
            position = boundary["end_index"]
            cuts.append((boundary["start_index"], position))
        if position != len(chunk):
            raise ValueError(f"boundaries end at {position} of {len(chunk)}")
    except ValueError as exc:
        # sentencex has always covered its input; if it ever does not, keep the block whole
        # rather than lose or duplicate text.
        logger.warning("sentence boundaries unusable (%s); keeping the block as one sentence", exc)
        cuts = [(0, len(chunk))]
    for a, b in cuts:
        piece = chunk[a:b]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            yield start + a + lead, start + a + lead + len(stripped)


def _lines(text: str, start: int, end: int) -> Iterator[Span]:
    """Content spans of the lines in ``text[start:end]`` (line breaks excluded)."""
    position = start
    for m in _LINE_BREAK.finditer(text, start, end):
        yield position, m.start()
        position = m.end()
    yield position, end


def line_spans(text: str) -> list[Span]:
    """Content spans of every line of ``text`` (line breaks excluded), in order."""
    return list(_lines(text, 0, len(text)))


def _paragraphs(text: str) -> Iterator[Span]:
    """Paragraph spans of wrapped text (blank lines and hard breaks excluded)."""
    position = 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        yield position, m.start()
        position = m.end()
    yield position, len(text)


def split_sentences(text: str, language: str) -> list[Span]:
    """Sentence spans ``(start, end)`` of plain text, stripped of surrounding whitespace.

    Every non-empty line is a block of its own, so no sentence ever spans a line break.
    """
    language = base_language(language)
    return [span for line in _lines(text, 0, len(text)) for span in _segment(text, *line, language)]


def _html_spans(text: str, start: int, end: int, language: str) -> Iterator[Span]:
    """Sentence spans of an HTML text node: split on the unescaped text, mapped back to source."""
    raw = text[start:end]
    if "&" not in raw:
        yield from _segment(text, start, end, language)
        return
    plain, starts, ends = unescape_map(raw)
    for a, b in _segment(plain, 0, len(plain), language):
        yield start + starts[a], start + ends[b - 1]


def _assemble(text: str, spans: Iterator[Span], fmt: TextFormat,
              marks: dict[Span, InlineSentence] | None = None) -> SegmentedText:
    """Pieces from sentence spans: the text between them becomes verbatim pieces."""
    pieces: list[str] = []
    index: list[int] = []
    inline: list[InlineSentence | None] = []
    position = 0
    for a, b in spans:
        sentence = text[a:b]
        marked = marks.get((a, b)) if marks else None
        if not _has_letter(marked.plain if marked else _sentence_text(sentence, fmt)):
            continue  # numbers, dashes, emoji: nothing to translate, stays verbatim
        if a > position:
            pieces.append(text[position:a])
        index.append(len(pieces))
        inline.append(marked)
        pieces.append(sentence)
        position = b
    if position < len(text):
        pieces.append(text[position:])
    return SegmentedText(pieces=tuple(pieces), sentence_index=tuple(index), fmt=fmt,
                    inline=tuple(inline) if any(inline) else ())


# ---------------------------------------------------------------------------------------------
# Sentences with inline markup (HTML and Markdown)
# ---------------------------------------------------------------------------------------------


def _inline_gap(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` (between two text nodes) holds only inline markup."""
    m = TAG.fullmatch(text, start, end)
    if m is not None and m.group("tag"):  # the usual gap: one tag
        name = m.group("tag").lower()
        return name in VOID_INLINE or name in INLINE_ELEMENTS
    tokens = html_tokens(text, start, end)
    return tokens is not None and all(
        t.kind != "text" or not text[t.start:t.end].strip() for t in tokens)


def _html_runs(text: str) -> list[Span]:
    """Stretches of HTML prose: text nodes joined across inline tags, with the inline
    opening tags just before them and closing tags just after."""
    runs: list[list[int]] = []
    for a, b in html_text_ranges(text):
        if runs and _inline_gap(text, runs[-1][1], a):
            runs[-1][1] = b
        else:
            runs.append([a, b])
    floor = 0
    for run in runs:
        while True:
            lt = text.rfind("<", floor, run[0])
            m = TAG.match(text, lt) if lt >= 0 else None
            name = (m.group("tag") or "").lower() if m else ""
            if not (m and m.end() == run[0] and not m.group("close")
                    and name in INLINE_ELEMENTS | VOID_INLINE):
                break
            run[0] = lt
        while (m := TAG.match(text, run[1])) and m.group("close") and \
                (m.group("tag") or "").lower() in INLINE_ELEMENTS:
            run[1] = m.end()
        floor = run[1]
    return [(a, b) for a, b in runs]


def _tokens(text: str, start: int, end: int, fmt: TextFormat,
            terms: Terms | None = None) -> list | None:
    html_like = fmt is TextFormat.HTML
    if fmt is TextFormat.HTML:
        tokens = html_tokens(text, start, end)
    elif fmt is TextFormat.MARKDOWN:
        tokens = markdown_tokens(text, start, end)
    else:
        return protected_tokens(text, start, end, terms)
    if tokens is None:
        return None
    return split_protected(text, protect_elements(text, tokens, html_like), terms, html_like)


def _inline_units(
    text: str, start: int, end: int, language: str, fmt: TextFormat,
    marks: dict[Span, InlineSentence], terms: Terms | None = None,
) -> Iterator[Span]:
    """Sentence spans of a stretch of prose with inline markup; sentences whose markup
    would be cut (an element across a sentence end) are kept together as one."""
    tokens = _tokens(text, start, end, fmt, terms)
    if tokens is None:  # not inline after all: each text node on its own, as before
        for t in html_tokens_fallback(text, start, end):
            yield from _html_spans(text, *t, language)
        return
    if all(t.kind == "text" for t in tokens):  # no markup at all: the plain way, faster
        if fmt is TextFormat.HTML:
            yield from _html_spans(text, start, end, language)
        else:
            yield from _segment(text, start, end, language)
        return
    parsed = plain_text(text, tokens, fmt is TextFormat.HTML)
    plain = parsed.plain
    units = [[a, b] for a, b in _segment(plain, 0, len(plain), language)]

    token_starts = [t.start for t in tokens]
    # letters[i]: letters of text (not atoms) in plain[:i], to spot sentences of atoms only.
    letters = [0] * (len(plain) + 1)
    from_text = bytearray(len(plain))
    for k, t in enumerate(tokens):
        if t.kind == "text":
            pa, pb = parsed.token_plain[k]
            from_text[pa:pb] = b"\x01" * (pb - pa)
    count = 0
    for i, c in enumerate(plain):
        if from_text[i] and c.isalpha():
            count += 1
        letters[i + 1] = count

    def raw_span(a: int, b: int) -> tuple[int, int]:
        lo, hi = parsed.raw_start[a], parsed.raw_end[b - 1]
        # Take in the tags right before and after (only whitespace between).
        k = bisect.bisect_right(token_starts, lo) - 1
        if not text[tokens[k].start:lo].strip():
            for t in reversed(tokens[max(0, k - 64):k]):
                if t.kind in ("open", VOID):
                    lo = t.start
                elif t.kind != "text" or text[t.start:t.end].strip():
                    break
        k = bisect.bisect_left(token_starts, hi) - 1
        if not text[hi:tokens[k].end].strip():
            for t in tokens[k + 1:k + 65]:
                if t.kind in ("close", VOID):
                    hi = t.end
                elif t.kind != "text" or text[t.start:t.end].strip():
                    break
        return lo, hi

    units = _keep_elements_whole(units, tokens, parsed.token_plain)
    floor = start
    for a, b in units:
        lo, hi = raw_span(a, b)
        lo = max(lo, floor)  # a void tag between two sentences goes with the first
        floor = hi
        first = bisect.bisect_right(token_starts, lo) - 1
        last = bisect.bisect_left(token_starts, hi)
        if all(t.kind == "text" for t in tokens[max(first, 0):last]):
            yield parsed.raw_start[a], parsed.raw_end[b - 1]  # text between the tags, as it is
            continue
        if letters[b] == letters[a]:
            continue  # nothing to translate outside code, URLs and other atoms
        marks[(lo, hi)] = sentence_in(text, parsed, first, last, a, b, fmt is TextFormat.HTML)
        yield lo, hi


def _keep_elements_whole(
    units: list[list[int]], tokens: list, token_plain: list[tuple[int, int]],
) -> list[list[int]]:
    """Sentences joined where an element or atom would be cut by a sentence end: each such
    element asks for the sentences from its start to its end to be one (linear time)."""
    if len(units) < 2:
        return units
    starts = [a for a, _ in units]
    ends = [b for _, b in units]
    wanted: list[tuple[int, int]] = []

    def opening(p: int) -> int:  # the sentence an opening tag at plain offset p belongs to
        i = bisect.bisect_right(starts, p) - 1
        return i if i >= 0 and ends[i] > p else i + 1

    def closing(p: int) -> int:  # ... and a closing tag
        i = bisect.bisect_left(ends, p)
        return i if i < len(units) and starts[i] < p else i - 1

    for k, t in enumerate(tokens):
        if t.kind == "open" and t.mate > k:
            first, last = opening(token_plain[k][0]), closing(token_plain[t.mate][0])
        elif t.kind == ATOM:
            pa, pb = token_plain[k]
            first, last = bisect.bisect_right(ends, pa), bisect.bisect_left(starts, pb) - 1
        else:
            continue
        if 0 <= first < last < len(units):
            wanted.append((first, last))
    if not wanted:
        return units
    wanted.sort()
    merged: list[list[int]] = []
    position = 0
    for first, last in wanted:
        if first < position:  # inside the group just made: extend it
            if last >= position:
                group_first = merged[-1][2]
                merged[-1] = [starts[group_first], ends[last], group_first]
                position = last + 1
            continue
        merged.extend([units[i][0], units[i][1], i] for i in range(position, first))
        merged.append([starts[first], ends[last], first])
        position = last + 1
    merged.extend([units[i][0], units[i][1], i] for i in range(position, len(units)))
    return [[a, b] for a, b, _ in merged]


def html_tokens_fallback(text: str, start: int, end: int) -> list[Span]:
    """The text nodes of a stretch that is not all inline (the old, per-node way)."""
    return [r for r in html_text_ranges(text[:end]) if r[0] >= start]


def _protected(text: str, spans: Iterator[Span], fmt: TextFormat, terms: Terms | None,
               marks: dict[Span, InlineSentence]) -> Iterator[Span]:
    """Plain and wrapped text: sentences holding URLs, addresses, mentions, hashtags or the
    caller's terms get them as atoms (verbatim, or the glossary's target term)."""
    pattern = (terms or Terms()).pattern()
    for a, b in spans:
        if not pattern.search(text, a, b):
            yield a, b
            continue
        tokens = protected_tokens(text, a, b, terms)
        if any(t.kind == ATOM for t in tokens):
            parsed = plain_text(text, tokens, False)
            if any(c.isalpha() for k, t in enumerate(tokens) if t.kind == "text"
                   for c in parsed.plain[slice(*parsed.token_plain[k])]):
                marks[(a, b)] = make_sentence(text, parsed, False)
            else:
                continue  # only protected text: nothing to translate
        yield a, b


def split_document(text: str, language: str, fmt: TextFormat = TextFormat.PLAIN,
                   terms: Terms | None = None) -> SegmentedText:
    """Cut ``text`` into verbatim pieces and translatable sentences.

    Plain text keeps every line break and all whitespace; each line is a block. Wrapped text
    keeps them too, but a paragraph (up to a blank line) is the block, so a sentence may run
    across its single line breaks. HTML translates only text nodes (see
    :func:`~dragoman.server.text.markup.html_text_ranges`); Markdown only prose (see
    :func:`~dragoman.server.text.markup.markdown_text_ranges`). Sentences hold at least one
    letter.
    """
    fmt = TextFormat(fmt)
    language = base_language(language)
    marks: dict[Span, InlineSentence] = {}
    if fmt is TextFormat.PLAIN:
        spans: Iterator[Span] = iter(split_sentences(text, language))
    elif fmt is TextFormat.WRAPPED:
        # The segmenter ends sentences at a "\r": give it "\n" line ends of the same length.
        lf = text.replace("\r\n", " \n").replace("\r", "\n")
        spans = (s for r in _paragraphs(lf) for s in _segment(lf, *r, language))
    else:
        runs = _html_runs(text) if fmt is TextFormat.HTML else markdown_blocks(text)
        spans = (s for r in runs for s in _inline_units(text, *r, language, fmt, marks, terms))
        return _assemble(text, spans, fmt, marks)
    return _assemble(text, _protected(text, spans, fmt, terms, marks), fmt, marks)


# ---------------------------------------------------------------------------------------------
# Splitting sentences that are too long for a model
# ---------------------------------------------------------------------------------------------

# Clause (and missed sentence) punctuation that needs whitespace after it to be a cut...
_SPACED_PUNCTUATION = frozenset(",;:.!?…،؛؟।॥።፣፤")
# ...and full-width forms, which are followed by no space.
_UNSPACED_PUNCTUATION = frozenset("，、；：。！？．｡､")
_JOINERS = frozenset("\u200c\u200d")


def _punctuation_cuts(text: str, start: int, end: int) -> list[int]:
    cuts = []
    i = start
    while i < end:
        c = text[i]
        i += 1
        if c in _UNSPACED_PUNCTUATION or (c in _SPACED_PUNCTUATION and i < end and text[i].isspace()):
            while i < end and text[i].isspace():
                i += 1
            if start < i < end:
                cuts.append(i)
    return cuts


def _whitespace_cuts(text: str, start: int, end: int) -> list[int]:
    return [i for i in range(start + 1, end) if text[i - 1].isspace() and not text[i].isspace()]


def _character_cuts(text: str, start: int, end: int) -> list[int]:
    """Cuts between characters, never inside a combining sequence, joiner sequence or CRLF."""
    cuts = []
    for i in range(start + 1, end):
        c, before = text[i], text[i - 1]
        if unicodedata.category(c).startswith("M") or c in _JOINERS or before in _JOINERS:
            continue
        if "\ufe00" <= c <= "\ufe0f" or "\U0001f3fb" <= c <= "\U0001f3ff" or (before == "\r" and c == "\n"):
            continue
        cuts.append(i)
    return cuts


_TIERS: tuple[Callable[[str, int, int], list[int]], ...] = (
    _punctuation_cuts,
    _whitespace_cuts,
    _character_cuts,
)


def split_to_fit(text: str, fits: Callable[[str], bool]) -> list[str]:
    """Cut a sentence that is too long for a model into pieces with ``fits(piece.strip())``.

    ``"".join(pieces) == text`` always. Cuts go after clause punctuation where possible, then at
    whitespace, then between characters (text without spaces); a single character that does not
    fit is returned alone rather than dropped. Pieces are packed greedily; ``fits`` is assumed
    monotonic (a prefix of something that fits, fits), which lets the packing search in
    O(log n) calls per piece.
    """
    if fits(text.strip()):
        return [text]
    return [text[a:b] for a, b in _fit(text, 0, len(text), fits, 0)]


def _fit(text: str, start: int, end: int, fits: Callable[[str], bool], tier: int) -> list[Span]:
    if tier >= len(_TIERS):
        return [(start, end)]
    bounds = [start, *_TIERS[tier](text, start, end), end]
    if len(bounds) == 2:
        return _fit(text, start, end, fits, tier + 1)

    def fits_units(i: int, j: int) -> bool:  # units i..j-1 together
        return fits(text[bounds[i]:bounds[j]].strip())

    pieces: list[Span] = []
    units = len(bounds) - 1
    i = 0
    while i < units:
        if not fits_units(i, i + 1):
            pieces.extend(_fit(text, bounds[i], bounds[i + 1], fits, tier + 1))
            i += 1
            continue
        good = _longest_fitting_run(i, units, fits_units)
        pieces.append((bounds[i], bounds[good]))
        i = good
    return pieces


def _longest_fitting_run(i: int, units: int, fits_units: Callable[[int, int], bool]) -> int:
    """Largest j <= units with units i..j-1 fitting, given that i..i fits: gallop, then bisect."""
    good, step = i + 1, 1
    bad: int | None = None
    while good < units:
        probe = min(good + step, units)
        if fits_units(i, probe):
            good = probe
            step *= 2
        else:
            bad = probe
            break
    if bad is not None:
        while bad - good > 1:
            middle = (good + bad) // 2
            if fits_units(i, middle):
                good = middle
            else:
                bad = middle
    return good
