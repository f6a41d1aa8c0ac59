"""OpenTelemetry spans: one per call and one per CTranslate2 generate call when the SDK is
there, and nothing breaks (or is imported) when it is not."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from dragoman.server.observability import tracing
from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import server_config

ROOT = Path(__file__).resolve().parent.parent

WITHOUT_OTEL = textwrap.dedent("""
    import sys
    sys.modules["opentelemetry"] = None  # as if the [otel] extra were not installed
    import grpc
    from dragoman.server.observability import tracing
    from dragoman.server.rpc.app import ServerThread, build_service
    from dragoman.v1 import translation_pb2 as pb, translation_pb2_grpc as pb_grpc
    from tests.conftest import server_config

    assert tracing.configure_tracing({"OTEL_TRACES_EXPORTER": "otlp"}) is False
    config = server_config(sys.argv[1])
    with ServerThread(build_service(config), config) as server:
        with grpc.insecure_channel(server.address) as channel:
            reply = pb_grpc.TranslationServiceStub(channel).Translate(pb.TranslateRequest(
                text="No tracing here.", source_language="en", target_language="de"), timeout=30)
    assert tracing._get_tracer() is None
    assert not any(name.startswith("opentelemetry.") for name in sys.modules)
    print(reply.text)
""")


def test_without_opentelemetry_everything_works(copy_store: Path, swapcase) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run([sys.executable, "-c", WITHOUT_OTEL, str(copy_store)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == swapcase("No tracing here.")
    assert "the SDK is missing" in done.stderr


@pytest.fixture()
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """An in-memory exporter behind the tracer the server uses (not the global provider,
    which a process can set only once)."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("dragoman"))
    yield exporter
    provider.shutdown()


def test_spans_per_call_and_per_batch(spans, copy_store: Path) -> None:  # type: ignore[no-untyped-def]
    config = server_config(copy_store)
    parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with ServerThread(build_service(config), config) as server:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.TranslationServiceStub(channel)
            stub.Translate(pb.TranslateRequest(text="Traced sentence one. And two.",
                                               source_language="en", target_language="de"),
                           timeout=30, metadata=(
                               ("traceparent", f"00-{parent_trace}-00f067aa0ba902b7-01"),
                               ("x-request-id", "traced-1")))
            with pytest.raises(grpc.RpcError):
                stub.Translate(pb.TranslateRequest(text="", target_language="de"), timeout=30)
    finished = spans.get_finished_spans()
    calls = [s for s in finished if s.name == "dragoman.v1.TranslationService/Translate"]
    assert len(calls) == 2
    ok, bad = sorted(calls, key=lambda s: s.start_time)
    assert ok.attributes["rpc.grpc.status_code_name"] == "OK"
    assert ok.attributes["dragoman.request_id"] == "traced-1"
    assert format(ok.context.trace_id, "032x") == parent_trace  # the caller's trace goes on
    assert bad.attributes["rpc.grpc.status_code_name"] == "INVALID_ARGUMENT"
    assert bad.status.status_code.name == "ERROR"
    batches = [s for s in finished if s.name == "ctranslate2.generate"]
    assert batches and all(s.attributes["dragoman.model"] == "copy-en-de" for s in batches)
    assert sum(s.attributes["dragoman.sentences"] for s in batches) == 2


def test_configure_tracing_only_when_asked() -> None:
    assert tracing.configure_tracing({}) is False
    assert tracing.configure_tracing({"OTEL_SDK_DISABLED": "true",
                                      "OTEL_TRACES_EXPORTER": "console"}) is False
    pytest.importorskip("opentelemetry.sdk")
    script = ("from dragoman.server.observability.tracing import configure_tracing, span\n"
              "assert configure_tracing({'OTEL_TRACES_EXPORTER': 'console'})\n"
              "with span('hello'): pass\n"
              "from opentelemetry import trace\n"
              "trace.get_tracer_provider().shutdown()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"name": "hello"' in done.stdout
