"""Inline markup inside whole sentences: the model sees one sentence, the markup comes back
around the target words aligned to the marked source words (issue 15).

Three models: the swapcase copy model (alignment is the identity: tags come back around the
same words), a copy model that swaps adjacent words (a word-order-changing "translation"
whose alignment is known exactly: tags must move with their words), and raw CTranslate2 as
the reference for the attention the alignment is read from.
"""

from __future__ import annotations

import html
import random
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from dragoman.client import Client
from dragoman.server.manifest import Generation, Manifest, Tokenizer, write_manifest
from dragoman.server.seq2seq import Encoded, RuntimeOptions, Seq2SeqModel
from dragoman.server.store import ModelStore
from dragoman.server.text.align import Alignment, word_alignment
from dragoman.server.text.inline import place
from dragoman.server.text.segment import TextFormat, split_document
from tests.conftest import server_config
from tests.support.copymodel import build_copy_model
from tests.support.randommodel import build_random_model
from tests.support.spmodels import train_sentencepiece

WAIT = 30.0

# -- placement, with a given alignment ---------------------------------------------------------


def _sentence(text: str, fmt: TextFormat = TextFormat.HTML):  # type: ignore[no-untyped-def]
    doc = split_document(text, "en", fmt)
    assert len(doc.sentence_index) == 1, doc.pieces
    inline = doc.markup(0)
    assert inline is not None
    return doc, inline


def test_one_sentence_for_the_model_whatever_the_inline_markup() -> None:
    doc = split_document("<p>This is <b>very</b> important. It <a href='/x'>works</a>.</p>",
                         "en", TextFormat.HTML)
    assert doc.sentences == ["This is very important.", "It works."]
    md = split_document("The **council** voted on *Monday* and ~~Tuesday~~.", "en",
                        TextFormat.MARKDOWN)
    assert md.sentences == ["The council voted on Monday and Tuesday."]


def test_tags_follow_reordered_words() -> None:
    _, inline = _sentence("<p>The <b>red</b> car <i>stops</i>.</p>")
    # "The red car stops." -> "Das Auto rote hält." with red<->rote, car<->Auto.
    alignment = Alignment(target_to_source=(0, 2, 1, 3), source_to_target=(0, 2, 1, 3))
    assert place(inline, "Das Auto rote hält.", alignment) == "Das Auto <b>rote</b> <i>hält</i>."


def test_nesting_is_kept_and_output_well_formed_even_with_a_bad_alignment() -> None:
    _, inline = _sentence("<p>A <b>very <i>big</i> red</b> car here.</p>")
    rng = random.Random(5)
    for _ in range(200):
        nt = rng.randint(1, 8)
        alignment = Alignment(tuple(rng.randrange(6) for _ in range(nt)),
                              tuple(rng.randrange(nt) for _ in range(6)))
        out = place(inline, " ".join(f"w{i}" for i in range(nt)), alignment)
        assert re.sub(r"w\d+| ", "", out).replace(".", "") in (
            "<b><i></i></b>", "<b></b><i></i>", "<b><i></i></b>") or _well_formed(out), out
        assert out.count("<b>") == out.count("</b>") == 1
        assert out.count("<i>") == out.count("</i>") == 1
        assert _well_formed(out)


def _well_formed(html_text: str) -> bool:
    stack: list[str] = []
    for m in re.finditer(r"<(/?)(\w+)[^>]*>", html_text):
        if m.group(2) in ("br", "img"):
            continue
        if m.group(1):
            if not stack or stack.pop() != m.group(2):
                return False
        else:
            stack.append(m.group(2))
    return not stack


def test_atoms_replace_their_words_verbatim() -> None:
    _, inline = _sentence("<p>Run <code>make  &amp; test</code> now.</p>")
    assert inline.plain == "Run make & test now."
    alignment = Alignment((4, 0, 1, 2, 3), (1, 2, 3, 4, 0))  # "jetzt run make & test"
    assert place(inline, "jetzt Run make & test", alignment) == \
        "jetzt Run <code>make  &amp; test</code>"


def test_markdown_link_image_and_code_come_back() -> None:
    _, inline = _sentence("See [the report](https://x.org/a_(b) \"T\") and `f(x)` here.",
                          TextFormat.MARKDOWN)
    out = place(inline, "SEE THE REPORT AND f(x) HERE.", None)
    assert out == 'SEE [THE REPORT](https://x.org/a_(b) "T") AND `f(x)` HERE.'


# -- the copy model through gRPC: tags come back around the same words --------------------

_HTML_MARKUP = re.compile(r"<code>.*?</code>|<kbd>.*?</kbd>|<span translate=\"no\">.*?</span>"
                          r"|<b class=\"notranslate\">.*?</b>|<[^>]+>")
_MD_MARKUP = re.compile(r"`[^`]*`|\]\([^)]*\)|\*\*|\*|~~|!\[|\[")


def _layout(text: str, markup: re.Pattern[str]) -> tuple[list[tuple[str, int]], list[str]]:
    """Each piece of markup with the number of words before it, and the words."""
    marks = []
    words: list[str] = []
    position = 0
    for m in markup.finditer(text):
        words += text[position:m.start()].split()
        marks.append((m.group(), len(words)))
        position = m.end()
    words += text[position:].split()
    return marks, words


def _check_same_words(source: str, out: str, fmt: str, oracle: Callable[[str], str]) -> None:
    markup = _HTML_MARKUP if fmt == "html" else _MD_MARKUP
    source_marks, source_words = _layout(source, markup)
    out_marks, out_words = _layout(out, markup)
    # The same markup, byte for byte, before the same number of words...
    assert out_marks == source_marks
    # ...and the text is the model's translation of the sentence (atoms verbatim, so
    # compared without case; the copy model swaps case).
    doc = split_document(source, "en", TextFormat(fmt))
    translated = " ".join(oracle(s) for s in doc.sentences)

    def text_of(markup_text: str) -> str:
        inner = re.sub(r"<[^>]+>|[`*~\[\]!]|\]\([^)]*\)", "", markup.sub(
            lambda m: m.group() if m.group().startswith(("`", "<code", "<kbd", "<span t", "<b c"))
            else "", markup_text))
        return re.sub(r"\s+", "", html.unescape(inner)).lower()

    assert text_of(out) == re.sub(r"\s+", "", translated).lower()
    assert len(out_words) == len(source_words)


@pytest.mark.parametrize("source", [
    "<p>This is <b>very</b> important.</p>",
    '<p>Hello <a href="https://e.org/x?a=1&amp;b=2">dear <em>friends</em></a>, come.</p>',
    "<p>Line one<br>line two.</p>",
    '<p>Ask <span class="h-card"><a href="https://m.s/@bob" class="u-url mention">@<span>bob'
    '</span></a></span> about <code>x = 1</code> and <kbd>Ctrl</kbd> keys.</p>',
    '<p>Use <span translate="no">Dragoman Pro</span> and <b class="notranslate">Keep</b> it.</p>',
])
def test_copy_model_html_tags_around_the_same_words(  # type: ignore[no-untyped-def]
    server, swapcase: Callable[[str], str], source: str,
) -> None:
    with Client(server.address, timeout=WAIT) as client:
        out = client.translate(source, "de", source="en", format="html")
    assert out.text != source
    _check_same_words(source, out.text, "html", swapcase)


def test_copy_model_exact_output(server) -> None:  # type: ignore[no-untyped-def]
    with Client(server.address, timeout=WAIT) as client:
        out = client.translate("<p>This is <b>very</b> important.</p>", "de", source="en",
                               format="html")
    assert out.text == "<p>tHIS IS <b>VERY</b> IMPORTANT.</p>"


@pytest.mark.parametrize("source", [
    "The **council** voted on *Monday*.",
    "Read [the report](https://e.org/r.pdf) and `run()` it.",
    "An ![old photo](a.png) of the ~~old~~ town.",
])
def test_copy_model_markdown_around_the_same_words(  # type: ignore[no-untyped-def]
    server, swapcase: Callable[[str], str], source: str,
) -> None:
    with Client(server.address, timeout=WAIT) as client:
        out = client.translate(source, "de", source="en", format="markdown")
    assert out.text != source
    _check_same_words(source, out.text, "markdown", swapcase)


# -- a word-swapping model: tags move with their words -------------------------------------

WORDS = ("the council voted on monday and mayor said new tram line opens city centre today "
         "budget rose schools roads were closed after storm people waited hours station").split()


@pytest.fixture(scope="module")
def swap_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with `swap-en-de`: every pair of adjacent words swapped (one piece a word)."""
    work = tmp_path_factory.mktemp("swap")
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(3000)]
    sp_model = train_sentencepiece(corpus, work / "sp", vocab_size=len(WORDS) + 40)
    folder = build_copy_model(work / "m", sp_model, quantization="int8", max_positions=1023,
                              order=lambda t: t ^ 1)
    shutil.copy2(sp_model, folder / "sentencepiece.model")
    write_manifest(folder, Manifest(
        name="swap-en-de", task="translate", source_languages=("en",), target_languages=("de",),
        family="test-copy",
        tokenizer=Tokenizer("sentencepiece", "sentencepiece.model", "sentencepiece.model"),
        max_input_tokens=200, generation=Generation(beam_size=4),
    ))
    store = work / "store"
    ModelStore(store).install(folder)
    return store


@pytest.fixture(scope="module")
def swap_server(swap_store: Path) -> Iterator[object]:
    from dragoman.server.rpc.app import ServerThread, build_service

    config = server_config(swap_store)
    with ServerThread(build_service(config), config) as running:
        yield running


def _swap(words: list[str]) -> list[str]:
    return [words[i ^ 1] for i in range(len(words))]


def test_swap_model_swaps_words(swap_server) -> None:  # type: ignore[no-untyped-def]
    with Client(swap_server.address, timeout=WAIT) as client:
        out = client.translate("the council voted on monday and", "de", source="en")
    assert out.text == "council the on voted and monday"


def test_tags_move_with_their_words(swap_server) -> None:  # type: ignore[no-untyped-def]
    source = "<p>the <b>council</b> voted on <a href='/m'>monday</a> and</p>"
    with Client(swap_server.address, timeout=WAIT) as client:
        html_out = client.translate(source, "de", source="en", format="html")
        md_out = client.translate("the **council** voted on `monday` and", "de", source="en",
                                  format="markdown")
    assert html_out.text == "<p><b>council</b> the on voted and <a href='/m'>monday</a></p>"
    assert md_out.text == "**council** the on voted and `monday`"


def _random_case(rng: random.Random) -> tuple[str, list[tuple[int, int]]]:
    """A sentence of an even number of words with 1-3 non-overlapping <b>/<i>/<u> spans."""
    n = 2 * rng.randint(2, 7)
    words = [rng.choice(WORDS) for _ in range(n)]
    spans: list[tuple[int, int]] = []
    position = 0
    while position < n and len(spans) < 3:
        start = rng.randint(position, n - 1)
        # Single words, or a whole swapped pair (whose target words are contiguous too).
        length = 2 if start % 2 == 0 and rng.random() < 0.3 and start + 2 <= n else 1
        spans.append((start, start + length))
        position = start + length + 1
    out = []
    for i, word in enumerate(words):
        for k, (a, b) in enumerate(spans):
            if i == a:
                out.append(f"<{'biu'[k]}>")
        out.append(word)
        for k, (a, b) in enumerate(spans):
            if i == b - 1:
                out.append(f"</{'biu'[k]}>")
        out.append(" ")
    return "".join(out).strip(), spans


def _placement(swap_server, cases: int) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """(tags, tags on exactly the right target words, well-formed outputs)."""
    rng = random.Random(7)
    tags = right = well_formed = 0
    with Client(swap_server.address, timeout=WAIT) as client:
        for _ in range(cases):
            source, spans = _random_case(rng)
            out = client.translate(f"<p>{source}</p>", "de", source="en", format="html").text
            well_formed += _well_formed(out)
            plain_words = re.sub(r"<[^>]+>", "", source).split()
            target_words = _swap(plain_words)
            for k, (a, b) in enumerate(spans):
                tag = "biu"[k]
                expected = sorted(t for t in range(len(target_words)) if a <= (t ^ 1) < b)
                m = re.search(rf"<{tag}>(.*?)</{tag}>", out)
                tags += 1
                if m is None:
                    continue
                before = len(re.sub(r"<[^>]+>", "", out[:m.start()]).split())
                inside = len(re.sub(r"<[^>]+>", "", m.group(1)).split())
                right += list(range(before, before + inside)) == expected
    return tags, right, well_formed


def test_tag_placement_on_the_word_swapping_model(swap_server, capsys) -> None:  # type: ignore[no-untyped-def]
    cases = 60
    tags, right, well_formed = _placement(swap_server, cases)
    with capsys.disabled():
        print(f"\ntag placement on the word-swapping model: {right}/{tags} tags on the right "
              f"words ({100 * right / tags:.1f}%), {well_formed}/{cases} outputs well-formed")
    assert well_formed == cases
    assert right == tags


# -- the alignment source, checked against raw CTranslate2 ---------------------------------


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory, sp_model: Path) -> Seq2SeqModel:
    folder = build_random_model(tmp_path_factory.mktemp("rnd") / "m", sp_model, layers=2,
                                d_model=64, heads=2, ffn=128, quantization="float32",
                                max_positions=256)
    shutil.copy2(sp_model, folder / "sentencepiece.model")
    manifest = Manifest(
        "rnd", "translate", ("en",), ("de",),
        tokenizer=Tokenizer("sentencepiece", "sentencepiece.model", "sentencepiece.model"),
        max_input_tokens=200, max_output_tokens=256,
    )
    write_manifest(folder, manifest)
    return Seq2SeqModel(folder, manifest, RuntimeOptions(compute_type="float32", intra_threads=1))


def test_attention_matches_raw_ctranslate2_unpadded(random_model: Seq2SeqModel) -> None:
    """The engine's attention for a short sentence decoded with beam 4 beside a long one is
    the attention raw CTranslate2 gives for the same output, decoded alone and greedy."""
    import ctranslate2

    short = random_model.encode("the council approved the budget", "en", "de")
    long = random_model.encode("the minister said that prices rose again in the spring and the "
                               "council approved a new budget for the schools", "en", "de")
    options = random_model.default_options(beam_size=4)
    outputs = random_model.generate(
        [long, Encoded(short.source, align=True), Encoded(long.source, align=True)], options)
    translator = ctranslate2.Translator(str(random_model.path), compute_type="float32",
                                        intra_threads=1)
    for encoded, out in ((short, outputs[1]), (long, outputs[2])):
        raw = translator.translate_batch([list(encoded.source)], target_prefix=[list(out)],
                                         beam_size=1, return_attention=True,
                                         max_decoding_length=len(out) + 1)[0]
        expected = np.array(raw.attention[0][:len(out)])[:, :len(encoded.source)]
        got = np.array(out.attention)
        assert got.shape == expected.shape
        assert np.allclose(got, expected, atol=1e-5)
        assert np.allclose(got.sum(axis=1), 1.0, atol=1e-3)  # every row a distribution


def test_word_alignment_sums_pieces_into_words() -> None:
    source = ["\u2581the", "\u2581coun", "cil", "\u2581met"]
    target = ["\u2581der", "\u2581Rat", "\u2581tagte"]
    attention = [[0.9, 0.05, 0.05, 0.0], [0.0, 0.4, 0.5, 0.1], [0.1, 0.0, 0.1, 0.8]]
    assert word_alignment(source, target, attention) == Alignment((0, 1, 2), (0, 1, 2))
