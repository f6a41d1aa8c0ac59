"""HTML and Markdown: only prose is translated; markup and code come back byte for byte."""

from __future__ import annotations

import itertools

import pytest

from dragoman.server.text.markup import html_text_ranges, markdown_text_ranges
from dragoman.server.text.segment import TextFormat, split_document


def sentences(text: str, fmt: TextFormat) -> list[str]:
    doc = split_document(text, "en", fmt)
    assert doc.rebuild(doc.sentences) == text
    return doc.sentences


def translate_upper(text: str, fmt: TextFormat) -> str:
    doc = split_document(text, "en", fmt)
    return doc.rebuild([s.upper() for s in doc.sentences])


# --- HTML ---------------------------------------------------------------------------------------

HTML = TextFormat.HTML


def test_html_translates_only_text_nodes() -> None:
    text = (
        '<!DOCTYPE html>\n<html lang="en"><head><title>Daily news</title>'
        "<style>p { color: red; }</style></head>\n<body>\n"
        '<p class="lead">The council met today. It voted twice.</p>\n'
        '<img alt="Keep this alt." src="a.png"><a href="/x?a=1&amp;b=2" title="Keep title.">Read more</a>\n'
        "<!-- Editor note. Do not translate. -->\n"
        "<script>var s = 'Not prose.';</script>\n</body></html>"
    )
    assert sentences(text, HTML) == [
        "Daily news", "The council met today.", "It voted twice.", "Read more",
    ]
    out = translate_upper(text, HTML)
    assert '<p class="lead">THE COUNCIL MET TODAY. IT VOTED TWICE.</p>' in out
    assert '<img alt="Keep this alt." src="a.png"><a href="/x?a=1&amp;b=2" title="Keep title.">READ MORE</a>' in out
    assert "<!-- Editor note. Do not translate. -->" in out
    assert "<script>var s = 'Not prose.';</script>" in out
    assert out.startswith('<!DOCTYPE html>\n<html lang="en"><head><title>DAILY NEWS</title><style>p { color: red; }')


@pytest.mark.parametrize("element", ["code", "pre", "script", "style", "kbd", "samp"])
def test_html_code_like_elements_stay_verbatim(element: str) -> None:
    text = f"<p>Before it.</p><{element}>Some words. More words.</{element}><p>After it.</p>"
    assert sentences(text, HTML) == ["Before it.", "After it."]


def test_html_nested_code_and_uppercase_tags() -> None:
    text = "<PRE><CODE>x = 1. y = 2.</CODE> still code.</PRE><P>Prose here.</P>"
    assert sentences(text, HTML) == ["Prose here."]


@pytest.mark.parametrize(
    "opening", ['<span translate="no">', '<span translate="NO">', '<div class="a notranslate">']
)
def test_html_translate_no_is_honoured(opening: str) -> None:
    tag = opening[1:].split()[0]
    element = f"{opening}Dragoman <b>Pro</b> edition</{tag}>"
    text = f"<p>Use {element} today.</p>"
    if tag == "span":  # inline: the sentence stays whole, the element comes back verbatim
        assert sentences(text, HTML) == ["Use Dragoman Pro edition today."]
        assert translate_upper(text, HTML) == f"<p>USE {element} TODAY.</p>"
    else:
        assert sentences(text, HTML) == ["Use", "today."]


def test_html_entities_are_unescaped_for_the_model_and_escaped_back() -> None:
    text = "<p>Tom &amp; Jerry&nbsp;say &quot;hi&quot; &#8212; 3 &lt; 4.</p>"
    doc = split_document(text, "en", HTML)
    assert doc.sentences == ["Tom & Jerry\u00a0say \"hi\" \u2014 3 < 4."]
    assert doc.rebuild(doc.sentences) == text  # untouched sentence keeps its original entities
    assert doc.rebuild(["A < B & C"]) == "<p>A &lt; B &amp; C</p>"
    assert doc.rebuild(["<script>x</script>"]) == "<p>&lt;script&gt;x&lt;/script&gt;</p>"


def test_html_whitespace_inside_text_nodes_is_collapsed_for_the_model() -> None:
    text = "<p>\n    A sentence that\n    wraps in the source.\n  </p>"
    doc = split_document(text, "en", HTML)
    assert doc.sentences == ["A sentence that wraps in the source."]
    assert doc.rebuild(["Ein Satz."]) == "<p>\n    Ein Satz.\n  </p>"


def test_html_fragments_and_unclosed_elements() -> None:
    text = "Intro text. <p>Para one<p>Para two<ul><li>Item one<li>Item two</ul> tail"
    assert sentences(text, HTML) == ["Intro text.", "Para one", "Para two", "Item one", "Item two", "tail"]


def test_html_broken_markup_is_never_translated_as_text() -> None:
    text = "<p>Fine text.</p></><div class='x' Unfinished tag text"
    doc = split_document(text, "en", HTML)
    assert doc.sentences == ["Fine text."]
    assert "</>" in doc.pieces[-1] and doc.pieces[-1].endswith("Unfinished tag text")


def test_html_lone_less_than_sign_is_prose() -> None:
    assert sentences("<p>If a < b then stop.</p>", HTML) == ["If a < b then stop."]


def test_html_cdata_comments_and_processing_instructions_stay_verbatim() -> None:
    text = "<?xml version='1.0'?><![CDATA[Raw words.]]><!-- A comment. --><p>Real text.</p>"
    assert sentences(text, HTML) == ["Real text."]


def test_html_text_ranges_are_sorted_and_disjoint() -> None:
    text = "<p>a</p>b<i>c</i>&amp;d<br>e"
    ranges = html_text_ranges(text)
    assert [text[a:b] for a, b in ranges] == ["a", "b", "c", "&amp;d", "e"]
    assert all(r1[1] <= r2[0] for r1, r2 in itertools.pairwise(ranges))


# --- Markdown ----------------------------------------------------------------------------------

MD = TextFormat.MARKDOWN

ARTICLE = """---
title: Keep front matter
tags: [a, b]
---
# The Big Story #

The council met today. It voted on the
new budget after a long debate.

```python
print("Not prose. At all.")
```

    indented code. Stays.

- First point with `inline code` in it.
- [ ] A task item.
2. Numbered item.

> A quoted line.

| Name | Comment |
|------|:-------:|
| Ana  | Very good. |

See [the report](https://example.org/report_(2024).pdf "Report title") and ![a chart](chart.png).
[1]: https://example.org/reference "Reference title"
Text with <span class="x">inline html</span> here.
"""


def test_markdown_translates_prose_only() -> None:
    assert sentences(ARTICLE, MD) == [
        "The Big Story",
        "The council met today.",
        "It voted on the new budget after a long debate.",
        "First point with inline code in it.",
        "A task item.",
        "Numbered item.",
        "A quoted line.",
        "Name", "Comment", "Ana", "Very good.",
        "See the report and a chart.",
        "Text with inline html here.",
    ]


def test_markdown_markup_comes_back_verbatim() -> None:
    out = translate_upper(ARTICLE, MD)
    for verbatim in [
        "---\ntitle: Keep front matter\ntags: [a, b]\n---\n",
        "# THE BIG STORY #\n",
        '```python\nprint("Not prose. At all.")\n```\n',
        "    indented code. Stays.\n",
        "- FIRST POINT WITH `inline code` IN IT.\n",
        "- [ ] A TASK ITEM.\n2. NUMBERED ITEM.\n",
        "> A QUOTED LINE.\n",
        "| NAME | COMMENT |\n|------|:-------:|\n| ANA  | VERY GOOD. |\n",
        'SEE [THE REPORT](https://example.org/report_(2024).pdf "Report title") AND ![A CHART](chart.png).\n',
        '[1]: https://example.org/reference "Reference title"\n',
        'TEXT WITH <span class="x">INLINE HTML</span> HERE.\n',
    ]:
        assert verbatim in out


def test_markdown_paragraph_sentences_span_soft_line_breaks() -> None:
    text = "A sentence that\nwraps onto a second line. Then\r\nanother one."
    doc = split_document(text, "en", MD)
    assert doc.sentences == ["A sentence that wraps onto a second line.", "Then another one."]
    assert doc.rebuild(["Eins.", "Zwei."]) == "Eins. Zwei."


@pytest.mark.parametrize(
    "block",
    [
        "~~~~\nA. B.\n~~~\nstill code.\n~~~~\n",
        "```\nunclosed fence. Everything after is code.\n",
        "<pre>\nPre text. More.\n</pre>\n",
        "<script>\nvar x = 'Words here.';\n</script>\n",
        "<!--\nA comment. Over lines.\n-->\n",
        "[id]: http://example.org  'Title words'\n",
        "***\n",
    ],
)
def test_markdown_code_and_raw_blocks_stay_verbatim(block: str) -> None:
    text = f"Before it.\n\n{block}\nAfter it."
    expected = ["Before it."] if block.startswith("```\nunclosed") else ["Before it.", "After it."]
    assert sentences(text, MD) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Call ``a ` b`` now.", ["Call a ` b now."]),
        ("Use <code>x. y</code> or <kbd>Ctrl</kbd> keys.", ["Use x. y or Ctrl keys."]),
        ("Mail <me@example.org> or see <https://example.org/a>.",
         ["Mail me@example.org or see https://example.org/a."]),
        ("A note[^1] here.", ["A note here."]),
        ("[Text with `code`](u) and [ref][r] and [short][].", ["Text with code and ref and short."]),
        ("Not a link [just brackets] here.", ["Not a link [just brackets] here."]),
        ("Escaped \\`tick\\` stays prose.", ["Escaped \\`tick\\` stays prose."]),
        ("Unmatched `backtick stays prose.", ["Unmatched `backtick stays prose."]),
        ("Some *emphasis* and **bold** stay inside.", ["Some emphasis and bold stay inside."]),
    ],
)
def test_markdown_inline_structure(line: str, expected: list[str]) -> None:
    assert sentences(line, MD) == expected


def test_markdown_setext_headings_and_rules() -> None:
    text = "Main title\n==========\n\nSub title\n---------\nBody text."
    doc = split_document(text, "en", MD)
    assert doc.sentences == ["Main title", "Sub title", "Body text."]
    assert doc.rebuild(["A", "B", "C"]) == "A\n==========\n\nB\n---------\nC"


def test_markdown_quotes_nested_and_lists() -> None:
    text = "> Outer line.\n> > Inner line.\n> - Quoted item\n\n1) One\n   continued.\n   * Nested"
    doc = split_document(text, "en", MD)
    assert doc.sentences == ["Outer line.", "Inner line.", "Quoted item", "One continued.", "Nested"]
    assert doc.rebuild(["A.", "B.", "C", "D.", "E"]) == "> A.\n> > B.\n> - C\n\n1) D.\n   * E"


def test_markdown_indented_text_in_a_list_is_not_code() -> None:
    text = "- Item\n\n    More text for the item.\n\nParagraph.\n\n    real code."
    assert sentences(text, MD) == ["Item", "More text for the item.", "Paragraph."]


def test_markdown_table_cells_with_pipes_in_code() -> None:
    text = "| Op | Meaning |\n|---|---|\n| `a|b` | Either one. |\n| \\| | A pipe. |"
    assert sentences(text, MD) == ["Op", "Meaning", "Either one.", "A pipe."]


def test_markdown_footnote_definition_text_is_translated() -> None:
    text = "Claim.[^n]\n\n[^n]: The source of the claim."
    doc = split_document(text, "en", MD)
    assert doc.sentences == ["Claim.", "The source of the claim."]
    assert doc.rebuild(["X.", "Y."]) == "X.[^n]\n\n[^n]: Y."


def test_markdown_text_ranges_are_sorted_and_disjoint() -> None:
    ranges = markdown_text_ranges(ARTICLE)
    assert ranges == sorted(ranges)
    assert all(r1[1] <= r2[0] for r1, r2 in itertools.pairwise(ranges))
    assert all("```" not in ARTICLE[a:b] and "](" not in ARTICLE[a:b] for a, b in ranges)
