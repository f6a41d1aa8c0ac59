"""The client library against an in-process gRPC server running fake servicers.

The fakes answer by simple visible rules (upper-casing, echoing) and record every request, so the
tests prove that each request and response field crosses the wire, and that status codes become
the right exceptions. Text starting with a command word steers the fakes:
  "ABORT:<CODE>:<details>"  abort the call with that status
  "SLOW"                    hold the call until the client gives up (or 10 s)
  "LATE ..."                (stream) answer only after the next request, or at the end
  "STOP"                    (stream) end the stream successfully without answering the rest
  "FAIL:<CODE>:<message>"   answer with a per-document error (what streams do for one bad doc)
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from dragoman.client import (
    Cancelled,
    Client,
    DeadlineExceeded,
    Detection,
    DocumentError,
    DragomanError,
    InternalError,
    InvalidArgument,
    LanguagePair,
    Languages,
    LanguageScore,
    ModelInfo,
    NotFound,
    ResourceExhausted,
    Summary,
    TranslateInput,
    Translation,
    Unauthenticated,
    Unavailable,
)
from dragoman.v1 import (
    summarisation_pb2,
    summarisation_pb2_grpc,
    translation_pb2,
    translation_pb2_grpc,
)

ROOT = Path(__file__).resolve().parent.parent
MAX_MESSAGE = 64 * 1024 * 1024


def _abort_if_asked(text: str, context: grpc.ServicerContext) -> None:
    if text.startswith("ABORT:"):
        _, code, details = text.split(":", 2)
        context.abort(grpc.StatusCode[code], details)


def _hold(context: grpc.ServicerContext, started: threading.Event) -> None:
    started.set()
    give_up = time.monotonic() + 10
    while context.is_active() and time.monotonic() < give_up:
        time.sleep(0.01)


class FakeTranslation(translation_pb2_grpc.TranslationServiceServicer):
    """Upper-cases text; pivots through "en" when neither side is English."""

    def __init__(self) -> None:
        self.requests: list[translation_pb2.TranslateRequest] = []
        self.metadata: list[dict[str, str]] = []
        self.stream_received = 0
        self.slow_started = threading.Event()

    def _answer(
        self, request: translation_pb2.TranslateRequest, context: grpc.ServicerContext
    ) -> translation_pb2.TranslateResponse:
        _abort_if_asked(request.text, context)
        if request.text.startswith("FAIL:"):
            _, code, message = request.text.split(":", 2)
            return translation_pb2.TranslateResponse(
                id=request.id, error=translation_pb2.DocumentError(code=code, message=message)
            )
        if request.text == "SLOW":
            _hold(context, self.slow_started)
        source = request.source_language or "en"
        target = request.target_language
        pivot = "en" if "en" not in (source, target) else ""
        models = (
            [f"fake-{source}-en", f"fake-en-{target}"] if pivot else [f"fake-{source}-{target}"]
        )
        return translation_pb2.TranslateResponse(
            id=request.id,
            text=request.text.upper(),
            source_language=source,
            target_language=target,
            model="+".join(models),
            models=models,
            pivot_language=pivot,
            detected=not request.source_language,
            sentences=request.text.count(".") + 1,
            cached_sentences=request.text.count("."),
        )

    def Translate(self, request, context):  # generated name
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))
        return self._answer(request, context)

    def TranslateStream(self, request_iterator, context):
        held: list[translation_pb2.TranslateRequest] = []
        for request in request_iterator:
            self.stream_received += 1
            if request.text == "STOP":
                return
            answer = self._answer(request, context)
            if request.text.startswith("LATE"):
                held.append(answer)
                continue
            yield answer
            while held:
                yield held.pop(0)
        yield from held

    def DetectLanguage(self, request, context):
        self.requests.append(request)
        _abort_if_asked(request.text, context)
        language = request.text.split()[0].lower()
        return translation_pb2.DetectLanguageResponse(
            language=language,
            confidence=0.75,
            candidates=[
                translation_pb2.LanguageScore(language=language, confidence=0.75),
                translation_pb2.LanguageScore(language="en", confidence=0.25),
            ],
        )

    def ListLanguages(self, request, context):
        return translation_pb2.ListLanguagesResponse(
            pairs=[
                translation_pb2.LanguagePair(
                    source_language="de", target_language="en", models=["opus-de-en"]
                ),
                translation_pb2.LanguagePair(
                    source_language="de",
                    target_language="fr",
                    models=["opus-de-en", "opus-en-fr"],
                    pivot_language="en",
                ),
            ],
            summarisation_languages=["en"],
            models=[
                translation_pb2.ModelInfo(
                    name="opus-de-en",
                    task="translate",
                    source_languages=["de"],
                    target_languages=["en"],
                    loaded=True,
                ),
                translation_pb2.ModelInfo(
                    name="bart-en",
                    task="summarise",
                    source_languages=["en"],
                    target_languages=["en"],
                    loaded=False,
                ),
            ],
            extractive_summaries=True,
        )


class FakeSummarisation(summarisation_pb2_grpc.SummarisationServiceServicer):
    """Returns the first sentence upper-cased; "auto" picks abstractive only for English."""

    def __init__(self) -> None:
        self.requests: list[summarisation_pb2.SummariseRequest] = []

    def Summarise(self, request, context):
        self.requests.append(request)
        _abort_if_asked(request.text, context)
        language = request.language or "de"
        target = request.target_language or language
        method = request.method or (
            summarisation_pb2.SUMMARY_METHOD_ABSTRACTIVE
            if language == "en"
            else summarisation_pb2.SUMMARY_METHOD_EXTRACTIVE
        )
        models = ["fake-summariser"] + ([f"fake-{language}-{target}"] if target != language else [])
        return summarisation_pb2.SummariseResponse(
            id=request.id,
            summary=request.text.split(". ")[0].upper(),
            language=language,
            method=method,
            model="+".join(models),
            models=models,
            target_language=target,
            passes=2 if len(request.text) > 100 else 1,
            sentences=request.max_sentences or 1,
        )


@dataclass
class FakeServer:
    address: str
    translation: FakeTranslation
    summarisation: FakeSummarisation
    health: health.HealthServicer


@contextmanager
def running_fake_server() -> Iterator[FakeServer]:
    """A gRPC server on a free localhost port with the fakes and a standard health service."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
        ],
    )
    translation, summarisation = FakeTranslation(), FakeSummarisation()
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(
        "dragoman.v1.SummarisationService", health_pb2.HealthCheckResponse.NOT_SERVING
    )
    translation_pb2_grpc.add_TranslationServiceServicer_to_server(translation, server)
    summarisation_pb2_grpc.add_SummarisationServiceServicer_to_server(summarisation, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield FakeServer(f"127.0.0.1:{port}", translation, summarisation, health_servicer)
    finally:
        server.stop(0)


def unused_address() -> str:
    """An address where nothing listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with running_fake_server() as server:
        yield server


@pytest.fixture
def client(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.delenv("DRAGOMAN_TIMEOUT", raising=False)
    monkeypatch.delenv("DRAGOMAN_TOKEN", raising=False)
    with Client(fake.address, timeout=10) as c:
        yield c


def test_importing_the_client_loads_neither_server_nor_ctranslate2() -> None:
    code = (
        "import sys, dragoman.client, dragoman.client.cli, dragoman.client.cli.remote\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'ctranslate2'"
        " or m.startswith('dragoman.server'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "client"), str(ROOT / "server")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "[]"


def test_translate_maps_every_request_and_response_field(client: Client, fake: FakeServer) -> None:
    result = client.translate(
        "Hallo Welt. Wie geht's?", "en", source="de", format="markdown", beam_size=3, id="a-1"
    )
    assert result == Translation(
        id="a-1",
        text="HALLO WELT. WIE GEHT'S?",
        source_language="de",
        target_language="en",
        model="fake-de-en",
        models=("fake-de-en",),
        pivot_language=None,
        detected=False,
        sentences=2,
        cached_sentences=1,
        error=None,
    )
    sent = fake.translation.requests[-1]
    assert (sent.id, sent.text, sent.source_language, sent.target_language) == (
        "a-1",
        "Hallo Welt. Wie geht's?",
        "de",
        "en",
    )
    assert sent.format == translation_pb2.TEXT_FORMAT_MARKDOWN
    assert sent.beam_size == 3


def test_translate_reports_detection_and_pivot(client: Client, fake: FakeServer) -> None:
    result = client.translate("<p>bonjour</p>", "de", source=None, format="html")
    assert fake.translation.requests[-1].source_language == ""
    assert fake.translation.requests[-1].format == translation_pb2.TEXT_FORMAT_HTML
    # The fake "detects" en, so no pivot; ask for fr->de to see one.
    assert result.detected is True and result.source_language == "en"
    pivoted = client.translate("bonjour", "de", source="fr")
    assert pivoted.pivot_language == "en"
    assert pivoted.models == ("fake-fr-en", "fake-en-de")
    assert pivoted.model == "fake-fr-en+fake-en-de"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("INVALID_ARGUMENT", InvalidArgument),
        ("OUT_OF_RANGE", InvalidArgument),
        ("NOT_FOUND", NotFound),
        ("RESOURCE_EXHAUSTED", ResourceExhausted),
        ("UNAVAILABLE", Unavailable),
        ("DEADLINE_EXCEEDED", DeadlineExceeded),
        ("UNAUTHENTICATED", Unauthenticated),
        ("CANCELLED", Cancelled),
        ("INTERNAL", InternalError),
        ("UNKNOWN", InternalError),
        ("DATA_LOSS", InternalError),
    ],
)
def test_each_status_code_becomes_its_exception(
    client: Client, code: str, cls: type[DragomanError]
) -> None:
    with pytest.raises(cls, match=f"^{code}: no luck for {code}$") as caught:
        client.translate(f"ABORT:{code}:no luck for {code}", "en")
    assert caught.value.code == code
    assert caught.value.details == f"no luck for {code}"


def test_unmapped_status_is_a_plain_dragoman_error(client: Client) -> None:
    with pytest.raises(DragomanError, match="^PERMISSION_DENIED: go away$") as caught:
        client.translate("ABORT:PERMISSION_DENIED:go away", "en")
    assert type(caught.value) is DragomanError
    assert caught.value.code == "PERMISSION_DENIED"


def test_bad_options_are_rejected_before_calling(client: Client, fake: FakeServer) -> None:
    before = len(fake.translation.requests)
    with pytest.raises(InvalidArgument, match="format must be one of plain, html, markdown, wrapped"):
        client.translate("x", "en", format="pdf")
    with pytest.raises(InvalidArgument, match="beam_size must be a non-negative integer"):
        client.translate("x", "en", beam_size=-1)
    with pytest.raises(InvalidArgument, match="bad request field"):
        client.translate(5, "en")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="method must be one of auto"):
        client.summarise("x", method="best")
    assert len(fake.translation.requests) == before


def test_deadline_becomes_deadline_exceeded(client: Client) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="DEADLINE_EXCEEDED"):
        client.translate("SLOW", "en", timeout=0.3)
    assert time.monotonic() - started < 5


def test_default_timeout_comes_from_the_environment(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRAGOMAN_TIMEOUT", "0.3")
    with Client(fake.address) as c:
        assert c.timeout == 0.3
        with pytest.raises(DeadlineExceeded):
            c.translate("SLOW", "en")
    monkeypatch.setenv("DRAGOMAN_TIMEOUT", "soon")
    with pytest.raises(InvalidArgument, match="DRAGOMAN_TIMEOUT='soon' is not a number"):
        Client(fake.address)
    monkeypatch.delenv("DRAGOMAN_TIMEOUT")
    with Client(fake.address) as c:
        assert c.timeout == 60.0
    with pytest.raises(InvalidArgument, match="timeout must be a positive number"):
        Client(fake.address, timeout=0)


def test_address_comes_from_the_environment(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRAGOMAN_SERVER", fake.address)
    with Client() as c:
        assert c.address == fake.address
        assert c.translate("hi", "de").text == "HI"
    monkeypatch.delenv("DRAGOMAN_SERVER")
    with Client() as c:
        assert c.address == "localhost:50051"


def test_unreachable_server_is_unavailable() -> None:
    with Client(unused_address(), timeout=5) as c:
        with pytest.raises(Unavailable, match="UNAVAILABLE: failed to connect"):
            c.translate("hi", "de")


def test_closed_client_raises_unavailable(fake: FakeServer) -> None:
    with Client(fake.address) as c:
        c.translate("hi", "de")
    with pytest.raises(Unavailable, match="closed channel"):
        c.translate("hi", "de")


def test_token_is_sent_as_bearer_metadata(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Client(fake.address, token="s3cret") as c:
        c.translate("hi", "de")
    assert fake.translation.metadata[-1]["authorization"] == "Bearer s3cret"
    monkeypatch.setenv("DRAGOMAN_TOKEN", "from-env")
    with Client(fake.address) as c:
        c.translate("hi", "de")
    assert fake.translation.metadata[-1]["authorization"] == "Bearer from-env"
    monkeypatch.delenv("DRAGOMAN_TOKEN")
    with Client(fake.address) as c:
        c.translate("hi", "de")
    assert "authorization" not in fake.translation.metadata[-1]


def test_messages_over_grpcs_4_mib_default_get_through(client: Client) -> None:
    text = "abcdefgh " * (700 * 1024)  # about 6 MiB each way
    result = client.translate(text, "de")
    assert len(result.text) == len(text)
    assert result.text == text.upper()


def test_translate_many_round_trips_ids_in_completion_order(
    client: Client, fake: FakeServer
) -> None:
    docs = [
        TranslateInput("LATE one", id="first"),
        {"text": "two", "id": "second", "source": "de"},
        "three",
        {"text": "four", "target_language": "fr", "format": "html"},
        TranslateInput("five", id="fifth", beam_size=2),
    ]
    results = list(client.translate_many(docs, "en", source="es", format="markdown"))
    ids = [r.id for r in results]
    assert ids == ["second", "first", "2", "3", "fifth"]  # "first" completed after "second"
    by_id = {r.id: r for r in results}
    assert by_id["first"].text == "LATE ONE"
    assert by_id["second"].text == "TWO" and by_id["second"].source_language == "de"
    assert by_id["2"].text == "THREE" and by_id["2"].source_language == "es"
    assert by_id["3"].target_language == "fr" and by_id["3"].pivot_language == "en"
    assert by_id["fifth"].text == "FIVE"


def test_translate_many_reads_documents_lazily_within_the_window(
    client: Client, fake: FakeServer
) -> None:
    pulled = 0

    def endless() -> Iterator[str]:
        nonlocal pulled
        while True:
            pulled += 1
            yield f"doc {pulled}"

    window = 4
    stream = client.translate_many(endless(), "de", max_in_flight=window)
    for received, result in enumerate(stream, start=1):
        assert pulled <= received + window  # never read ahead of the window
        assert result.text == result.text.upper()
        if received == 40:
            break
    stream.close()  # cancels the call; the endless generator must not keep it alive
    time.sleep(0.2)
    settled = pulled
    time.sleep(0.2)
    assert pulled == settled <= 40 + window


def test_translate_many_reports_a_bad_document_without_grpc_noise(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    docs = [{"text": "ok", "id": "a"}, {"txt": "typo"}]
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(InvalidArgument, match=r"document 1: unknown keys \['txt'\]"):
            list(client.translate_many(docs, "de"))
        with pytest.raises(InvalidArgument, match="document 0: no target language"):
            list(client.translate_many(["x"]))
    assert "Exception iterating requests" not in caplog.text
    with pytest.raises(InvalidArgument, match="docs must be iterable, got int"):
        client.translate_many(5, "de")  # type: ignore[arg-type]


def test_translate_many_passes_the_callers_own_exceptions_through(client: Client) -> None:
    def failing() -> Iterator[str]:
        yield "fine"
        raise OSError("archive is truncated")

    with pytest.raises(OSError, match="archive is truncated"):
        list(client.translate_many(failing(), "de"))


def test_translate_many_maps_stream_errors(client: Client) -> None:
    with pytest.raises(NotFound, match="no model for xx"):
        list(client.translate_many(["fine", "ABORT:NOT_FOUND:no model for xx"], "de"))
    with pytest.raises(DeadlineExceeded):
        list(client.translate_many(["SLOW"], "de", timeout=0.3))


def test_translate_many_raises_a_documents_error_by_default(client: Client) -> None:
    docs = [
        TranslateInput("fine", id="a"),
        TranslateInput("FAIL:NOT_FOUND:no model for xx", id="b"),
    ]
    with pytest.raises(NotFound, match="^NOT_FOUND: document 'b': no model for xx$"):
        list(client.translate_many(docs, "de"))


def test_translate_many_can_yield_failed_documents_and_go_on(client: Client) -> None:
    docs = ["one", "FAIL:INVALID_ARGUMENT:text is empty", "FAIL:ABORTED:odd", "three"]
    results = {r.id: r for r in client.translate_many(docs, "de", on_error="yield")}
    assert results["0"].text == "ONE" and results["0"].error is None
    assert results["3"].text == "THREE" and results["3"].error is None
    failed = results["1"]
    assert failed.error == DocumentError(code="INVALID_ARGUMENT", message="text is empty")
    assert failed.text == ""
    exception = failed.error.exception()
    assert isinstance(exception, InvalidArgument) and exception.details == "text is empty"
    odd = results["2"].error
    assert odd is not None and type(odd.exception()) is DragomanError
    assert odd.exception().code == "ABORTED"
    with pytest.raises(InvalidArgument, match="on_error must be 'raise' or 'yield'"):
        client.translate_many(docs, "de", on_error="skip")


def test_translate_raises_an_error_carried_in_a_unary_answer(client: Client) -> None:
    with pytest.raises(ResourceExhausted, match="^RESOURCE_EXHAUSTED: queue full$"):
        client.translate("FAIL:RESOURCE_EXHAUSTED:queue full", "de")


def test_translate_many_refuses_a_stream_that_ends_early(client: Client) -> None:
    with pytest.raises(
        InternalError, match=r"ended the stream after answering 1 of [23]\+? documents"
    ):
        list(client.translate_many(["fine", "STOP", "never"], "de"))


def test_detect_maps_every_field(client: Client) -> None:
    assert client.detect("Nl dit is een zin") == Detection(
        language="nl",
        confidence=0.75,
        candidates=(LanguageScore("nl", 0.75), LanguageScore("en", 0.25)),
    )


def test_languages_maps_every_field(client: Client) -> None:
    assert client.languages() == Languages(
        pairs=(
            LanguagePair("de", "en", ("opus-de-en",), None),
            LanguagePair("de", "fr", ("opus-de-en", "opus-en-fr"), "en"),
        ),
        summarisation_languages=("en",),
        models=(
            ModelInfo("opus-de-en", "translate", ("de",), ("en",), True),
            ModelInfo("bart-en", "summarise", ("en",), ("en",), False),
        ),
        extractive_summaries=True,
    )


def test_summarise_maps_every_request_and_response_field(client: Client, fake: FakeServer) -> None:
    result = client.summarise(
        "Erster Satz. Zweiter Satz.",
        target="en",
        language="de",
        method="extractive",
        max_sentences=2,
        max_words=30,
        format="markdown",
        id="s-1",
    )
    assert result == Summary(
        id="s-1",
        summary="ERSTER SATZ",
        language="de",
        target_language="en",
        method="extractive",
        model="fake-summariser+fake-de-en",
        models=("fake-summariser", "fake-de-en"),
        passes=1,
        sentences=2,
    )
    sent = fake.summarisation.requests[-1]
    assert sent.method == summarisation_pb2.SUMMARY_METHOD_EXTRACTIVE
    assert (sent.language, sent.target_language, sent.max_words) == ("de", "en", 30)
    assert sent.format == translation_pb2.TEXT_FORMAT_MARKDOWN
    auto = client.summarise("Long english text. " * 10, language="en")
    assert fake.summarisation.requests[-1].method == summarisation_pb2.SUMMARY_METHOD_UNSPECIFIED
    assert (auto.method, auto.passes, auto.target_language) == ("abstractive", 2, "en")


def test_health_statuses(client: Client) -> None:
    assert client.health() == "SERVING"
    assert client.health("dragoman.v1.SummarisationService") == "NOT_SERVING"
    with pytest.raises(NotFound, match="NOT_FOUND"):
        client.health("no.such.Service")


def test_wait_ready_polls_until_serving(client: Client, fake: FakeServer) -> None:
    fake.health.set("warming.Up", health_pb2.HealthCheckResponse.NOT_SERVING)
    timer = threading.Timer(
        0.4, fake.health.set, ("warming.Up", health_pb2.HealthCheckResponse.SERVING)
    )
    timer.start()
    started = time.monotonic()
    client.wait_ready(5, service="warming.Up", interval=0.05)
    assert 0.3 < time.monotonic() - started < 4
    with pytest.raises(Unavailable, match=r"not serving after 0.3 s \(last: NOT_SERVING\)"):
        client.wait_ready(0.3, service="dragoman.v1.SummarisationService", interval=0.05)


def test_wait_ready_gives_up_on_an_unreachable_server() -> None:
    with Client(unused_address()) as c:
        with pytest.raises(Unavailable, match=r"not serving after 0.5 s \(last: failed to connect"):
            c.wait_ready(0.5, interval=0.05)
