"""Routing: which model serves a pair, pivoting through English, the missing-pair error, the
list of servable pairs, and the LRU of loaded models.

Catalogue tests use manifest-only model folders (the registry routes from manifests and never
loads them); anything that translates uses the tiny copy models of ``tests/support``, whose
exact output is known (``swapcase`` for the swapping ones, the input for the others).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from dragoman.server.cache import SentenceCache
from dragoman.server.errors import ModelNotFound
from dragoman.server.manifest import Manifest, write_manifest
from dragoman.server.registry import Leg, ModelRegistry, Route, RoutingOptions
from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.server.seq2seq import RuntimeOptions
from dragoman.server.service import Dragoman, TranslateInput
from dragoman.server.store import ModelStore
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import install_copy_model, server_config

LANGS = ("en", "de", "fr")


def fake_model(
    root: Path, name: str, sources: tuple[str, ...], targets: tuple[str, ...],
    task: str = "translate",
) -> None:
    """A manifest-only model folder: enough for the catalogue, never loaded."""
    folder = root / name
    folder.mkdir(parents=True)
    write_manifest(folder, Manifest(name, task, sources, targets))  # type: ignore[arg-type]


@pytest.fixture()
def catalogue(tmp_path: Path) -> ModelStore:
    """de->en and en->fr (bilingual), a multilingual en/de/fr model, an it->en model and an
    English summariser (which must never route a translation)."""
    root = tmp_path / "models"
    fake_model(root, "opus-de-en", ("de",), ("en",))
    fake_model(root, "opus-en-fr", ("en",), ("fr",))
    fake_model(root, "opus-it-en", ("it",), ("en",))
    fake_model(root, "nllb", LANGS, LANGS)
    fake_model(root, "bart", ("en",), ("en",), task="summarise")
    return ModelStore(root)


def registry(store: ModelStore, **routing: object) -> ModelRegistry:
    return ModelRegistry(store, routing=RoutingOptions(**routing))  # type: ignore[arg-type]


# -- choosing a route ------------------------------------------------------------------------


def test_bilingual_model_is_preferred_and_prefer_flips_it(catalogue: ModelStore) -> None:
    assert registry(catalogue).route("de", "en") == Route((Leg("opus-de-en", "de", "en"),))
    assert registry(catalogue).route("en", "fr").models == ("opus-en-fr",)
    flipped = registry(catalogue, prefer="multilingual")
    assert flipped.route("de", "en").models == ("nllb",)
    assert flipped.route("en", "fr").models == ("nllb",)
    # Only the multilingual model serves en->de, whatever the preference.
    assert registry(catalogue).route("en", "de").models == ("nllb",)


def test_direct_multilingual_beats_a_bilingual_pivot(catalogue: ModelStore) -> None:
    route = registry(catalogue).route("de", "fr")
    assert route == Route((Leg("nllb", "de", "fr"),))
    assert route.pivot_language == ""


def test_pivot_through_english_when_no_direct_model(catalogue: ModelStore) -> None:
    route = registry(catalogue).route("it", "fr")
    assert route == Route(
        (Leg("opus-it-en", "it", "en"), Leg("opus-en-fr", "en", "fr")), pivot_language="en"
    )
    assert route.models == ("opus-it-en", "opus-en-fr")
    # Each leg follows the preference too.
    flipped = registry(catalogue, prefer="multilingual").route("it", "fr")
    assert flipped.models == ("opus-it-en", "nllb") and flipped.pivot_language == "en"


def test_pivot_language_is_configurable_and_can_be_disabled(catalogue: ModelStore) -> None:
    with pytest.raises(ModelNotFound, match=r"no model translates it->fr;"):
        registry(catalogue, pivot_language="").route("it", "fr")
    with pytest.raises(ModelNotFound, match=r"no model translates it->fr \(nor through de\)"):
        registry(catalogue, pivot_language="de").route("it", "fr")


def test_missing_pair_names_the_pair_and_the_installed_pairs(catalogue: ModelStore) -> None:
    with pytest.raises(ModelNotFound) as info:
        registry(catalogue).route("fi", "ja")
    message = str(info.value)
    assert message.startswith("no model translates fi->ja (nor through en); installed pairs: ")
    listed = message.split("installed pairs: ")[1].split(". ")[0].split(", ")
    assert listed == sorted(
        ["de->en", "en->fr", "it->en", "en->de", "de->fr", "fr->en", "fr->de"]
    )
    assert "dragoman models install" in message


def test_missing_pair_with_english_on_one_side_does_not_claim_a_pivot(
    catalogue: ModelStore,
) -> None:
    with pytest.raises(ModelNotFound, match=r"^no model translates en->ja; installed pairs"):
        registry(catalogue).route("en", "ja")


def test_pairs_lists_every_servable_pair_with_its_route(catalogue: ModelStore) -> None:
    reg = registry(catalogue)
    pairs = {(s, t): route for s, t, route in reg.pairs()}
    # Independent oracle: every ordered pair of known languages that route() can serve.
    known = {"en", "de", "fr", "it"}
    servable = set()
    for s in known:
        for t in known - {s}:
            try:
                reg.route(s, t)
                servable.add((s, t))
            except ModelNotFound:
                pass
    assert set(pairs) == servable
    assert servable == {
        ("de", "en"), ("en", "fr"), ("en", "de"), ("de", "fr"), ("fr", "en"), ("fr", "de"),
        ("it", "en"), ("it", "fr"), ("it", "de"),
    }
    assert pairs[("it", "de")].models == ("opus-it-en", "nllb")
    assert pairs[("de", "en")].models == ("opus-de-en",)
    assert all(route == reg.route(s, t) for (s, t), route in pairs.items())


def test_newly_installed_model_is_routed_after_refresh(catalogue: ModelStore) -> None:
    reg = registry(catalogue)
    with pytest.raises(ModelNotFound):
        reg.route("fi", "en")
    fake_model(catalogue.root, "opus-fi-en", ("fi",), ("en",))
    reg.refresh()
    assert reg.route("fi", "en").models == ("opus-fi-en",)
    assert reg.route("fi", "fr").models == ("opus-fi-en", "opus-en-fr")


# -- real (copy) models: pivot output, LRU unload and reload ------------------------------------


@pytest.fixture(scope="module")
def copy_models(tmp_path_factory: pytest.TempPathFactory, sp_model: Path) -> Path:
    """fr->en copies, en->de swaps case, en->fr swaps case: fr->de through en is a swapcase."""
    store = tmp_path_factory.mktemp("routing") / "models"
    install_copy_model(store, sp_model, "copy-fr-en", "fr", "en", swap=False)
    install_copy_model(store, sp_model, "copy-en-de", "en", "de", swap=True)
    install_copy_model(store, sp_model, "copy-en-fr", "en", "fr", swap=True)
    return store


def _service(store: Path, **routing: object) -> Dragoman:
    reg = ModelRegistry(
        ModelStore(store), RuntimeOptions(intra_threads=1),
        routing=RoutingOptions(**routing),  # type: ignore[arg-type]
    )
    return Dragoman(reg, SentenceCache(max_entries=0))  # no cache: every call decodes


TEXT = "The museum will reopen its doors after two years of renovation."


def test_pivot_translation_runs_both_models(
    copy_models: Path, swapcase: Callable[[str], str]
) -> None:
    service = _service(copy_models)
    out = service.translate(TranslateInput(TEXT, "de", "fr")).result(30)
    assert out.text == swapcase(TEXT) != TEXT
    assert out.models == ("copy-fr-en", "copy-en-de") and out.pivot_language == "en"
    service.registry.close()


def test_lru_unloads_and_reloads_with_identical_output(
    copy_models: Path, swapcase: Callable[[str], str]
) -> None:
    service = _service(copy_models, max_loaded_models=1)
    reg = service.registry

    def translate(source: str, target: str) -> str:
        return service.translate(TranslateInput(TEXT, target, source)).result(30).text

    first = translate("en", "de")
    assert first == swapcase(TEXT)
    assert reg.loaded_names() == ["copy-en-de"]
    # Twice over: CTranslate2 may still hold a model that just decoded (see Seq2SeqModel.unload).
    for _ in range(2):
        assert translate("fr", "en") == TEXT
        assert reg.loaded_names() == ["copy-fr-en"]
        assert translate("en", "de") == first  # reloaded from disk, same output
        assert reg.loaded_names() == ["copy-en-de"]
        # A pivot needs two models: with room for one, the first leg's model makes way.
        assert translate("fr", "de") == first
        assert reg.loaded_names() == ["copy-en-de"]
    reg.close()


def test_lru_evicts_the_least_recently_used(copy_models: Path) -> None:
    service = _service(copy_models, max_loaded_models=2)
    reg = service.registry
    for name in ("copy-en-de", "copy-fr-en"):
        reg.acquire(name)
    reg.acquire("copy-en-de")  # copy-fr-en is now least recently used
    reg.acquire("copy-en-fr")
    assert sorted(reg.loaded_names()) == ["copy-en-de", "copy-en-fr"]
    reg.close()


def test_preloaded_models_are_never_unloaded(copy_models: Path) -> None:
    service = _service(copy_models, max_loaded_models=1)
    reg = service.registry
    reg.preload(["copy-en-de"])
    reg.acquire("copy-fr-en")
    assert sorted(reg.loaded_names()) == ["copy-en-de", "copy-fr-en"]
    reg.acquire("copy-en-fr")
    assert sorted(reg.loaded_names()) == ["copy-en-de", "copy-en-fr"]
    reg.close()


# -- over gRPC --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub(copy_models: Path) -> Iterator[pb_grpc.TranslationServiceStub]:
    config = server_config(copy_models, max_loaded_models=1)
    with (
        ServerThread(build_service(config), config) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        yield pb_grpc.TranslationServiceStub(channel)


def test_grpc_pivot_lists_both_models(
    stub: pb_grpc.TranslationServiceStub, swapcase: Callable[[str], str]
) -> None:
    reply = stub.Translate(pb.TranslateRequest(
        text=TEXT, source_language="fr", target_language="de"), timeout=30)
    assert reply.text == swapcase(TEXT)
    assert list(reply.models) == ["copy-fr-en", "copy-en-de"]
    assert reply.model == "copy-fr-en+copy-en-de" and reply.pivot_language == "en"


def test_grpc_missing_pair_is_not_found_with_the_installed_pairs(
    stub: pb_grpc.TranslationServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Translate(pb.TranslateRequest(
            text=TEXT, source_language="de", target_language="fr"), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    details = info.value.details()
    assert "no model translates de->fr (nor through en)" in details
    assert "installed pairs: en->de, en->fr, fr->en" in details


def test_grpc_list_languages_lists_every_servable_pair(
    stub: pb_grpc.TranslationServiceStub,
) -> None:
    reply = stub.ListLanguages(pb.ListLanguagesRequest(), timeout=30)
    pairs = {(p.source_language, p.target_language): (tuple(p.models), p.pivot_language)
             for p in reply.pairs}
    assert pairs == {
        ("en", "de"): (("copy-en-de",), ""),
        ("en", "fr"): (("copy-en-fr",), ""),
        ("fr", "en"): (("copy-fr-en",), ""),
        ("fr", "de"): (("copy-fr-en", "copy-en-de"), "en"),
    }
