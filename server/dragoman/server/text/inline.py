"""Inline markup inside sentences: taken out for the model, put back around the right words.

A sentence such as ``This is <b>very</b> important.`` or ``The **council** voted.`` is one
sentence to the model. :func:`parse_html` and :func:`parse_markdown` turn its source into the
plain text the model translates plus its inline elements as :class:`Tag` records:

* pairs (``<b>...</b>``, ``**...**``, ``[...](url)``) wrap words;
* voids (``<br>``, comments, footnote references) sit between words;
* atoms (``<code>``, ``<kbd>``, ``translate="no"``, Markdown code spans and autolinks) are
  shown to the model as their text, so the sentence reads whole, and come back byte for byte
  in place of the target words aligned to them.

:func:`place` rebuilds the target: each element goes around (atoms: in place of) the target
words aligned to its source words (:mod:`dragoman.server.text.align`). Elements keep their
original nesting; siblings may change order with their words; the output is always
well-formed, however poor the alignment.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from dragoman.server.text.align import Alignment, proportional
from dragoman.server.text.markup import code_span_end, paren_end

PAIR, VOID, ATOM = "pair", "void", "atom"

# HTML elements that live inside a sentence.
INLINE_ELEMENTS: frozenset[str] = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "cite", "data", "del", "dfn", "em", "font", "i", "ins",
     "mark", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "time", "u", "big",
     "label"}
)
# Inline elements whose content is never translated.
VERBATIM_INLINE: frozenset[str] = frozenset({"code", "kbd", "samp", "var", "tt", "math", "svg"})
VOID_INLINE: frozenset[str] = frozenset({"br", "wbr", "img"})

_ATTRIBUTE = r"""\s+[A-Za-z_:][A-Za-z0-9_.:-]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?"""
TAG = re.compile(
    r"<!--.*?-->|<(?P<close>/)?(?P<tag>[A-Za-z][A-Za-z0-9-]*)(?:" + _ATTRIBUTE + r")*\s*(?P<self>/)?>",
    re.DOTALL,
)
_OPT_OUT = re.compile(
    r"""\btranslate\s*=\s*["']?no\b|\bclass\s*=\s*(?:"[^"]*\bnotranslate\b[^"]*"|'[^']*\bnotranslate\b[^']*'|notranslate\b)""",
    re.IGNORECASE,
)
# The charref pattern of html.unescape, so entity boundaries map back to the source.
CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")
_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Tag:
    """One inline element of a sentence, positioned in the sentence's plain text."""

    kind: str  # PAIR, VOID or ATOM
    open: str  # the opening markup (pairs), or the whole element (voids, atoms)
    close: str  # the closing markup (pairs only)
    start: int  # plain-text offsets of the content (voids: start == end, the position)
    end: int
    parent: int  # index of the enclosing pair in the sentence's tags, -1 at the top
    depth: int
    # Atoms: text that, found verbatim in the translation, is where the atom goes (the model
    # copied the URL, or already wrote the glossary's target term); "" = by alignment only.
    find: str = ""


@dataclass(frozen=True)
class InlineSentence:
    """A sentence's plain text (what the model sees) and its inline markup."""

    plain: str
    tags: tuple[Tag, ...]
    escape: bool  # HTML: the target text is escaped where it goes between tags


@dataclass
class _Token:
    kind: str  # "text", "open", "close", VOID, ATOM
    start: int  # raw offsets
    end: int
    name: str = ""
    plain: str = ""  # text an atom shows the model
    mate: int = -1  # index of the matching open/close token
    output: str | None = None  # what an atom becomes in the target (None: its raw text)
    find: str = ""  # see Tag.find


@dataclass
class Parsed:
    """Plain text of a stretch of markup, with where each plain character came from."""

    plain: str
    raw_start: list[int]  # per plain character: raw offset where it starts
    raw_end: list[int]  # ... and ends
    tokens: list[_Token]
    token_plain: list[tuple[int, int]] = field(default_factory=list)  # plain span per token


# -- HTML ------------------------------------------------------------------------------------


def _atom_end(text: str, match: re.Match[str], end: int) -> int | None:
    """End of the element opened by ``match`` (same-name nesting counted), if within ``end``."""
    name = match.group("tag").lower()
    depth = 0
    for m in TAG.finditer(text, match.start(), end):
        if (m.group("tag") or "").lower() != name or m.group("self"):
            continue
        depth += -1 if m.group("close") else 1
        if depth == 0:
            return m.end()
    return None


def html_tokens(text: str, start: int, end: int) -> list[_Token] | None:
    """Tokens of ``text[start:end]``; None when it holds a tag that is not inline."""
    tokens: list[_Token] = []
    i = start
    while i < end:
        lt = text.find("<", i, end)
        m = TAG.match(text, lt, end) if lt >= 0 else None
        while lt >= 0 and m is None:
            lt = text.find("<", lt + 1, end)
            m = TAG.match(text, lt, end) if lt >= 0 else None
        if m is None:
            tokens.append(_Token("text", i, end))
            break
        if lt > i:
            tokens.append(_Token("text", i, lt))
        name = (m.group("tag") or "").lower()
        if not name:  # comment
            tokens.append(_Token(VOID, lt, m.end()))
        elif m.group("close"):
            if name not in INLINE_ELEMENTS:
                return None
            tokens.append(_Token("close", lt, m.end(), name))
        elif name in VOID_INLINE or (m.group("self") and name in INLINE_ELEMENTS):
            tokens.append(_Token(VOID, lt, m.end(), name, " " if name == "br" else ""))
        elif name in VERBATIM_INLINE or (name in INLINE_ELEMENTS and _OPT_OUT.search(m.group())):
            stop = _atom_end(text, m, end)
            if stop is None:
                return None
            content = re.sub(r"<[^>]*>", "", text[m.end():stop])
            tokens.append(_Token(ATOM, lt, stop, name, html.unescape(content)))
            i = stop
            continue
        elif name in INLINE_ELEMENTS:
            tokens.append(_Token("open", lt, m.end(), name))
        else:
            return None
        i = m.end()
    _pair(tokens)
    return tokens


def _pair(tokens: list[_Token]) -> None:
    """Match open and close tokens; what stays unmatched becomes a void."""
    stack: list[int] = []
    for n, token in enumerate(tokens):
        if token.kind == "open":
            stack.append(n)
        elif token.kind == "close":
            match = next((k for k in range(len(stack) - 1, -1, -1)
                          if tokens[stack[k]].name == token.name), None)
            if match is None:
                token.kind = VOID
                continue
            for k in stack[match + 1:]:
                tokens[k].kind = VOID
            opener = stack[match]
            del stack[match:]
            tokens[opener].mate, token.mate = n, opener
    for k in stack:
        tokens[k].kind = VOID


# -- Markdown --------------------------------------------------------------------------------

_FOOTNOTE_REFERENCE = re.compile(r"\[\^[^\]\s]+\]")
_REFERENCE_LABEL = re.compile(r"\[[^\]]*\]")
_AUTOLINK = re.compile(
    r"<[A-Za-z][A-Za-z0-9.+-]{1,31}:[^\s<>]*>"
    r"|<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>")


def markdown_tokens(text: str, start: int, end: int) -> list[_Token]:
    """Tokens of a stretch of Markdown prose: emphasis, links, code spans, inline HTML."""
    tokens: list[_Token] = []
    text_start = start
    links: list[int] = []  # token indexes of "[" / "![" openers
    delimiters: list[int] = []  # token indexes of emphasis delimiter runs that may open

    def flush(upto: int) -> None:
        if upto > text_start:
            tokens.append(_Token("text", text_start, upto))

    i = start
    while i < end:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "`":
            close = code_span_end(text, i, end)
            if close is None:
                while i < end and text[i] == "`":
                    i += 1
                continue
            flush(i)
            run = 1
            while text[i + run] == "`":
                run += 1
            tokens.append(_Token(ATOM, i, close, "code", text[i + run:close - run].strip()))
            i = text_start = close
            continue
        if c == "<":
            if m := _AUTOLINK.match(text, i, end):
                flush(i)
                tokens.append(_Token(ATOM, i, m.end(), "url", m.group()[1:-1]))
                i = text_start = m.end()
                continue
            if m := TAG.match(text, i, end):
                flush(i)
                name = (m.group("tag") or "").lower()
                verbatim = name in VERBATIM_INLINE or bool(_OPT_OUT.search(m.group()))
                if (name in INLINE_ELEMENTS and not verbatim and not m.group("close")
                        and not m.group("self")):
                    tokens.append(_Token("open", i, m.end(), "<" + name))
                elif m.group("close") and name in INLINE_ELEMENTS:
                    tokens.append(_Token("close", i, m.end(), "<" + name))
                elif verbatim and name and not m.group("close") and \
                        (stop := _atom_end(text, m, end)) is not None:
                    content = re.sub(r"<[^>]*>", "", text[m.end():stop])
                    tokens.append(_Token(ATOM, i, stop, name, html.unescape(content)))
                    i = text_start = stop
                    continue
                else:
                    tokens.append(_Token(VOID, i, m.end(), name, " " if name == "br" else ""))
                i = text_start = m.end()
                continue
        if c == "[" or (c == "!" and text.startswith("[", i + 1)):
            if c == "[" and (m := _FOOTNOTE_REFERENCE.match(text, i, end)):
                flush(i)
                tokens.append(_Token(VOID, i, m.end()))
                i = text_start = m.end()
                continue
            flush(i)
            width = 1 if c == "[" else 2
            links.append(len(tokens))
            tokens.append(_Token("text", i, i + width, "["))  # a link opener until closed
            i = text_start = i + width
            continue
        if c == "]" and links:
            target_end: int | None = None
            if text.startswith("(", i + 1):
                target_end = paren_end(text, i + 1, end)
            elif text.startswith("[", i + 1) and (m := _REFERENCE_LABEL.match(text, i + 1, end)):
                target_end = m.end()
            opener = links.pop()
            if target_end is not None:
                flush(i)
                tokens[opener].kind = "open"
                tokens.append(_Token("close", i, target_end, "[", mate=opener))
                tokens[opener].mate = len(tokens) - 1
                # Emphasis cannot pair across the link's edge.
                delimiters[:] = [d for d in delimiters if d < opener]
                i = text_start = target_end
                continue
            i += 1
            continue
        if c in "*_~":
            run_end = i
            while run_end < end and text[run_end] == c:
                run_end += 1
            marker = text[i:run_end]
            before = text[i - 1] if i > start else " "
            after = text[run_end] if run_end < end else " "
            if c == "~" and len(marker) != 2:
                i = run_end
                continue
            can_open = not after.isspace() and not (c == "_" and before.isalnum())
            can_close = not before.isspace() and not (c == "_" and after.isalnum())
            closed = False
            if can_close:
                for k in range(len(delimiters) - 1, -1, -1):
                    opener_token = tokens[delimiters[k]]
                    if text[opener_token.start:opener_token.end] == marker:
                        flush(i)
                        tokens.append(_Token("close", i, run_end, marker, mate=delimiters[k]))
                        opener_token.kind = "open"
                        opener_token.mate = len(tokens) - 1
                        del delimiters[k:]
                        closed = True
                        break
            if not closed and can_open:
                flush(i)
                delimiters.append(len(tokens))
                tokens.append(_Token("text", i, run_end, marker))  # an opener until closed
            elif not closed:
                i = run_end
                continue
            i = text_start = run_end
            continue
        i += 1
    flush(end)
    # HTML pairs inside Markdown are matched like HTML.
    stack: list[int] = []
    for n, token in enumerate(tokens):
        if token.name.startswith("<"):
            if token.kind == "open":
                stack.append(n)
            elif token.kind == "close":
                opened = next((k for k in range(len(stack) - 1, -1, -1)
                               if tokens[stack[k]].name == token.name), None)
                if opened is None:
                    token.kind = VOID
                else:
                    for j in stack[opened + 1:]:
                        tokens[j].kind = VOID
                    tokens[stack[opened]].mate, token.mate = n, stack[opened]
                    del stack[opened:]
    for j in stack:
        tokens[j].kind = VOID
    return tokens


# -- plain text ------------------------------------------------------------------------------


def unescape_map(raw: str) -> tuple[str, list[int], list[int]]:
    """``html.unescape(raw)`` plus, for every output character, its source start and end."""
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    for m in CHARREF.finditer(raw):
        source = m.group()
        replacement = html.unescape(source)
        # Characters the entity did not consume ("&ampfoo" -> "&foo", "&\r" -> "&\r") map
        # one to one; only the entity itself maps to its whole source span.
        literal = 0
        while (literal < len(source) and literal < len(replacement)
               and source[-1 - literal] == replacement[-1 - literal]):
            literal += 1
        if replacement != source:
            literal = min(literal, len(replacement) - 1)
        entity_end = m.end() - literal
        for i in range(position, m.start()):
            parts.append(raw[i])
            starts.append(i)
            ends.append(i + 1)
        entity = replacement[:len(replacement) - literal]
        parts.append(entity)
        starts.extend([m.start()] * len(entity))
        ends.extend([entity_end] * len(entity))
        position = entity_end
    for i in range(position, len(raw)):
        parts.append(raw[i])
        starts.append(i)
        ends.append(i + 1)
    return "".join(parts), starts, ends


# Text that is never translated wherever it appears: URLs, e-mail addresses, @mentions
# (also Mastodon's @user@server) and #hashtags.
PROTECTED = re.compile(
    r"(?:https?|ftp)://[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]"
    r"|www\.[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]"
    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
    r"|(?<![\w@])@\w+(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)?"
    r"|(?<![\w#&])#\w*[^\W\d]\w*"
)


@dataclass(frozen=True)
class Terms:
    """Caller-given terms: kept verbatim (``keep``) or replaced by a target term (``glossary``,
    source -> target pairs). Matched case-sensitively, as whole words."""

    keep: tuple[str, ...] = ()
    glossary: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keep or self.glossary)

    def pattern(self) -> re.Pattern[str]:
        return _terms_pattern(self)


_WORDLIKE = re.compile(r"\w")


def _bounded(term: str) -> str:
    """``term`` as a regex that does not start or end inside a word."""
    left = r"(?<!\w)" if _WORDLIKE.match(term[:1]) else ""
    right = r"(?!\w)" if _WORDLIKE.match(term[-1:]) else ""
    return left + re.escape(term) + right


_pattern_cache: dict[Terms, re.Pattern[str]] = {}


def _terms_pattern(terms: Terms) -> re.Pattern[str]:
    """Caller terms first (longest first), then the built-in protected kinds."""
    found = _pattern_cache.get(terms)
    if found is None:
        names = sorted({t for t in terms.keep if t.strip()} | {s for s, _ in terms.glossary
                                                                  if s.strip()},
                       key=lambda t: (-len(t), t))
        terms_alternative = "|".join(_bounded(t) for t in names) if names else "(?!)"
        found = re.compile(f"(?P<term>{terms_alternative})|(?:{PROTECTED.pattern})")
        if len(_pattern_cache) > 256:
            _pattern_cache.clear()
        _pattern_cache[terms] = found
    return found


def protected_tokens(text: str, start: int, end: int, terms: Terms | None,
                     unescape: bool = False) -> list[_Token]:
    """``text[start:end]`` as text tokens and atoms: URLs, e-mail addresses, @mentions,
    #hashtags and the caller's terms (glossary sources become their target term)."""
    glossary = dict(terms.glossary) if terms else {}
    pattern = (terms or _NO_TERMS).pattern()
    tokens: list[_Token] = []
    position = start
    for m in pattern.finditer(text, start, end):
        if m.start() == m.end():
            continue
        if m.start() > position:
            tokens.append(_Token("text", position, m.start()))
        raw = m.group()
        shown = html.unescape(raw) if unescape else raw
        if m.group("term") is not None and shown in glossary:
            target = glossary[shown]
            output = html.escape(target, quote=False) if unescape else target
            tokens.append(_Token(ATOM, m.start(), m.end(), "term", shown, output=output,
                                 find=target))
        else:
            tokens.append(_Token(ATOM, m.start(), m.end(), "keep", shown, find=shown))
        position = m.end()
    if position < end:
        tokens.append(_Token("text", position, end))
    return tokens


def split_protected(text: str, tokens: list[_Token], terms: Terms | None,
                    unescape: bool) -> list[_Token]:
    """``tokens`` with protected spans in their text tokens made atoms (mates remapped)."""
    out: list[_Token] = []
    remap: dict[int, int] = {}
    for n, token in enumerate(tokens):
        remap[n] = len(out)
        if token.kind == "text" and not token.name:
            out.extend(protected_tokens(text, token.start, token.end, terms, unescape))
        else:
            out.append(token)
    for token in out:
        if token.mate >= 0:
            token.mate = remap[token.mate]
    return out


def protect_elements(text: str, tokens: list[_Token], unescape: bool) -> list[_Token]:
    """Elements whose whole text is a URL, address, mention or hashtag become atoms: a link
    written as its own URL, a Mastodon mention, come back exactly as they were."""
    out: list[_Token] = []
    remap: dict[int, int] = {}
    n = 0
    while n < len(tokens):
        token = tokens[n]
        if token.kind == "open" and token.mate > n:
            inner = tokens[n + 1:token.mate]
            content = "".join(
                (html.unescape(text[t.start:t.end]) if unescape else text[t.start:t.end])
                if t.kind == "text" else t.plain for t in inner).strip()
            if content and PROTECTED.fullmatch(content):
                close = tokens[token.mate]
                out.append(_Token(ATOM, token.start, close.end, token.name, content))
                n = token.mate + 1
                continue
        remap[n] = len(out)
        out.append(token)
        n += 1
    for token in out:
        if token.mate >= 0:
            token.mate = remap.get(token.mate, -1)
    return out


def plain_text(text: str, tokens: list[_Token], unescape: bool) -> Parsed:
    """The model's view of ``tokens``: text (unescaped for HTML) and atoms' text, whitespace
    collapsed to single spaces and stripped; markup left out."""
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    spans: list[tuple[int, int]] = []
    for token in tokens:
        first = len(chars)
        if token.kind == "text":
            raw = text[token.start:token.end]
            if unescape and "&" in raw:
                plain, s, e = unescape_map(raw)
                chars.extend(plain)
                starts.extend(token.start + x for x in s)
                ends.extend(token.start + x for x in e)
            else:
                chars.extend(raw)
                starts.extend(range(token.start, token.end))
                ends.extend(range(token.start + 1, token.end + 1))
        elif token.plain:
            chars.extend(token.plain)
            starts.extend([token.start] * len(token.plain))
            ends.extend([token.end] * len(token.plain))
        spans.append((first, len(chars)))
    # Collapse whitespace runs to one space, strip the ends; keep the index translation.
    keep: list[int] = []
    new_index = [0] * (len(chars) + 1)
    previous_space = True
    for n, ch in enumerate(chars):
        new_index[n] = len(keep)
        is_space = ch in " \t\r\n\f"
        if is_space and previous_space:
            continue
        keep.append(n)
        previous_space = is_space
    new_index[len(chars)] = len(keep)
    # Strip as str.strip() does (no-break and other Unicode spaces too), like every sentence.
    lead = 0
    while lead < len(keep) and chars[keep[lead]].isspace():
        lead += 1
    trail = len(keep)
    while trail > lead and chars[keep[trail - 1]].isspace():
        trail -= 1
    keep = keep[lead:trail]
    new_index = [min(max(x - lead, 0), len(keep)) for x in new_index]
    plain = "".join(" " if chars[n] in " \t\r\n\f" else chars[n] for n in keep)
    return Parsed(
        plain, [starts[n] for n in keep], [ends[n] for n in keep], tokens,
        [(new_index[a], new_index[b]) for a, b in spans],
    )


def sentence_in(text: str, parsed: Parsed, first: int, last: int, a: int, b: int,
                escape: bool) -> InlineSentence:
    """The sentence at plain ``[a, b)`` of ``parsed``, with the markup of tokens
    ``[first, last)`` (an element whose other half lies outside becomes a void)."""
    tags: list[Tag] = []
    open_stack: list[int] = []
    tag_of: dict[int, int] = {}
    size = b - a
    for n in range(max(first, 0), last):
        token = parsed.tokens[n]
        if token.kind == "text":
            continue
        pa, pb = parsed.token_plain[n]
        pa, pb = min(max(pa - a, 0), size), min(max(pb - a, 0), size)
        parent = open_stack[-1] if open_stack else -1
        kind = token.kind
        if kind in ("open", "close") and not first <= token.mate < last:
            kind = VOID
        if kind == "open":
            tag_of[n] = len(tags)
            tags.append(Tag(PAIR, text[token.start:token.end], "", pa, pa, parent, len(open_stack)))
            open_stack.append(len(tags) - 1)
        elif kind == "close":
            k = tag_of[token.mate]
            old = tags[k]
            tags[k] = Tag(PAIR, old.open, text[token.start:token.end], old.start, pa, old.parent,
                          old.depth)
            open_stack.remove(k)
        else:
            output = text[token.start:token.end] if token.output is None else token.output
            tags.append(Tag(kind, output, "", pa, pb if kind == ATOM else pa, parent,
                            len(open_stack), token.find if kind == ATOM else ""))
    return InlineSentence(parsed.plain[a:b], tuple(tags), escape)


def make_sentence(text: str, parsed: Parsed, escape: bool) -> InlineSentence:
    """The sentence of ``parsed`` (a whole unit: every pair matched inside it)."""
    tags: list[Tag] = []
    open_stack: list[int] = []  # tag indexes of the pairs open at this point
    tag_of: dict[int, int] = {}  # open token index -> tag index
    for n, token in enumerate(parsed.tokens):
        a, b = parsed.token_plain[n]
        parent = open_stack[-1] if open_stack else -1
        if token.kind == "open":
            tag_of[n] = len(tags)
            tags.append(Tag(PAIR, text[token.start:token.end], "", a, a, parent, len(open_stack)))
            open_stack.append(len(tags) - 1)
        elif token.kind == "close":
            k = tag_of[token.mate]
            old = tags[k]
            tags[k] = Tag(PAIR, old.open, text[token.start:token.end], old.start, a, old.parent,
                          old.depth)
            open_stack.remove(k)
        elif token.kind in (VOID, ATOM):
            output = text[token.start:token.end] if token.output is None else token.output
            tags.append(Tag(token.kind, output, "", a, b, parent, len(open_stack), token.find))
    return InlineSentence(parsed.plain, tuple(tags), escape)


_NO_TERMS = Terms()


# -- putting the markup back -----------------------------------------------------------------


def _word_range(words: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """Indexes [a, b) of the words overlapping plain [start, end); empty at the boundary."""
    inside = [n for n, (s, e) in enumerate(words) if s < end and e > start]
    if inside:
        return inside[0], inside[-1] + 1
    before = sum(1 for s, e in words if e <= start)
    return before, before


def _found_atoms(
    tags: tuple[Tag, ...], target: str, target_words: list[tuple[int, int]],
    source_words: list[tuple[int, int]],
    hull: Callable[[int, int], tuple[int, int] | None],
) -> dict[int, tuple[int, int]]:
    """Atoms whose ``find`` text the translation holds verbatim: the character span of the
    occurrence each takes (nearest to where the alignment puts it; each taken once)."""
    taken: list[tuple[int, int]] = []
    out: dict[int, tuple[int, int]] = {}
    for n, tag in enumerate(tags):
        if tag.kind != ATOM or not tag.find:
            continue
        occurrences = []
        i = target.find(tag.find)
        while i >= 0:
            span = (i, i + len(tag.find))
            if all(span[1] <= a or span[0] >= b for a, b in taken):
                occurrences.append(span)
            i = target.find(tag.find, i + 1)
        if not occurrences:
            continue
        aligned = hull(*_word_range(source_words, tag.start, tag.end))
        near = target_words[aligned[0]][0] if aligned and aligned[0] < len(target_words) else 0
        best = min(occurrences, key=lambda span: (abs(span[0] - near), span[0]))
        taken.append(best)
        out[n] = best
    return out


def place(sentence: InlineSentence, target: str, alignment: Alignment | None) -> str:
    """``target`` (the plain translation) with the sentence's inline markup put back."""
    source_words = [m.span() for m in _WORD.finditer(sentence.plain)]
    target_words = [m.span() for m in _WORD.finditer(target)]
    ns, nt = len(source_words), len(target_words)
    if (alignment is None or len(alignment.target_to_source) != nt
            or len(alignment.source_to_target) != ns):
        alignment = proportional(nt, ns)
    t2s, s2t = alignment.target_to_source, alignment.source_to_target

    def hull(a: int, b: int) -> tuple[int, int] | None:
        hit = [t for t in range(nt) if a <= t2s[t] < b] or [s2t[s] for s in range(a, b)]
        return (min(hit), max(hit) + 1) if hit else None

    def point(k: int) -> int:
        if k <= 0 or nt == 0:
            return 0
        if k >= ns:
            return nt
        after = [t for t in range(nt) if t2s[t] == k - 1] or [s2t[k - 1]]
        return max(after) + 1

    tags = sentence.tags
    children: dict[int, list[int]] = {}
    for n, tag in enumerate(tags):
        children.setdefault(tag.parent, []).append(n)
    ranges: dict[int, tuple[int, int]] = {}
    found = _found_atoms(tags, target, target_words, source_words, hull)

    def assign(parent: int, lo: int, hi: int) -> None:
        wanted: list[tuple[int, int, int]] = []
        for n in children.get(parent, []):
            tag = tags[n]
            a, b = _word_range(source_words, tag.start, tag.end)
            if n in found:
                span = _word_range(target_words, *found[n])
            elif tag.kind == VOID or a == b:
                p = point(a)
                span = (p, p)
            else:
                span = hull(a, b) or (point(a), point(a))
            x, y = max(lo, min(span[0], hi)), max(lo, min(span[1], hi))
            wanted.append((x, y, n))
        # Atoms found verbatim in the translation hold their words first; the others fit
        # around them, in target order, without overlapping one another.
        occupied = []
        for x, y, n in wanted:
            if n in found and (x, y) == _word_range(target_words, *found[n]):
                ranges[n] = (x, y)
                if y > x:
                    occupied.append((x, y))
        cursor = lo
        for x, y, n in sorted(wanted, key=lambda w: (w[0], w[2])):
            if n in ranges:
                continue
            x = max(x, cursor)
            y = max(x, min(y, hi))
            for a, b in sorted(occupied):
                if a < y and b > x:
                    if x >= a:
                        x = min(b, hi)
                        y = max(x, y)
                    else:
                        y = a
            ranges[n] = (x, y)
            cursor = y
            if tags[n].kind == PAIR:
                assign(n, x, y)

    assign(-1, 0, nt)

    # Insertions at target character offsets: (offset, group, order, text); group 0 closes,
    # 1 voids and empty elements, 2 opens, 3 atoms (after the opens around them).
    inserts: list[tuple[int, int, int, str]] = []
    skips: list[tuple[int, int]] = []

    def start_of(k: int) -> int:
        return target_words[k][0] if k < nt else len(target)

    def end_of(k: int) -> int:
        return target_words[k - 1][1] if k > 0 else 0

    def outside(tag: Tag) -> tuple[bool, bool]:
        """Whether the source word at each edge of ``tag`` has punctuation outside it
        (``"<b>word</b>".``): then the target word's punctuation stays outside too."""
        lead = trail = False
        for s, e in source_words:
            if s < tag.start < e:
                lead = not any(c.isalnum() for c in sentence.plain[s:tag.start])
            if s < tag.end < e:
                trail = not any(c.isalnum() for c in sentence.plain[tag.end:e])
        return lead, trail

    def punctuation(a: int, b: int, from_end: bool) -> int:
        word = target[a:b]
        n = 0
        chars = reversed(word) if from_end else iter(word)
        for c in chars:
            if c.isalnum():
                break
            n += 1
        return n if n < len(word) else 0

    for n, tag in enumerate(tags):
        x, y = ranges[n]
        if tag.kind == PAIR and y > x:
            lead, trail = outside(tag)
            opening = start_of(x)
            closing = end_of(y)
            if lead:
                opening += punctuation(opening, target_words[x][1], False)
            if trail:
                closing -= punctuation(target_words[y - 1][0], closing, True)
            inserts.append((opening, 2, tag.depth, tag.open))
            inserts.append((closing, 0, -tag.depth, tag.close))
        elif tag.kind == PAIR:
            inserts.append((start_of(x), 1, n, tag.open + tag.close))
        elif tag.kind == ATOM and n in found and (x, y) == _word_range(target_words, *found[n]):
            inserts.append((found[n][0], 3, n, tag.open))  # exactly where the model put it
            skips.append(found[n])
        elif tag.kind == ATOM and y > x:
            lead, trail = outside(tag)
            first, last = start_of(x), end_of(y)
            if lead:
                first += punctuation(first, target_words[x][1], False)
            if trail:
                last -= punctuation(target_words[y - 1][0], last, True)
            inserts.append((first, 3, n, tag.open))
            skips.append((first, last))
        elif tag.kind == ATOM:  # no target word for it: a word of its own
            spaced = (tag.open + " " if x < nt else " " + tag.open) if nt else tag.open
            inserts.append((start_of(x), 1, n, spaced))
        else:
            at = end_of(x) if x > 0 else 0
            inserts.append((at, 1, n, tag.open))
            if tag.end > tag.start and target.startswith(" ", at) and 0 < x < nt:
                skips.append((at, at + 1))  # a <br> stands for the space it replaced
                inserts[-1] = (at, 3, n, tag.open)
    inserts.sort(key=lambda item: (item[0], item[1], item[2]))
    out: list[str] = []
    position = 0
    skip_until = 0
    starts = {a: b for a, b in skips}

    def emit(upto: int) -> None:
        nonlocal position
        if upto > position:
            first = max(position, skip_until)
            if upto > first:
                chunk = target[first:upto]
                out.append(html.escape(chunk, quote=False) if sentence.escape else chunk)
            position = upto

    for offset, group, _, markup in inserts:
        emit(offset)
        out.append(markup)
        if group == 3:
            skip_until = max(skip_until, starts[offset])
    emit(len(target))
    return "".join(out)
