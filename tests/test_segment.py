"""Sentence segmentation: pieces always rebuild the original text exactly."""

from __future__ import annotations

import random
import re
import unicodedata

import pytest

from dragoman.server.text.inline import place
from dragoman.server.text.segment import (
    SegmentedText,
    TextFormat,
    joiner,
    split_document,
    split_sentences,
    split_to_fit,
)

WORDS = [
    "Hello", "world", "Dr.", "e.g.", "3.14", "Ça", "naïve", "日本語", "中文。", "你好！", "สวัสดี",
    "مرحبا؟", "Привет.", "😀", "👍🏽", "e\u0301", "हिन्दी", "ok", "2024", "U.S.", "don't",
]
PUNCTUATION = [".", "!", "?", "…", ",", ";", ":", "—", "-", "'", '"', "(", ")", "。", "、"]
WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", "\u00a0", "\u2028", "\u3000", "\x0c", " \n "]
HTML_BITS = [
    "<p>", "</p>", "<b>", "</b>", "<!-- note. -->", "<script>if (a<b) x = 'y.';</script>",
    "<code>a. b</code>", "<br/>", '<a href="x. y" title="Hi there.">', "</a>", "<!DOCTYPE html>",
    "</>", "<", ">", "&", "&amp;", "&nbsp;", "&#39;", "&lt;", "&eacute;", "&bogus;", "<![CDATA[x. y]]>",
    '<span translate="no">', "</span>", "<pre>", "</pre>", "<?php x ?>",
]
MARKDOWN_BITS = [
    "# ", "## ", "- ", "1. ", "> ", "```\n", "~~~\n", "    ", "`code`", "``a ` b``", "[link](http://x.y/a_(b))",
    "![img](a.png)", "| a | b |\n|---|---|\n", "---\n", "<span>", "</span>", "[^1]", "<!--", "-->",
    "*", "**", "_", "\\", "[", "]", "(", ")", "|", "<https://example.org>", "[x][ref]", "[ref]: /url\n",
]


def random_text(rng: random.Random, extra: list[str]) -> str:
    pools = [WORDS, WORDS, PUNCTUATION, WHITESPACE, WHITESPACE, extra]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, 60)))


def check_invariants(text: str, fmt: TextFormat) -> SegmentedText:
    doc = split_document(text, "en", fmt)
    assert "".join(doc.pieces) == text
    assert all(doc.pieces), "no empty pieces"
    assert list(doc.sentence_index) == sorted(set(doc.sentence_index))
    assert doc.rebuild(doc.sentences) == text
    for sentence in doc.sentences:
        assert sentence == sentence.strip() and any(c.isalpha() for c in sentence)
    marked = doc.rebuild([f"T{i}" for i in range(len(doc.sentences))])
    expected = list(doc.pieces)
    for n, i in enumerate(doc.sentence_index):
        inline = doc.markup(n)
        if inline is None:
            expected[i] = f"T{n}"
            continue
        # Inline markup comes back around the translation, every element exactly once.
        placed = place(inline, f"T{n}", None)
        rest = placed
        for tag in inline.tags:
            for part in (tag.open, tag.close):
                assert part in rest, (part, placed)
                rest = rest.replace(part, "", 1)
        assert rest.replace("&", "").strip(" ") in (f"T{n}", ""), (placed, inline)
        expected[i] = placed
    assert marked == "".join(expected)
    return doc


@pytest.mark.parametrize("seed", range(150))
def test_random_plain_text_round_trips(seed: int) -> None:
    rng = random.Random(seed)
    text = random_text(rng, PUNCTUATION)
    doc = check_invariants(text, TextFormat.PLAIN)
    for i in doc.sentence_index:
        assert not any(c in doc.pieces[i] for c in "\n\r\u2028\x0c"), "a sentence never spans lines"


@pytest.mark.parametrize("seed", range(150))
def test_random_html_round_trips(seed: int) -> None:
    rng = random.Random(1000 + seed)
    check_invariants(random_text(rng, HTML_BITS), TextFormat.HTML)


@pytest.mark.parametrize("seed", range(150))
def test_random_markdown_round_trips(seed: int) -> None:
    rng = random.Random(2000 + seed)
    check_invariants(random_text(rng, MARKDOWN_BITS), TextFormat.MARKDOWN)


@pytest.mark.parametrize("fmt", list(TextFormat))
@pytest.mark.parametrize("text", ["", " ", "\n\n", "\r\n\t \r\n", "   \u3000  ", "123 456", "— * —"])
def test_empty_and_letterless_input_has_no_sentences(text: str, fmt: TextFormat) -> None:
    doc = check_invariants(text, fmt)
    assert doc.sentences == []
    assert doc.rebuild([]) == text


def test_plain_text_keeps_all_whitespace_around_translations() -> None:
    text = "  Hello there.  How are you?\t\r\n\r\n    Fine, thanks!   \n\nBye."
    doc = split_document(text, "en")
    assert doc.sentences == ["Hello there.", "How are you?", "Fine, thanks!", "Bye."]
    rebuilt = doc.rebuild(["Hallo.", "Wie geht's?", "Gut, danke!", "Tschüss."])
    assert rebuilt == "  Hallo.  Wie geht's?\t\r\n\r\n    Gut, danke!   \n\nTschüss."


def test_each_line_is_a_block_even_without_final_punctuation() -> None:
    doc = split_document("Title without a stop\nFirst sentence. Second one", "en")
    assert doc.sentences == ["Title without a stop", "First sentence.", "Second one"]


def test_abbreviations_and_decimals_do_not_end_sentences() -> None:
    doc = split_document("Dr. Smith paid 3.50 euros. Then he left.", "en")
    assert doc.sentences == ["Dr. Smith paid 3.50 euros.", "Then he left."]


def test_chinese_splits_on_full_width_stops() -> None:
    doc = split_document("今天天气很好。我们去公园吧！你觉得呢？", "zh")
    assert doc.sentences == ["今天天气很好。", "我们去公园吧！", "你觉得呢？"]
    assert doc.rebuild(["A", "B", "C"]) == "ABC"


def test_numbers_and_symbols_stay_verbatim() -> None:
    doc = split_document("Results:\n2024\n---\n😀\nThat is all.", "en")
    assert doc.sentences == ["Results:", "That is all."]


def test_regional_language_tags_are_accepted() -> None:
    assert split_document("Olá. Tudo bem?", "pt-BR").sentences == ["Olá.", "Tudo bem?"]


def test_format_may_be_given_as_its_value() -> None:
    assert split_document("<b>Hi there.</b>", "en", "html").sentences == ["Hi there."]  # type: ignore[arg-type]


def test_rebuild_rejects_wrong_count() -> None:
    doc = split_document("One. Two.", "en")
    with pytest.raises(ValueError, match="expected 2 translations, got 1"):
        doc.rebuild(["Eins."])
    with pytest.raises(TypeError, match="not one string"):
        doc.rebuild("ab")


def test_split_sentences_spans_are_stripped_and_exact() -> None:
    text = "  First one.   Second one?\n\n\tThird\r\n"
    spans = split_sentences(text, "en")
    assert [text[a:b] for a, b in spans] == ["First one.", "Second one?", "Third"]
    assert all(text[a:b] == text[a:b].strip() for a, b in spans)
    assert split_sentences("", "en") == [] and split_sentences(" \n ", "en") == []


@pytest.mark.parametrize(
    ("language", "expected"),
    [("zh", ""), ("ja", ""), ("th", ""), ("lo", ""), ("km", ""), ("my", ""), ("zh-Hant", ""),
     ("en", " "), ("ko", " "), ("ar", " "), ("de-AT", " ")],
)
def test_joiner(language: str, expected: str) -> None:
    assert joiner(language) == expected


# --- split_to_fit -------------------------------------------------------------------------------

def at_most(limit: int, calls: list[str] | None = None):
    def fits(piece: str) -> bool:
        if calls is not None:
            calls.append(piece)
        return len(piece) <= limit
    return fits


def test_split_to_fit_returns_text_that_fits_whole() -> None:
    assert split_to_fit("Short enough.", at_most(20)) == ["Short enough."]
    assert split_to_fit("", at_most(5)) == [""]


def test_split_to_fit_prefers_clause_punctuation() -> None:
    text = "When the rain stopped, the children ran outside; the dogs followed them."
    pieces = split_to_fit(text, at_most(40))
    assert "".join(pieces) == text
    assert pieces == ["When the rain stopped, ", "the children ran outside; ", "the dogs followed them."]


def test_split_to_fit_packs_clauses_greedily() -> None:
    text = "a, b, c, d, e, f, g, h"
    assert split_to_fit(text, at_most(7)) == ["a, b, ", "c, d, ", "e, f, ", "g, h"]


def test_split_to_fit_falls_back_to_whitespace() -> None:
    text = "one two three four five six seven eight nine ten"
    pieces = split_to_fit(text, at_most(15))
    assert "".join(pieces) == text
    assert pieces == ["one two three ", "four five six ", "seven eight ", "nine ten"]


def test_split_to_fit_cuts_cjk_between_characters_after_punctuation() -> None:
    text = "我们明天早上八点在火车站见面，然后一起去博物馆参观新的展览"
    pieces = split_to_fit(text, at_most(10))
    assert "".join(pieces) == text
    assert all(len(p.strip()) <= 10 for p in pieces)
    assert any(p.endswith("，") for p in pieces)


def test_split_to_fit_arabic_comma() -> None:
    text = "ذهبنا إلى السوق، واشترينا الخبز والحليب"
    pieces = split_to_fit(text, at_most(20))
    assert pieces[0] == "ذهبنا إلى السوق، "
    assert "".join(pieces) == text


def test_split_to_fit_never_cuts_inside_a_combining_sequence() -> None:
    text = "e\u0301" * 6 + "👍🏽" * 3
    pieces = split_to_fit(text, at_most(3))
    assert "".join(pieces) == text
    for piece in pieces:
        assert not unicodedata.category(piece[0]).startswith("M")
        assert piece[0] != "\U0001f3fd"


def test_split_to_fit_keeps_an_oversized_character_instead_of_dropping_it() -> None:
    text = "abc"
    assert split_to_fit(text, lambda piece: piece == "") == ["a", "b", "c"]


def test_split_to_fit_keeps_whitespace_verbatim() -> None:
    text = "  alpha,\tbeta,\r\n gamma  "
    pieces = split_to_fit(text, at_most(6))
    assert "".join(pieces) == text
    assert all(len(p.strip()) <= 6 for p in pieces)


def test_split_to_fit_calls_fits_logarithmically() -> None:
    text = " ".join(["word"] * 2000)
    calls: list[str] = []
    pieces = split_to_fit(text, at_most(500, calls))
    assert "".join(pieces) == text
    assert all(len(p.strip()) <= 500 for p in pieces)
    assert len(pieces) == 20  # 100 words of 4 letters + spaces = 499 characters each
    assert len(calls) < 600  # 20 pieces x O(log 2000) probes, not 2000 probes


@pytest.mark.parametrize("seed", range(100))
def test_random_split_to_fit_never_drops_text_and_fits_where_possible(seed: int) -> None:
    rng = random.Random(3000 + seed)
    text = random_text(rng, PUNCTUATION)
    limit = rng.randint(1, 30)
    pieces = split_to_fit(text, at_most(limit))
    assert "".join(pieces) == text
    for piece in pieces:
        stripped = piece.strip()
        if len(stripped) > limit:
            # Only a single unbreakable unit may exceed the limit: a base character with its
            # combining marks, joiners, variation selectors or skin-tone modifiers.
            assert len(split_to_fit(stripped, at_most(0))) == 1, piece


@pytest.mark.parametrize(("text", "fmt", "expected"), [
    ("One here. Two here.\nThree here.\n\nFour here. Five here.", TextFormat.PLAIN, (0, 0, 1, 2, 2)),
    ("<p>One here. Two here.</p><p>Three here.</p>", TextFormat.HTML, (0, 0, 1)),
    ("# Title\n\nOne here. Two here.\n- item one\n", TextFormat.MARKDOWN, (0, 1, 1, 2)),
    ("Just one sentence", TextFormat.PLAIN, (0,)),
])
def test_paragraph_numbers_follow_line_breaks_and_markup(text: str, fmt: TextFormat,
                                                         expected: tuple[int, ...]) -> None:
    doc = split_document(text, "en", fmt)
    assert doc.paragraphs() == expected
    assert len(doc.paragraphs()) == len(doc.sentences)


@pytest.mark.parametrize("seed", range(150))
def test_random_wrapped_text_round_trips(seed: int) -> None:
    rng = random.Random(3000 + seed)
    text = random_text(rng, PUNCTUATION)
    doc = check_invariants(text, TextFormat.WRAPPED)
    for n, i in enumerate(doc.sentence_index):
        piece = doc.pieces[i]
        assert not re.search(r"\n[ \t]*\n|\r[ \t]*\r|[\x0c\u2028]", piece), "never across paragraphs"
        assert "\n" not in doc.sentences[n] and "\r" not in doc.sentences[n], "soft breaks become spaces"


def test_wrapped_text_runs_sentences_across_single_line_breaks() -> None:
    text = ("The minister said on Tuesday that the\nbridge would reopen. Engineers\r\n"
            "  are still checking.\n \nA second paragraph\rhere.\x0cPage two.")
    doc = split_document(text, "en", TextFormat.WRAPPED)
    assert doc.sentences == [
        "The minister said on Tuesday that the bridge would reopen.",
        "Engineers are still checking.", "A second paragraph here.", "Page two.",
    ]
    assert doc.rebuild(doc.sentences) == text  # unchanged sentences keep their line breaks
    assert doc.rebuild([s.upper() for s in doc.sentences]) == (
        "THE MINISTER SAID ON TUESDAY THAT THE BRIDGE WOULD REOPEN. ENGINEERS ARE STILL CHECKING."
        "\n \nA SECOND PARAGRAPH HERE.\x0cPAGE TWO.")
