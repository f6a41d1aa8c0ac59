"""`auto` falls back to the extractive ranker when the abstractive path rejects an article
(e.g. it cannot shorten it within the pass limit); an explicit `abstractive` request gets the
error instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragoman.server.errors import InvalidInput
from dragoman.server.futures import failed
from dragoman.server.rpc.app import build_service
from dragoman.server.service import SummariseInput
from dragoman.server.summarise import abstractive
from tests.conftest import install_copy_model, server_config

ARTICLE = " ".join(
    f"The council met for session number {i} and approved the budget for the new bridge."
    for i in range(20)
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, sp_model: Path):  # type: ignore[no-untyped-def]
    store = tmp_path_factory.mktemp("fallback") / "models"
    # A copy "summariser" with a 64-token window (a lead summariser once lengths are capped).
    install_copy_model(store, sp_model, "echo-sum", "en", "en", swap=False, task="summarise")
    svc = build_service(server_config(store))
    yield svc
    svc.registry.close()


@pytest.fixture
def failing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        return failed(InvalidInput("model echo-sum did not shorten the text in pass 8"))

    monkeypatch.setattr(abstractive, "summarise_abstractive", refuse)


def test_auto_falls_back_to_extractive(service, failing) -> None:  # type: ignore[no-untyped-def]
    out = service.summarise(SummariseInput(ARTICLE, language="en", max_sentences=2)).result(60)
    assert out.method == "extractive" and out.models == ("extractive",)
    assert out.sentences == 2


def test_explicit_abstractive_reports_the_failure(service, failing) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match="did not shorten"):
        service.summarise(SummariseInput(
            ARTICLE, language="en", method="abstractive", max_sentences=2)).result(60)


def test_short_article_is_summarised_abstractively(service) -> None:  # type: ignore[no-untyped-def]
    text = "The council approved the budget. The bridge opens in May. Rain is expected."
    out = service.summarise(SummariseInput(text, language="en", max_sentences=2)).result(60)
    assert out.method == "abstractive" and out.models == ("echo-sum",)
    assert out.summary and text.startswith(out.summary)  # the copy model leads
