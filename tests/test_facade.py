"""The model layer's two seams (issue 14, "the facade is not finished").

``LoadedModel.run`` is the one way sentences go through a model (encode, one batcher
submission, decode), used by translation and by abstractive summaries; the ``Dragoman``
facade is all the adapters and the batch job touch (models, refresh, preload, drain, close),
never its registry.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dragoman.server.build import build_service
from dragoman.server.errors import ModelNotFound, Unavailable
from dragoman.server.registry import Decoded, LoadedModel
from dragoman.server.service import Dragoman, TranslateInput
from dragoman.server.text.segment import split_to_fit
from tests.conftest import server_config
from tests.support.gate import hold_decoding

WAIT = 10.0
SHORT = "The museum will reopen its doors after two years of renovation."
# Far over the copy model's 64-token window: it must go through in pieces.
LONG = " ".join(["Heavy rain is expected this weekend, and the river may flood the old town"] * 8) + "."
SERVER = Path(__file__).resolve().parent.parent / "server" / "dragoman" / "server"


@pytest.fixture
def service(copy_store: Path) -> Iterator[Dragoman]:
    svc = build_service(server_config(copy_store, inter_threads=1, batch_wait_ms=0.0,
                                      cache_entries=0))
    yield svc
    svc.close(timeout=5)


@pytest.fixture
def loaded(service: Dragoman) -> LoadedModel:
    return service.registry.acquire("copy-en-de")


def _count_submissions(loaded: LoadedModel) -> list[int]:
    """Record the size of every batcher submission of ``loaded``."""
    sizes: list[int] = []
    real = loaded.batcher.submit

    def submit(items: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(items))
        return real(items, *args, **kwargs)

    loaded.batcher.submit = submit
    return sizes


def test_run_gives_one_output_per_text_in_order_in_one_submission(
    loaded: LoadedModel, swapcase: Callable[[str], str],
) -> None:
    sizes = _count_submissions(loaded)
    pieces = [p.strip() for p in split_to_fit(LONG, loaded.model.fits) if p.strip()]
    assert len(pieces) > 1  # the long text really is cut

    options = loaded.model.default_options()
    out = loaded.run([SHORT, "  ", LONG], "en", "de", options).result(WAIT)

    assert out == [Decoded(swapcase(SHORT)), Decoded(""),
                   Decoded(" ".join(swapcase(p) for p in pieces))]
    assert sizes == [1 + len(pieces)]  # one submission; the blank text is not decoded


def test_run_aligns_only_the_texts_that_ask(loaded: LoadedModel) -> None:
    options = loaded.model.default_options()
    out = loaded.run([SHORT, SHORT + " Again."], "en", "de", options,
                     align=[True, False]).result(WAIT)
    assert out[0].alignment is not None and out[1].alignment is None


def test_cancelling_run_drops_its_queued_sentences(loaded: LoadedModel) -> None:
    gate = hold_decoding(loaded, WAIT)
    options = loaded.model.default_options()
    try:
        first = loaded.run([SHORT], "en", "de", options)
        assert gate.started.wait(WAIT)
        doomed = loaded.run(["Heavy rain is expected.", "The bridge opens in May."], "en", "de",
                            options)
        _wait_until(lambda: loaded.batcher.queued() == 2)
        assert doomed.cancel()
        _wait_until(lambda: loaded.batcher.queued() == 0)
        assert loaded.batcher.stats.cancelled == 2
    finally:
        gate.release.set()
    assert first.result(WAIT)
    assert not any("rain" in text or "bridge" in text for text in gate.decoded)


def test_close_refuses_new_work_and_stops_the_models(
    service: Dragoman, swapcase: Callable[[str], str],
) -> None:
    assert service.translate(TranslateInput(SHORT, "de", "en")).result(WAIT).text == swapcase(SHORT)
    assert service.close(timeout=5) is True
    with pytest.raises(Unavailable, match="shutting down"):
        service.translate(TranslateInput(SHORT, "de", "en"))


def test_drain_refuses_new_work_but_finishes_what_is_in_flight(service: Dragoman) -> None:
    loaded = service.registry.acquire("copy-en-de")
    gate = hold_decoding(loaded, WAIT)
    try:
        running = service.translate(TranslateInput(SHORT, "de", "en"))
        assert gate.started.wait(WAIT)
        service.drain()
        with pytest.raises(Unavailable, match="shutting down"):
            service.translate(TranslateInput(SHORT, "de", "en"))
    finally:
        gate.release.set()
    assert running.result(WAIT).text


def test_model_states_list_loaded_installed_and_broken(tmp_path: Path, copy_store: Path) -> None:
    store = tmp_path / "models"
    for name in ("copy-en-de", "copy-de-en"):
        shutil.copytree(copy_store / name, store / name)
    (store / "bad-manifest").mkdir()
    (store / "bad-manifest" / "dragoman.json").write_text("{not json")
    service = build_service(server_config(store))
    try:
        assert service.models_dir == store
        service.preload(["copy-en-de"])
        states = {s.name: s for s in service.model_states()}
        assert set(states) == {"copy-en-de", "copy-de-en", "bad-manifest"}
        assert (states["copy-en-de"].loaded, states["copy-en-de"].task) == (True, "translate")
        assert (states["copy-de-en"].loaded, states["copy-de-en"].problem) == (False, "")
        bad = states["bad-manifest"]
        assert not bad.installed and not bad.loaded and "dragoman.json" in bad.problem
        assert [name for name, _ in service.batchers()] == ["copy-en-de"]

        shutil.rmtree(store / "copy-de-en")
        service.refresh()
        assert "copy-de-en" not in {s.name for s in service.model_states()}
        with pytest.raises(ModelNotFound, match="de->en"):
            service.route("de", "en")
        assert service.route("en", "de").models == ("copy-en-de",)
    finally:
        assert service.close(timeout=5)


@pytest.mark.parametrize("adapter", ["rpc", "http", "batchjob", "observability"])
def test_adapters_call_the_facade_not_its_registry(adapter: str) -> None:
    paths = sorted((SERVER / adapter).glob("*.py"))
    assert paths
    for path in paths:
        found = re.findall(r"service\.registry\b", path.read_text(encoding="utf-8"))
        assert not found, f"{path.name} reaches into service.registry"


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)
