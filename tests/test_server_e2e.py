"""End to end over a real gRPC channel (port 0) against tiny copy models: every RPC, every
error status, health, reflection, auth and graceful shutdown."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.server.text.segment import split_document
from dragoman.v1 import summarisation_pb2 as spb
from dragoman.v1 import summarisation_pb2_grpc as spb_grpc
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import server_config

ARTICLE = (
    "The city council approved the new budget on Tuesday evening. Prices for electricity "
    "rose by 12% compared with last year.\n\n"
    "  Police are asking witnesses to come forward with any information.   \n"
    "The museum will reopen its doors after two years of renovation.\r\n\r\n\r\n"
    "Local farmers are worried about the long period of dry weather. The festival attracts "
    "more than 50,000 visitors every summer. Voters will decide on the proposal in a "
    "referendum next month.\n"
)


def _stubs(address: str) -> tuple[grpc.Channel, pb_grpc.TranslationServiceStub, spb_grpc.SummarisationServiceStub]:
    channel = grpc.insecure_channel(address)
    return channel, pb_grpc.TranslationServiceStub(channel), spb_grpc.SummarisationServiceStub(channel)


@pytest.fixture(scope="module")
def stubs(server):  # type: ignore[no-untyped-def]
    channel, translation, summarisation = _stubs(server.address)
    yield translation, summarisation
    channel.close()


def _expected(text: str, lang: str, swapcase: Callable[[str], str]) -> str:
    doc = split_document(text, lang)
    return doc.rebuild([swapcase(s) for s in doc.sentences])


def _breaks(text: str) -> list[str]:
    return re.findall(r"\s*\n\s*", text)


def test_translate_keeps_paragraphs_and_whitespace(stubs, swapcase) -> None:  # type: ignore[no-untyped-def]
    translation, _ = stubs
    resp = translation.Translate(pb.TranslateRequest(
        id="a1", text=ARTICLE, source_language="en", target_language="de"), timeout=30)
    assert resp.id == "a1"
    assert resp.text == _expected(ARTICLE, "en", swapcase)
    assert resp.text != ARTICLE  # the swapcase model really translated
    assert _breaks(resp.text) == _breaks(ARTICLE)
    assert resp.text.count("\n\n") == ARTICLE.count("\n\n")
    assert resp.model == "copy-en-de" and list(resp.models) == ["copy-en-de"]
    assert resp.source_language == "en" and not resp.detected
    assert resp.sentences == len(split_document(ARTICLE, "en").sentences)


def test_translate_detects_source_language(stubs, swapcase) -> None:  # type: ignore[no-untyped-def]
    translation, _ = stubs
    resp = translation.Translate(pb.TranslateRequest(text=ARTICLE, target_language="de"), timeout=30)
    assert resp.source_language == "en" and resp.detected
    assert resp.text == _expected(ARTICLE, "en", swapcase)


def test_very_long_sentence_is_not_cut(stubs, swapcase) -> None:  # type: ignore[no-untyped-def]
    """The copy models accept 64 tokens; a ~500-token sentence must come back whole."""
    translation, _ = stubs
    words = ("the council approved the budget, and the minister said prices rose; "
             "thousands gathered in the square").split()
    sentence = " ".join(words[i % len(words)] for i in range(400)) + "."
    resp = translation.Translate(pb.TranslateRequest(
        text=sentence, source_language="en", target_language="de"), timeout=60)
    assert resp.text.split() == swapcase(sentence).split()
    assert len(resp.text.split()) == 400


def test_translate_html_keeps_markup(stubs, swapcase) -> None:  # type: ignore[no-untyped-def]
    translation, _ = stubs
    html = '<p class="lead">The museum will reopen.</p>\n<script>var x = "The";</script><p>Heavy rain.</p>'
    resp = translation.Translate(pb.TranslateRequest(
        text=html, source_language="en", target_language="de", format=pb.TEXT_FORMAT_HTML), timeout=30)
    assert '<p class="lead">' in resp.text and '<script>var x = "The";</script>' in resp.text
    assert swapcase("The museum will reopen.") in resp.text


def test_translate_wrapped_text_joins_sentences_across_soft_line_breaks(stubs, swapcase) -> None:  # type: ignore[no-untyped-def]
    translation, _ = stubs
    text = ("The bridge will reopen\nnext week, officials said.\r\nCracks were found in\nMay.\n\n"
            "Traffic resumes on\nMonday.\n")
    resp = translation.Translate(pb.TranslateRequest(
        text=text, source_language="en", target_language="de", format=pb.TEXT_FORMAT_WRAPPED), timeout=30)
    first = swapcase("The bridge will reopen next week, officials said.")
    # breaks inside a sentence are re-flowed; the ones between sentences stay
    assert resp.text == (f"{first}\r\n{swapcase('Cracks were found in May.')}\n\n"
                         f"{swapcase('Traffic resumes on Monday.')}\n")
    assert resp.sentences == 3
    plain = translation.Translate(pb.TranslateRequest(
        text=text, source_language="en", target_language="de"), timeout=30)
    assert plain.sentences == 6  # plain text: every line on its own


def test_pivot_free_identity_pair(stubs) -> None:  # type: ignore[no-untyped-def]
    translation, _ = stubs
    resp = translation.Translate(pb.TranslateRequest(
        text="Guten Morgen.", source_language="de", target_language="de"), timeout=30)
    assert resp.text == "Guten Morgen." and list(resp.models) == []


def test_translate_stream_answers_every_document_once(stubs, swapcase) -> None:  # type: ignore[no-untyped-def]
    translation, _ = stubs
    texts = {f"doc-{i}": f"The train number {i} was delayed by almost three hours." for i in range(60)}
    requests = [pb.TranslateRequest(id=k, text=v, source_language="en", target_language="de")
                for k, v in texts.items()]
    requests.append(pb.TranslateRequest(id="empty", text="  ", source_language="en", target_language="de"))
    requests.append(pb.TranslateRequest(id="nomodel", text="Hello.", source_language="en", target_language="ja"))
    seen: dict[str, pb.TranslateResponse] = {}
    for resp in translation.TranslateStream(iter(requests), timeout=60):
        assert resp.id not in seen
        seen[resp.id] = resp
    assert set(seen) == set(texts) | {"empty", "nomodel"}
    for key, text in texts.items():
        assert not seen[key].HasField("error")
        assert seen[key].text == swapcase(text)
    assert seen["empty"].error.code == "INVALID_ARGUMENT"
    assert seen["nomodel"].error.code == "NOT_FOUND"


def test_summarise_extractive_verbatim_in_order(stubs) -> None:  # type: ignore[no-untyped-def]
    _, summarisation = stubs
    resp = summarisation.Summarise(spb.SummariseRequest(
        id="s1", text=ARTICLE, method=spb.SUMMARY_METHOD_EXTRACTIVE, max_sentences=3), timeout=30)
    assert resp.id == "s1" and resp.method == spb.SUMMARY_METHOD_EXTRACTIVE
    assert resp.language == "en" and resp.model == "extractive"
    originals = split_document(ARTICLE, "en").sentences
    picked = [s for s in originals if s in resp.summary]
    assert len(picked) == 3 == resp.sentences
    positions = [resp.summary.index(s) for s in picked]
    assert positions == sorted(positions)
    assert " ".join(picked) == resp.summary


def test_summarise_unspecified_falls_back_to_extractive(stubs) -> None:  # type: ignore[no-untyped-def]
    _, summarisation = stubs
    resp = summarisation.Summarise(spb.SummariseRequest(text=ARTICLE, max_sentences=2), timeout=30)
    assert resp.method == spb.SUMMARY_METHOD_EXTRACTIVE and resp.sentences == 2


def test_summarise_cross_lingual(stubs, swapcase) -> None:  # type: ignore[no-untyped-def]
    _, summarisation = stubs
    resp = summarisation.Summarise(spb.SummariseRequest(
        text=ARTICLE, language="en", target_language="de", max_sentences=1,
        method=spb.SUMMARY_METHOD_EXTRACTIVE), timeout=30)
    assert list(resp.models) == ["extractive", "copy-en-de"]
    originals = split_document(ARTICLE, "en").sentences
    assert resp.summary in {swapcase(s) for s in originals}


def test_detect_language(stubs) -> None:  # type: ignore[no-untyped-def]
    translation, _ = stubs
    resp = translation.DetectLanguage(pb.DetectLanguageRequest(
        text="Der Stadtrat hat am Dienstagabend den neuen Haushalt beschlossen."), timeout=10)
    assert resp.language == "de" and 0 < resp.confidence <= 1
    assert resp.candidates[0].language == "de"


def test_list_languages(stubs) -> None:  # type: ignore[no-untyped-def]
    translation, _ = stubs
    resp = translation.ListLanguages(pb.ListLanguagesRequest(), timeout=10)
    pairs = {(p.source_language, p.target_language): list(p.models) for p in resp.pairs}
    assert pairs == {("en", "de"): ["copy-en-de"], ("de", "en"): ["copy-de-en"]}
    assert {m.name for m in resp.models} == {"copy-en-de", "copy-de-en"}
    assert all(m.loaded for m in resp.models)
    assert resp.extractive_summaries and list(resp.summarisation_languages) == []


def test_health_and_per_model_health(server) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", "dragoman.v1.TranslationService", "dragoman.v1.SummarisationService",
                     "dragoman.model.copy-en-de"):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING, name


def test_reflection_lists_services(server) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"dragoman.v1.TranslationService", "dragoman.v1.SummarisationService",
            "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize(
    ("request_kwargs", "code", "pattern"),
    [
        (dict(text="", target_language="de"), grpc.StatusCode.INVALID_ARGUMENT, "text is empty"),
        (dict(text="Hi there.", target_language="xx"), grpc.StatusCode.INVALID_ARGUMENT, "'xx' is not an ISO 639-1"),
        (dict(text="Hi there.", source_language="english", target_language="de"),
         grpc.StatusCode.INVALID_ARGUMENT, "'english' is not an ISO 639-1"),
        (dict(text="Hi there.", source_language="en", target_language="ja"), grpc.StatusCode.NOT_FOUND,
         r"no model translates en->ja.*installed pairs: de->en, en->de.*dragoman models install"),
        (dict(text="Hi there.", source_language="en", target_language="de", beam_size=99),
         grpc.StatusCode.INVALID_ARGUMENT, "beam_size"),
    ],
)
def test_translate_errors(stubs, request_kwargs, code, pattern) -> None:  # type: ignore[no-untyped-def]
    translation, _ = stubs
    with pytest.raises(grpc.RpcError) as info:
        translation.Translate(pb.TranslateRequest(**request_kwargs), timeout=10)
    assert info.value.code() == code
    assert re.search(pattern, info.value.details()), info.value.details()


def test_summarise_errors(stubs) -> None:  # type: ignore[no-untyped-def]
    _, summarisation = stubs
    with pytest.raises(grpc.RpcError) as info:
        summarisation.Summarise(spb.SummariseRequest(
            text=ARTICLE, method=spb.SUMMARY_METHOD_ABSTRACTIVE), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no abstractive summariser for 'en'" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        summarisation.Summarise(spb.SummariseRequest(text=ARTICLE, target_language="ja"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "en->ja" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        summarisation.Summarise(spb.SummariseRequest(text=" \n "), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_detect_errors(stubs) -> None:  # type: ignore[no-untyped-def]
    translation, _ = stubs
    with pytest.raises(grpc.RpcError) as info:
        translation.DetectLanguage(pb.DetectLanguageRequest(text="12345 !!!"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _start(store: Path, **overrides: object) -> ServerThread:
    config = server_config(store, **overrides)
    return ServerThread(build_service(config), config).start()


def test_over_limit_document(copy_store) -> None:  # type: ignore[no-untyped-def]
    running = _start(copy_store, max_chars=100, preload=("copy-en-de",))
    try:
        channel, translation, summarisation = _stubs(running.address)
        with pytest.raises(grpc.RpcError) as info:
            translation.Translate(pb.TranslateRequest(text="x" * 101, target_language="de"), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "101 characters; the limit is 100" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            summarisation.Summarise(spb.SummariseRequest(text="word " * 30), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        channel.close()
    finally:
        running.stop()


def test_token_auth(copy_store) -> None:  # type: ignore[no-untyped-def]
    running = _start(copy_store, token="s3cret", preload=("copy-en-de",))
    try:
        channel, translation, _ = _stubs(running.address)
        req = pb.TranslateRequest(text="Hello.", source_language="en", target_language="de")
        with pytest.raises(grpc.RpcError) as info:
            translation.Translate(req, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            list(translation.TranslateStream(iter([req]), timeout=10))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = translation.Translate(req, timeout=10, metadata=[("authorization", "Bearer s3cret")])
        assert ok.text
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        channel.close()
    finally:
        running.stop()


def test_overload_and_shutdown_statuses(copy_store, swapcase) -> None:  # type: ignore[no-untyped-def]
    """A batcher that waits 1.5 s keeps a call in flight: a second call is refused with
    RESOURCE_EXHAUSTED, shutdown lets the first finish and refuses new ones (UNAVAILABLE)."""
    running = _start(copy_store, max_in_flight=1, batch_wait_ms=1500.0,
                     max_batch_tokens=100_000, preload=("copy-en-de",))
    channel, translation, _ = _stubs(running.address)
    text = "The bridge was closed to traffic after engineers found cracks."
    req = pb.TranslateRequest(text=text, source_language="en", target_language="de")
    result: dict[str, object] = {}

    def first() -> None:
        try:
            result["resp"] = translation.Translate(req, timeout=30)
        except grpc.RpcError as exc:  # pragma: no cover - reported below
            result["error"] = exc

    worker = threading.Thread(target=first)
    worker.start()
    deadline = time.monotonic() + 10
    while running.service.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running.service.in_flight == 1
    with pytest.raises(grpc.RpcError) as info:
        translation.Translate(req, timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "in flight" in info.value.details()

    stopper = threading.Thread(target=running.stop, kwargs={"grace": 20})
    stopper.start()
    deadline = time.monotonic() + 5
    while not running.service._closing and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(grpc.RpcError) as info:
        translation.Translate(req, timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    worker.join(30)
    stopper.join(30)
    channel.close()
    assert "error" not in result, result.get("error")
    assert result["resp"].text == swapcase(text)  # type: ignore[union-attr]
