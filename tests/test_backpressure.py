"""Backpressure and deadlines over a real gRPC channel: a full queue refuses new calls at once
(RESOURCE_EXHAUSTED), a call whose deadline passes while queued ends DEADLINE_EXCEEDED and
a cancelled call frees its queued sentences; neither is ever decoded. The model is held by
a gate while a test arranges the queue, so nothing here depends on timing."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dragoman.server.batcher import Batcher
from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import server_config
from tests.support.gate import hold_decoding

WAIT = 10.0
BLOCKER = "The city council approved the new budget on Tuesday evening."
TWO = "Heavy rain is expected this weekend. Scientists have discovered a new species of frog."
THIRD = "The museum will reopen its doors after two years of renovation."


@dataclass
class Held:
    """A running server whose only model decodes nothing until ``release`` is set."""

    server: ServerThread
    stub: pb_grpc.TranslationServiceStub
    batcher: Batcher
    decoded: list[str]
    started: threading.Event
    release: threading.Event
    channel: grpc.Channel


@pytest.fixture
def held(copy_store: Path) -> Iterator[Held]:
    with holding(copy_store) as running:
        yield running


@contextlib.contextmanager
def holding(copy_store: Path, **overrides: object) -> Iterator[Held]:
    config = server_config(
        copy_store, **{"max_queued": 2, "inter_threads": 1, "batch_wait_ms": 0.0,
                       "cache_entries": 0, "preload": ("copy-en-de",), **overrides},
    )
    server = ServerThread(build_service(config), config).start()
    loaded = server.service.registry.acquire("copy-en-de")
    gate = hold_decoding(loaded, WAIT)
    channel = grpc.insecure_channel(server.address)
    try:
        yield Held(server, pb_grpc.TranslationServiceStub(channel), loaded.batcher, gate.decoded,
                   gate.started, gate.release, channel)
    finally:
        gate.release.set()
        channel.close()
        server.stop(5)


def request(text: str) -> pb.TranslateRequest:
    return pb.TranslateRequest(text=text, source_language="en", target_language="de")


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def block_model(held: Held) -> grpc.Future:
    """Start a call that the worker takes and holds: the queue behind it is empty."""
    first = held.stub.Translate.future(request(BLOCKER), timeout=30)
    assert held.started.wait(WAIT)
    wait_until(lambda: held.batcher.queued() == 0)
    return first


def test_full_queue_is_refused_at_once_with_resource_exhausted(
    held: Held, swapcase: Callable[[str], str]
) -> None:
    first = block_model(held)
    second = held.stub.Translate.future(request(TWO), timeout=30)
    wait_until(lambda: held.batcher.queued() == 2)  # the bound
    with pytest.raises(grpc.RpcError) as info:
        held.stub.Translate(request(THIRD), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "2 sentences queued (limit 2)" in info.value.details()
    assert not held.release.is_set()  # refused while the model was still busy: at once
    held.release.set()
    assert first.result(WAIT).text == swapcase(BLOCKER)
    assert second.result(WAIT).text.startswith(swapcase("Heavy rain is expected this weekend."))
    assert THIRD not in held.decoded
    assert held.batcher.stats.rejected == 1


def test_deadline_passed_while_queued_is_deadline_exceeded_and_never_decoded(held: Held) -> None:
    first = block_model(held)
    with pytest.raises(grpc.RpcError) as info:
        held.stub.Translate(request(THIRD), timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: held.batcher.queued() == 0)  # the server dropped the sentence
    held.release.set()
    first.result(WAIT)
    stats = held.batcher.stats
    wait_until(lambda: stats.cancelled + stats.expired == 1)
    assert THIRD not in held.decoded


def test_cancelled_call_frees_its_queued_sentences(held: Held) -> None:
    first = block_model(held)
    doomed = held.stub.Translate.future(request(TWO), timeout=30)
    wait_until(lambda: held.batcher.queued() == 2)
    doomed.cancel()
    wait_until(lambda: held.batcher.queued() == 0)
    assert held.batcher.stats.cancelled == 2
    # The room is free again: a call that the bound refused before is now queued.
    third = held.stub.Translate.future(request(THIRD + " " + BLOCKER), timeout=30)
    wait_until(lambda: held.batcher.queued() == 2)
    held.release.set()
    first.result(WAIT)
    third.result(WAIT)
    assert not any("Heavy rain" in s or "frog" in s for s in held.decoded)


def test_an_http_client_that_hangs_up_frees_its_queued_sentences(copy_store: Path) -> None:
    """Nobody waits for the answer any more, so its sentences must not take decoding time
    (or queue places) from those who do."""
    with holding(copy_store, max_queued=10, http_address="127.0.0.1:0") as held:
        first = block_model(held)
        body = json.dumps({"q": TWO, "source": "en", "target": "de"}).encode()
        http = held.server.handle.http
        assert http is not None
        with socket.create_connection(("127.0.0.1", http.port), WAIT) as sock:
            sock.sendall(b"POST /translate HTTP/1.1\r\nHost: test\r\n"
                         b"Content-Type: application/json\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            wait_until(lambda: held.batcher.queued() == 2)
        wait_until(lambda: held.batcher.queued() == 0)  # hung up: dropped, not decoded
        assert held.batcher.stats.cancelled == 2
        held.release.set()
        first.result(WAIT)
        assert not any("Heavy rain" in s or "frog" in s for s in held.decoded)


def test_the_event_loop_keeps_answering_while_a_batch_decodes(
    held: Held, swapcase: Callable[[str], str]
) -> None:
    first = block_model(held)  # a batcher thread is inside generate and stays there
    health = health_pb2_grpc.HealthStub(held.channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=WAIT).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    languages = held.stub.ListLanguages(pb.ListLanguagesRequest(), timeout=WAIT)
    assert any(p.source_language == "en" and p.target_language == "de" for p in languages.pairs)
    assert not held.release.is_set()  # both answered while the model was busy
    held.release.set()
    assert first.result(WAIT).text == swapcase(BLOCKER)
