"""Do-not-translate spans and glossaries (issue 15).

URLs, e-mail addresses, @mentions, #hashtags, inline code and the caller's terms come back
byte for byte; glossary terms replace the target words aligned to the source term. The
swapcase copy model shows a verbatim span at once (everything else comes back case-swapped).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dragoman.client import Client
from dragoman.client.errors import InvalidArgument, NotFound
from dragoman.server.errors import InvalidInput
from dragoman.server.glossary import GlossaryStore, read_terms
from dragoman.server.text.align import Alignment
from dragoman.server.text.inline import Terms, place
from dragoman.server.text.segment import TextFormat, split_document
from tests.conftest import install_copy_model, server_config
from tests.test_inline_markup import WORDS, _swap, swap_server, swap_store  # noqa: F401

WAIT = 30.0
PROTECTED = ["https://example.org/Path_(1)?q=A&b=2", "Editor@Example.org", "@Bob@mastodon.social",
             "@Anna", "#ClimateNews"]


def test_protected_spans_are_found_in_every_format() -> None:
    text = ("Read https://example.org/Path_(1)?q=A&b=2 now. Write to Editor@Example.org, "
            "ask @Bob@mastodon.social or @Anna about #ClimateNews today.")
    for fmt in (TextFormat.PLAIN, TextFormat.WRAPPED, TextFormat.MARKDOWN):
        doc = split_document(text, "en", fmt)
        atoms = [t.open for n in range(len(doc.sentence_index)) if doc.markup(n)
                 for t in doc.markup(n).tags]  # type: ignore[union-attr]
        assert atoms == PROTECTED, fmt
    html_doc = split_document(f"<p>{text.replace('&', '&amp;')}</p>", "en", TextFormat.HTML)
    html_atoms = [t.open for n in range(len(html_doc.sentence_index))
                  for t in html_doc.markup(n).tags]  # type: ignore[union-attr]
    assert html_atoms == [p.replace("&", "&amp;") for p in PROTECTED]


def test_not_protected() -> None:
    doc = split_document("C# and F# cost 5 #1 items; a@b is no address. Call 555-1234.", "en")
    assert all(doc.markup(n) is None for n in range(len(doc.sentence_index)))


def test_protected_spans_come_back_once_whatever_the_alignment() -> None:
    doc = split_document("See https://e.org/x and mail a@b.org now, #tag.", "en",
                         terms=Terms(keep=("Dragoman",)))
    inline = doc.markup(0)
    assert inline is not None
    rng = random.Random(3)
    for _ in range(300):
        nt = rng.randint(1, 9)
        target = " ".join(rng.choice(["x", "y", "https://e.org/x", "a@b.org", "#tag"])
                          for _ in range(nt))
        ns = len(inline.plain.split())
        alignment = Alignment(tuple(rng.randrange(ns) for _ in range(nt)),
                              tuple(rng.randrange(nt) for _ in range(ns)))
        out = place(inline, target, alignment)
        for span in ("https://e.org/x", "a@b.org", "#tag"):
            assert out.count(span) >= 1, (target, out)
        # Whole words only: no span cut or run into another.
        assert set(out.split()) <= {"x", "y", "https://e.org/x", "a@b.org", "#tag"}, out
        # A span the model copied is used where it is: a copy is never doubled.
        for span in ("https://e.org/x", "a@b.org"):
            if span in target:
                assert out.count(span) <= target.count(span), (target, out)


@pytest.mark.parametrize("fmt", ["plain", "markdown", "html"])
def test_copy_model_returns_protected_spans_byte_identical(  # type: ignore[no-untyped-def]
    server, swapcase: Callable[[str], str], fmt: str,
) -> None:
    text = ("Read https://example.org/Path_(1)?q=A&b=2 now. Write to Editor@Example.org, "
            "ask @Bob@mastodon.social or @Anna about #ClimateNews today.")
    source = f"<p>{text.replace('&', '&amp;')}</p>" if fmt == "html" else text
    with Client(server.address, timeout=WAIT) as client:
        out = client.translate(source, "de", source="en", format=fmt).text
    for span in PROTECTED:
        expected = span.replace("&", "&amp;") if fmt == "html" else span
        assert out.count(expected) == 1, (span, out)
    assert "rEAD" in out and "TODAY." in out  # the rest was translated


def test_keep_terms_and_request_glossary(server) -> None:  # type: ignore[no-untyped-def]
    with Client(server.address, timeout=WAIT) as client:
        out = client.translate(
            "The Dragoman Pro team met the council today.", "de", source="en",
            keep_terms=["Dragoman Pro"], glossary={"council": "Stadtrat"},
        ).text
        html_out = client.translate(
            "<p>The <b>council</b> met the Dragoman Pro team.</p>", "de", source="en",
            format="html", keep_terms=["Dragoman Pro"], glossary={"council": "Stadtrat"},
        ).text
        with pytest.raises(InvalidArgument, match="empty term"):
            client.translate("Hi.", "de", source="en", glossary={"council": " "})
        with pytest.raises(NotFound, match="no glossary named 'nope'"):
            client.translate("Hi.", "de", source="en", glossary_name="nope")
    assert out == "tHE Dragoman Pro TEAM MET THE Stadtrat TODAY."
    assert html_out == "<p>tHE <b>Stadtrat</b> MET THE Dragoman Pro TEAM.</p>"


@pytest.fixture(scope="module")
def glossary_server(tmp_path_factory: pytest.TempPathFactory, sp_model: Path) -> Iterator[object]:
    from dragoman.server.rpc.app import ServerThread, build_service

    store = tmp_path_factory.mktemp("glossary") / "models"
    install_copy_model(store, sp_model, "copy-en-de", "en", "de", swap=True)
    config = server_config(store)
    with ServerThread(build_service(config), config) as running:
        running.store = store  # type: ignore[attr-defined]
        yield running


def _cli(*args: str, env_models: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "DRAGOMAN_MODELS": str(env_models)}
    return subprocess.run([sys.executable, "-m", "dragoman.client.cli", *args], text=True,
                          capture_output=True, env=env, timeout=120)


def test_named_glossaries_from_the_cli(glossary_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = glossary_server.store
    terms = tmp_path / "news.tsv"
    terms.write_text("# newsroom terms\ncouncil\tStadtrat\nmayor\tBürgermeisterin\n")
    added = _cli("glossaries", "add", "news", str(terms), "--from", "en", "--to", "de",
                 "--term", "tram=Straßenbahn", env_models=store)
    assert added.returncode == 0, added.stderr
    listed = _cli("glossaries", "list", env_models=store)
    assert re.search(r"news\s+en->de\s+3", listed.stdout), listed.stdout
    again = _cli("glossaries", "add", "news", "--from", "en", "--to", "de", "--term", "a=b",
                 env_models=store)
    assert again.returncode == 2 and "exists" in again.stderr
    with Client(glossary_server.address, timeout=WAIT) as client:
        text = client.translate("The mayor and the council rode the tram.", "de", source="en",
                                glossary_name="news", glossary={"mayor": "OB"}).text
        words = text.split()
        # The request's term wins over the named glossary's; the named ones apply.
        assert (words[0], words[1], words[4], words[-1]) == ("tHE", "OB", "Stadtrat", "Straßenbahn.")
        GlossaryStore(store).add("news-fr", "en", "fr", [("council", "conseil")])
        with pytest.raises(InvalidArgument,
                           match="glossary news-fr is for en->fr, this request is en->de"):
            client.translate("The council.", "de", source="en", glossary_name="news-fr")
    proc = subprocess.run(
        [sys.executable, "-m", "dragoman.client.cli", "--server", glossary_server.address,
         "translate", "--from", "en", "--to", "de", "--glossary", "news", "--keep", "Riverside"],
        input="The council of Riverside met.", text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "tHE Stadtrat OF Riverside MET."
    removed = _cli("glossaries", "remove", "news", env_models=store)
    assert removed.returncode == 0, removed.stderr
    assert _cli("glossaries", "remove", "news", env_models=store).returncode == 2


def test_glossary_files_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("council\tStadtrat\ncouncil\tRat\n")
    with pytest.raises(InvalidInput, match="lists 'council' twice"):
        read_terms(bad)
    as_json = tmp_path / "g.json"
    as_json.write_text(json.dumps({"council": "Stadtrat"}))
    assert read_terms(as_json) == (("council", "Stadtrat"),)
    store = GlossaryStore(tmp_path / "models")
    with pytest.raises(InvalidInput, match="must be 1-64"):
        store.add("../x", "en", "de", [("a", "b")])
    with pytest.raises(InvalidInput, match="not an ISO 639-1 code"):
        store.add("x", "english", "de", [("a", "b")])


# -- the word-swapping model: glossary terms replace the right target words -----------------


def test_glossary_terms_replace_the_aligned_words(swap_server) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(11)
    cases = right = 0
    with Client(swap_server.address, timeout=WAIT) as client:
        for _ in range(40):
            words = [rng.choice(WORDS) for _ in range(2 * rng.randint(2, 6))]
            term = rng.choice(words)
            out = client.translate(" ".join(words), "de", source="en",
                                   glossary={term: "GLOSSAR"}).text.split()
            expected = ["GLOSSAR" if w == term else w for w in _swap(words)]
            cases += 1
            right += out == expected
    print(f"\nglossary placement on the word-swapping model: {right}/{cases} sentences with every "
          f"term on the right word ({100 * right / cases:.0f}%)")
    assert right == cases


def test_cross_lingual_summary_keeps_protected_spans(server) -> None:  # type: ignore[no-untyped-def]
    text = "Read the report at https://example.org/Report_2024 today. The council met on Monday."
    with Client(server.address, timeout=WAIT) as client:
        summary = client.summarise(text, target="de", language="en", method="extractive",
                                   max_sentences=2).summary
    assert "https://example.org/Report_2024" in summary and "rEAD" in summary
