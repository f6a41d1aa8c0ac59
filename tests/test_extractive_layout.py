"""Extractive summaries of scraped news pages: no boilerplate, lines of their own stay apart."""

from __future__ import annotations

import pytest

from dragoman.server.summarise.boilerplate import is_boilerplate
from dragoman.server.summarise.extractive import summarise_extractive
from tests.support.newspages import BOILERPLATE, HEADLINES, PAGES


def _in_boilerplate(sentence: str, language: str) -> bool:
    return any(sentence in line for line in BOILERPLATE[language])


@pytest.mark.parametrize("language", sorted(PAGES))
@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 6, 8, 12])
def test_no_boilerplate_line_is_ever_chosen_by_sentences(language: str, limit: int) -> None:
    summary = summarise_extractive(PAGES[language], language, max_sentences=limit)
    assert summary.sentences
    chosen = [s for s in summary.sentences if _in_boilerplate(s, language)]
    assert not chosen, f"boilerplate chosen: {chosen}"


@pytest.mark.parametrize("language", sorted(PAGES))
@pytest.mark.parametrize("words", [3, 5, 8, 12, 20, 40, 80, 200])
def test_no_boilerplate_line_is_ever_chosen_by_words(language: str, words: int) -> None:
    summary = summarise_extractive(PAGES[language], language, max_sentences=None, max_words=words)
    assert summary.sentences
    chosen = [s for s in summary.sentences if _in_boilerplate(s, language)]
    assert not chosen, f"boilerplate chosen: {chosen}"


def test_five_words_is_not_click_to_enlarge() -> None:
    summary = summarise_extractive(PAGES["en"], "en", max_sentences=None, max_words=5)
    assert "Click to enlarge" not in summary.text


@pytest.mark.parametrize("language", sorted(PAGES))
def test_every_listed_boilerplate_line_is_recognised(language: str) -> None:
    for line in BOILERPLATE[language]:
        assert is_boilerplate(line), line


@pytest.mark.parametrize("language", sorted(PAGES))
def test_content_lines_are_not_boilerplate(language: str) -> None:
    for line in PAGES[language].splitlines():
        if line.strip() and line not in BOILERPLATE[language]:
            assert not is_boilerplate(line), line


@pytest.mark.parametrize("language", sorted(PAGES))
def test_headline_is_never_glued_to_the_next_sentence(language: str) -> None:
    headline = HEADLINES[language]
    for limit in range(1, 9):
        summary = summarise_extractive(PAGES[language], language, max_sentences=limit)
        assert summary.sentences.count(headline) <= 1  # the page repeats it
        if headline in summary.sentences and summary.sentences[-1] != headline:
            assert headline + "\n" in summary.text
            assert headline + " " not in summary.text


def test_headline_keeps_its_line_break() -> None:
    text = "Putting a headline without a stop\nThe first sentence follows. A second one too."
    summary = summarise_extractive(text, "en", max_sentences=3)
    assert summary.text == (
        "Putting a headline without a stop\nThe first sentence follows. A second one too."
    )


def test_list_items_keep_their_line_breaks() -> None:
    text = (
        "The council agreed three measures for the harbour on Tuesday.\n"
        "- a new ferry line to the island\n"
        "- cheaper tickets for the ferry\n"
        "- longer opening hours at the harbour\n"
        "The measures start next month."
    )
    summary = summarise_extractive(text, "en", max_sentences=5)
    assert summary.text == text


def test_prose_sentences_of_separate_paragraphs_are_joined_as_prose() -> None:
    text = "The first paragraph ends here.\n\nThe second paragraph is a sentence too."
    summary = summarise_extractive(text, "en", max_sentences=2)
    assert summary.text == "The first paragraph ends here. The second paragraph is a sentence too."


def test_summary_keeps_article_order() -> None:
    page = PAGES["en"]
    summary = summarise_extractive(page, "en", max_sentences=5)
    positions = [page.find(s) for s in summary.sentences]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)


def test_a_text_of_boilerplate_only_is_still_summarised() -> None:
    summary = summarise_extractive("Click to enlarge\nShare this article", "en", max_sentences=1)
    assert len(summary.sentences) == 1
