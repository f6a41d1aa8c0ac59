"""Batch titles take their body's language: a short or uncertain title is never guessed alone,
and a title's guessed language never fails its record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from dragoman.server.batchjob.job import (
    Assembly,
    Document,
    Failure,
    JobOptions,
    Reply,
    requests_for,
    title_language,
)
from dragoman.server.text.langdetect import detect_language
from tests.test_batch import ENGLISH, article, read_jsonl, run_cli, translated

BODY = article(3)
# A long title that the detector is sure is Polish (ASCII, so the copy model knows every
# character); no model reads Polish.
POLISH_TITLE = "Rada miasta zdecydowala we wtorek o budowie nowego mostu przez rzeke w centrum"


def _records() -> list[dict[str, object]]:
    return [
        {"id": "short", "title": "Article 1", "text": BODY},
        {"id": "unsure", "title": "Nieuws", "text": BODY},
        {"id": "same", "title": ENGLISH[5], "text": BODY},
        {"id": "polish", "title": POLISH_TITLE, "text": BODY},
    ]


def test_the_examples_are_what_the_issue_says() -> None:
    guess = detect_language("Article 1")
    assert guess.language != "en" and guess.confidence < 0.5
    polish = detect_language(POLISH_TITLE)
    assert polish.language == "pl" and polish.confidence > 0.9
    assert detect_language(BODY).language == "en"


def test_title_language_follows_the_body() -> None:
    assert title_language("Article 1", BODY) == ("en", "")
    assert title_language("Nieuws", BODY) == ("en", "")
    assert title_language(ENGLISH[5], BODY) == ("en", "")
    # Long and sure of itself: its own language, with the body's as the fallback.
    assert title_language(POLISH_TITLE, BODY) == ("pl", "en")
    # Nothing to go on in the body: the server detects the title itself.
    assert title_language("Article 1", "12 345") == ("", "")


def test_requests_carry_the_title_language_unless_the_job_sets_one() -> None:
    doc = Document(0, "line 1", "a", BODY, "plain", "Article 1")
    text, title = requests_for(doc, JobOptions("translate", "de"))
    assert (text.source, title.source) == ("", "en")
    text, title = requests_for(doc, JobOptions("translate", "de", source_language="en"))
    assert (text.source, title.source) == ("", "")


def test_a_title_that_fails_in_its_own_language_is_retried_in_the_body_language() -> None:
    doc = Document(0, "line 1", "a", BODY, "plain", POLISH_TITLE)
    requests = requests_for(doc, JobOptions("translate", "de"))
    assembly = Assembly.start(doc, requests)
    assert assembly.add(Reply(0, "text", "body")) is None
    failed = Reply(0, "title", failure=Failure("NOT_FOUND", "no model for pl->de"))
    retry = assembly.fallback(failed)
    assert retry is not None and retry.source == "en" and retry.fallback_source == ""
    assert assembly.fallback(Reply(0, "title", failure=Failure("NOT_FOUND", "again"))) is None
    outcome = assembly.add(Reply(0, "title", "titel"))
    assert outcome is not None and outcome.ok and outcome.title == "titel"


def _check(out: Path, swapcase: Callable[[str], str]) -> None:
    records = {r["id"]: r for r in read_jsonl(out)}
    assert set(records) == {"short", "unsure", "same", "polish"}
    for record in records.values():
        assert record["text_de"] == translated(BODY, swapcase)
    assert records["short"]["title_de"] == translated("Article 1", swapcase)
    assert records["unsure"]["title_de"] == translated("Nieuws", swapcase)
    assert records["same"]["title_de"] == translated(ENGLISH[5], swapcase)
    # No Polish model: translated as the body's language rather than failing the record.
    assert records["polish"]["title_de"] == translated(POLISH_TITLE, swapcase)


def test_local_engine_never_fails_a_record_for_its_title(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copy_store: Path,
    swapcase: Callable[[str], str], capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DRAGOMAN_MODELS", str(copy_store))
    monkeypatch.setenv("DRAGOMAN_INTRA_THREADS", "1")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    out = tmp_path / "out.jsonl"
    assert run_cli("translate", "--to", "de", "--local", str(source), "-o", str(out)) == 0, \
        capsys.readouterr().err
    _check(out, swapcase)


def test_server_engine_never_fails_a_record_for_its_title(
    tmp_path: Path, server, swapcase: Callable[[str], str],  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    out = tmp_path / "out.jsonl"
    assert run_cli("translate", "--to", "de", "--server", server.address, str(source),
                   "-o", str(out)) == 0, capsys.readouterr().err
    _check(out, swapcase)
