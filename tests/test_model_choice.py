"""Per-request model choice: the `model` field of Translate and Summarise, over a real channel.

Two tiny copy models serve en->de: `copy-en-de-swap` swaps the case of every piece it can,
`copy-en-de-same` copies its input, so the text says which model ran (and the response's
`model` field must agree). The ranking alone would always pick `copy-en-de-same` (same size,
first by name). `copy-fr-en` feeds the pivot route fr->en->de (`copy-it-en` serves no leg of
it); two English summarisers (the same two behaviours) cover Summarise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_cli_remote import dragoman

from dragoman.client import Client
from dragoman.client.errors import InvalidArgument, NotFound
from dragoman.server.errors import ModelNotFound
from dragoman.server.rpc.app import ServerThread, build_service
from tests.conftest import install_copy_model, server_config

TEXT = "The city council approved the new budget on Tuesday evening."
SWAP, SAME = "copy-en-de-swap", "copy-en-de-same"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, sp_model: Path) -> Path:
    store = tmp_path_factory.mktemp("choice") / "models"
    install_copy_model(store, sp_model, SWAP, "en", "de", swap=True)
    install_copy_model(store, sp_model, SAME, "en", "de", swap=False)
    install_copy_model(store, sp_model, "copy-fr-en", "fr", "en", swap=False)
    install_copy_model(store, sp_model, "copy-it-en", "it", "en", swap=False)
    install_copy_model(store, sp_model, "sum-swap", "en", "en", swap=True, task="summarise")
    install_copy_model(store, sp_model, "sum-same", "en", "en", swap=False, task="summarise")
    return store


@pytest.fixture(scope="module")
def address(models: Path) -> Iterator[str]:
    config = server_config(models)
    with ServerThread(build_service(config), config) as running:
        yield running.address


@pytest.fixture()
def client(address: str) -> Iterator[Client]:
    with Client(address, timeout=60) as c:
        yield c


def test_the_named_model_translates_and_is_reported(
    client: Client, swapcase: Callable[[str], str]
) -> None:
    default = client.translate(TEXT, "de", source="en")
    assert default.model == SAME and default.text == TEXT
    swapped = client.translate(TEXT, "de", source="en", model=SWAP)
    assert swapped.model == SWAP and swapped.models == (SWAP,)
    assert swapped.text == swapcase(TEXT) != TEXT
    # The sentence cache is per model: asking the first model again gives its own output.
    again = client.translate(TEXT, "de", source="en", model=SAME)
    assert again.model == SAME and again.text == TEXT and again.cached_sentences == 1


def test_unknown_model_is_not_found_with_the_candidates(client: Client) -> None:
    with pytest.raises(NotFound, match=rf"no model named 'opus-typo'.*en->de: {SAME}, {SWAP}"):
        client.translate(TEXT, "de", source="en", model="opus-typo")


def test_a_model_for_another_pair_is_invalid_argument(client: Client) -> None:
    with pytest.raises(
        InvalidArgument,
        match=rf"model 'copy-fr-en' does not translate en->de; models for en->de: {SAME}, {SWAP}",
    ):
        client.translate(TEXT, "de", source="en", model="copy-fr-en")
    with pytest.raises(InvalidArgument, match="model 'sum-swap' is a summariser, not a translation"):
        client.translate(TEXT, "de", source="en", model="sum-swap")


def test_pivot_route_uses_the_named_model_for_its_leg(
    client: Client, swapcase: Callable[[str], str]
) -> None:
    default = client.translate(TEXT, "de", source="fr")
    assert default.models == ("copy-fr-en", SAME) and default.pivot_language == "en"
    chosen = client.translate(TEXT, "de", source="fr", model=SWAP)
    assert chosen.models == ("copy-fr-en", SWAP) and chosen.pivot_language == "en"
    assert chosen.text == swapcase(TEXT)
    first_leg = client.translate(TEXT, "de", source="fr", model="copy-fr-en")
    assert first_leg.models == ("copy-fr-en", SAME)
    with pytest.raises(
        InvalidArgument,
        match="model 'copy-it-en' does not translate fr->de \\(nor a leg of it through en\\); "
        f"no model translates fr->de directly; models for its legs through en: copy-fr-en, {SAME}, "
        f"{SWAP}",
    ):
        client.translate(TEXT, "de", source="fr", model="copy-it-en")


def test_translate_many_takes_a_default_model_and_per_document_ones(
    client: Client, swapcase: Callable[[str], str]
) -> None:
    docs = [{"id": "a", "text": TEXT}, {"id": "b", "text": TEXT, "model": SAME}]
    results = {r.id: r for r in client.translate_many(docs, "de", source="en", model=SWAP)}
    assert results["a"].model == SWAP and results["a"].text == swapcase(TEXT)
    assert results["b"].model == SAME and results["b"].text == TEXT
    bad = list(client.translate_many([TEXT], "de", source="en", model="nope", on_error="yield"))
    assert bad[0].error is not None and bad[0].error.code == "NOT_FOUND"


def test_summarise_with_a_named_summariser(client: Client, swapcase: Callable[[str], str]) -> None:
    default = client.summarise(TEXT, language="en")
    assert default.model == "sum-same" and default.method == "abstractive"
    chosen = client.summarise(TEXT, language="en", model="sum-swap")
    assert chosen.model == "sum-swap" and chosen.method == "abstractive"
    # The copy summarisers stop after a summary-sized prefix of their input.
    assert len(chosen.summary) > 10 and swapcase(TEXT).startswith(chosen.summary)
    assert len(default.summary) > 10 and TEXT.startswith(default.summary)
    # Cross-lingual: the summariser is the chosen one, the translation leg the server's.
    crossed = client.summarise(TEXT, language="en", target="de", model="sum-swap")
    assert crossed.models == ("sum-swap", SAME)


def test_summarise_refuses_models_that_cannot_summarise(client: Client) -> None:
    with pytest.raises(NotFound, match="no model named 'bart-typo'.*summarisers for 'en': sum-same, sum-swap"):
        client.summarise(TEXT, language="en", model="bart-typo")
    with pytest.raises(InvalidArgument, match=f"model '{SWAP}' is a translation model, not a summariser"):
        client.summarise(TEXT, language="en", model=SWAP)
    with pytest.raises(InvalidArgument, match="the extractive method uses no model"):
        client.summarise(TEXT, language="en", method="extractive", model="sum-swap")
    with pytest.raises(InvalidArgument, match="summariser 'sum-swap' does not read 'fr'"):
        client.summarise(TEXT, language="fr", model="sum-swap")


def test_cli_model_flag(address: str, swapcase: Callable[[str], str]) -> None:
    done = dragoman("translate", "--from", "en", "--to", "de", "--model", SWAP, "--json",
                    stdin=TEXT, DRAGOMAN_SERVER=address)
    assert done.returncode == 0, done.stderr
    assert f'"model": "{SWAP}"' in done.stdout and swapcase(TEXT) in done.stdout
    done = dragoman("summarise", "--language", "en", "--model", "sum-swap", stdin=TEXT,
                    DRAGOMAN_SERVER=address)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) > 10 and swapcase(TEXT).startswith(done.stdout.strip())
    done = dragoman("translate", "--from", "en", "--to", "de", "--model", "nope", stdin=TEXT,
                    DRAGOMAN_SERVER=address)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no model named 'nope'" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("engine", ["server", "local"])
def test_batch_model_flag(
    engine: str, address: str, models: Path, tmp_path: Path, swapcase: Callable[[str], str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "1", "text": TEXT}) + "\n", encoding="utf-8")
    where = ["--local", "--models", str(models)] if engine == "local" else []
    done = dragoman("batch", "translate", "--from", "en", "--to", "de", "--model", SWAP, *where,
                    str(source), "-o", str(tmp_path / "out.jsonl"), DRAGOMAN_SERVER=address)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert record["text_de"] == swapcase(TEXT)
    done = dragoman("batch", "translate", "--from", "en", "--to", "de", "--model", "nope", *where,
                    str(source), "-o", str(tmp_path / "bad.jsonl"), DRAGOMAN_SERVER=address)
    errors = tmp_path / "bad.jsonl.errors.jsonl"
    reported = done.stderr + (errors.read_text(encoding="utf-8") if errors.exists() else "")
    assert done.returncode != 0 and "no model named 'nope'" in reported


def test_a_malformed_model_name_is_invalid_argument(client: Client) -> None:
    with pytest.raises(InvalidArgument, match="is not a model name"):
        client.translate(TEXT, "de", source="en", model="../" + "x" * 5000)
    with pytest.raises(InvalidArgument, match="is not a model name"):
        client.summarise(TEXT, language="en", model="a b")


def test_unknown_names_reread_the_store_at_most_once_a_second(
    models: Path, sp_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from dragoman.server import registry as registry_module
    from dragoman.server.registry import ModelRegistry
    from dragoman.server.store import ModelStore

    root = tmp_path / "models"
    shutil.copytree(models, root)
    now = [100.0]  # a clock the test moves: no dependence on how fast this machine runs
    registry = ModelRegistry(ModelStore(root), clock=lambda: now[0])
    reads = []
    real_refresh = registry.refresh
    monkeypatch.setattr(registry, "refresh", lambda: reads.append(1) or real_refresh())
    window = registry_module.STORE_REREAD_SECONDS
    assert window == 1.0
    for step in range(20):
        now[0] = 100.0 + step * window / 20  # all within the second after the start-up read
        with pytest.raises(ModelNotFound):
            registry.route("en", "de", "copy-en-de-new")
    assert reads == []  # the store was read at start, less than a second ago
    # A model installed while serving can be named once the store may be read again.
    install_copy_model(root, sp_model, "copy-en-de-new", "en", "de", swap=True)
    with pytest.raises(ModelNotFound):  # still inside the second
        registry.route("en", "de", "copy-en-de-new")
    assert reads == []
    now[0] = 100.0 + window
    assert registry.route("en", "de", "copy-en-de-new").models == ("copy-en-de-new",)
    assert len(reads) == 1
    # Unknown names again: one read per second at most, however many requests.
    for second in (1, 2):
        now[0] += window
        for _ in range(20):
            with pytest.raises(ModelNotFound):
                registry.route("en", "de", "missing")
            now[0] += window / 40
        assert len(reads) == 1 + second
