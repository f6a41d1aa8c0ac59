"""Metrics, request ids and JSON logs over a real server (gRPC and HTTP on port 0).

The Prometheus endpoints are scraped with urllib, as Prometheus would, and parsed with
prometheus_client's own parser; every assertion compares a scrape after traffic with one
before it.
"""

from __future__ import annotations

import io
import json
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dragoman.server.observability import logs
from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import server_config

TRANSLATE = ("dragoman.v1.TranslationService", "Translate")


@pytest.fixture(scope="module")
def observed(copy_store: Path) -> Iterator[ServerThread]:
    config = server_config(copy_store, metrics_address="127.0.0.1:0",
                           http_address="127.0.0.1:0")
    with ServerThread(build_service(config), config) as running:
        yield running


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def metrics_url(server: ServerThread) -> str:
    assert server.handle is not None and server.handle.metrics_server is not None
    return f"http://127.0.0.1:{server.handle.metrics_server.port}/metrics"


def test_metrics_move_with_grpc_traffic(observed: ServerThread) -> None:
    before = scrape(metrics_url(observed))
    assert value(before, "dragoman_model_loaded", model="copy-en-de", task="translate") == 1
    assert value(before, "process_resident_memory_bytes") > 0
    with grpc.insecure_channel(observed.address) as channel:
        stub = pb_grpc.TranslationServiceStub(channel)
        for n in range(5):
            stub.Translate(pb.TranslateRequest(
                text=f"Metrics sentence number {n}. Another one, number {n}.",
                source_language="en", target_language="de"), timeout=30)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Translate(pb.TranslateRequest(text="", target_language="de"), timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = scrape(metrics_url(observed))
    calls = "dragoman_grpc_calls_total"
    ok = dict(zip(("service", "method"), TRANSLATE), code="OK")
    bad = dict(ok, code="INVALID_ARGUMENT")
    assert value(after, calls, **ok) - value(before, calls, **ok) == 5
    assert value(after, calls, **bad) - value(before, calls, **bad) == 1
    latency = "dragoman_grpc_call_duration_seconds_count"
    where = dict(zip(("service", "method"), TRANSLATE))
    assert value(after, latency, **where) - value(before, latency, **where) == 6
    assert value(after, "dragoman_grpc_call_duration_seconds_sum", **where) > value(
        before, "dragoman_grpc_call_duration_seconds_sum", **where)
    model = {"model": "copy-en-de"}
    grown = value(after, "dragoman_batch_sentences_sum", **model) - value(
        before, "dragoman_batch_sentences_sum", **model)
    assert grown == 10  # two sentences a call, each decoded once (no cache hits yet)
    assert value(after, "dragoman_batch_sentences_count", **model) > value(
        before, "dragoman_batch_sentences_count", **model)
    assert value(after, "dragoman_batch_source_tokens_sum", **model) > value(
        before, "dragoman_batch_source_tokens_sum", **model)
    assert value(after, "dragoman_output_tokens_total", **model) > value(
        before, "dragoman_output_tokens_total", **model)
    assert value(after, "dragoman_batch_padding_ratio_count", **model) > value(
        before, "dragoman_batch_padding_ratio_count", **model)
    assert value(after, "dragoman_cache_misses_total") - value(before, "dragoman_cache_misses_total") == 10
    assert ("dragoman_documents_in_flight", ()) in after
    assert ("dragoman_model_queued_sentences", (("model", "copy-en-de"),)) in after
    assert value(after, "dragoman_model_load_duration_seconds", **model) > 0


def test_cache_hits_are_counted(observed: ServerThread) -> None:
    with grpc.insecure_channel(observed.address) as channel:
        stub = pb_grpc.TranslationServiceStub(channel)
        request = pb.TranslateRequest(text="A cached sentence for the counters.",
                                      source_language="en", target_language="de")
        stub.Translate(request, timeout=30)
        before = scrape(metrics_url(observed))
        stub.Translate(request, timeout=30)
    after = scrape(metrics_url(observed))
    assert value(after, "dragoman_cache_hits_total") - value(before, "dragoman_cache_hits_total") == 1


def test_request_id_is_returned_and_logged_from_the_executor(
    observed: ServerThread, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller's id comes back in the metadata, and a line logged by the service (on the
    preparation pool, not the event loop) carries it; a call without one gets a fresh id."""
    stream = io.StringIO()
    handler = logs.make_handler("json", stream)
    service_logger = logging.getLogger("dragoman.server.service")
    service_logger.addHandler(handler)
    monkeypatch.setattr(service_logger, "level", logging.INFO)
    service = observed.service
    original = service.translate

    def logged_translate(req, deadline=None):  # type: ignore[no-untyped-def]
        service_logger.info("preparing %d characters", len(req.text))
        return original(req, deadline)

    monkeypatch.setattr(service, "translate", logged_translate)
    try:
        with grpc.insecure_channel(observed.address) as channel:
            stub = pb_grpc.TranslationServiceStub(channel)
            request = pb.TranslateRequest(text="Request ids travel.", source_language="en",
                                          target_language="de")
            _, call = stub.Translate.with_call(request, timeout=30,
                                               metadata=(("x-request-id", "trace-me-42"),))
            assert ("x-request-id", "trace-me-42") in tuple(call.initial_metadata())
            _, call = stub.Translate.with_call(request, timeout=30)
            fresh = dict(call.initial_metadata())["x-request-id"]
            with pytest.raises(grpc.RpcError) as failed:
                stub.Translate(pb.TranslateRequest(text="x" * 10, target_language="xx"),
                               timeout=30, metadata=(("x-request-id", "bad-call-7"),))
            assert ("x-request-id", "bad-call-7") in tuple(failed.value.trailing_metadata())
    finally:
        service_logger.removeHandler(handler)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["request_id"] for r in records] == ["trace-me-42", fresh, "bad-call-7"]
    assert len(fresh) == 32 and fresh != "trace-me-42"
    assert records[0]["message"] == "preparing 19 characters"


def test_http_metrics_and_request_ids(observed: ServerThread) -> None:
    url = observed.http_url
    before = scrape(url + "/metrics")
    body = json.dumps({"q": "Hello over HTTP.", "source": "en", "target": "de"}).encode()
    request = urllib.request.Request(url + "/translate", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Request-Id": "http-req-1"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert response.headers["X-Request-Id"] == "http-req-1"
    with urllib.request.urlopen(url + "/languages", timeout=30) as response:
        assert len(response.headers["X-Request-Id"]) == 32
    after = scrape(url + "/metrics")
    key = {"route": "/translate", "method": "POST", "status": "200"}
    assert value(after, "dragoman_http_requests_total", **key) - value(
        before, "dragoman_http_requests_total", **key) == 1
    where = {"route": "/translate", "method": "POST"}
    assert value(after, "dragoman_http_request_duration_seconds_count", **where) - value(
        before, "dragoman_http_request_duration_seconds_count", **where) == 1
    # Both endpoints read the same registry: HTTP's translation shows on --metrics too.
    assert value(scrape(metrics_url(observed)), "dragoman_http_requests_total", **key) == value(
        after, "dragoman_http_requests_total", **key)


def test_servers_in_one_process_keep_their_own_series(copy_store: Path) -> None:
    """Per-server registries: a second server starts (no duplicate-name error) and counts
    only its own calls."""
    config = server_config(copy_store, metrics_address="127.0.0.1:0")
    with ServerThread(build_service(config), config) as second:
        with grpc.insecure_channel(second.address) as channel:
            pb_grpc.TranslationServiceStub(channel).ListLanguages(pb.ListLanguagesRequest(),
                                                                  timeout=30)
        samples = scrape(metrics_url(second))
    listed = {"service": TRANSLATE[0], "method": "ListLanguages", "code": "OK"}
    assert value(samples, "dragoman_grpc_calls_total", **listed) == 1
    assert value(samples, "dragoman_grpc_calls_total", **dict(listed, method="Translate")) == 0


def test_metrics_address_in_use_is_a_clear_error(copy_store: Path, observed: ServerThread) -> None:
    from dragoman.server.errors import DragomanError

    assert observed.handle is not None and observed.handle.metrics_server is not None
    taken = f"127.0.0.1:{observed.handle.metrics_server.port}"
    config = server_config(copy_store, metrics_address=taken)
    with pytest.raises(DragomanError, match="cannot serve metrics on 127.0.0.1:"):
        ServerThread(build_service(config), config).start()
