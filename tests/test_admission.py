"""Defect 9: admission by time. The batcher measures its decoding rate and refuses at once a
call that cannot be decoded before its deadline; before the rate is known nothing is refused;
``--max-request-seconds`` caps any call's time in the server and drops its work.

The rate is driven by a fake clock the fake model advances (or injected into a real server's
batcher), and a gate holds the model while a test arranges the queue: no timed assertions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from dragoman.server.batcher import Batcher, BatchingOptions, DecodeRate
from dragoman.server.errors import Overloaded
from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.server.seq2seq import DecodingOptions, Encoded
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import server_config
from tests.support.gate import hold_decoding

OPTIONS = DecodingOptions(beam_size=1)
WAIT = 10.0
RATE = 100.0  # tokens per second the fake model "decodes" at


class Clock:
    """Time that passes only while the fake model "decodes" (it starts at the real monotonic
    time, so deadlines set on it are also in the future for the batcher's expiry checks)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.offset = 0.0

    def __call__(self) -> float:
        return self.start + self.offset


class TimedModel:
    """Reverses its input; each call advances the clock by tokens / RATE. ``gate`` holds
    calls until released (set by default)."""

    name = "timed"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def generate(self, batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
        self.started.set()
        assert self.release.wait(WAIT)
        self.clock.offset += sum(len(e.source) for e in batch) / RATE
        self.calls += 1
        return [tuple(reversed(e.source)) for e in batch]


def sized(tag: str, n: int) -> Encoded:
    return Encoded(tuple(f"{tag}{i}" for i in range(n)))


@pytest.fixture
def timed() -> Iterator[tuple[Batcher, TimedModel, Clock]]:
    clock = Clock()
    model = TimedModel(clock)
    batcher = Batcher(model, BatchingOptions(max_batch_tokens=100, wait_ms=0.0, workers=1),
                      clock=clock)
    yield batcher, model, clock
    model.release.set()
    batcher.close(WAIT)


def warm_up(batcher: Batcher) -> None:
    for n in range(DecodeRate.MIN_CALLS):
        (fut,) = batcher.submit([sized(f"w{n}", 50)], OPTIONS)
        fut.result(WAIT)


def test_rate_is_unknown_until_measured_and_then_follows_the_model(timed) -> None:  # type: ignore[no-untyped-def]
    batcher, _, _ = timed
    assert batcher.rate.per_second() is None
    assert batcher.estimated_wait(1000) is None
    warm_up(batcher)
    assert batcher.rate.per_second() == pytest.approx(RATE)
    assert batcher.estimated_wait(500) == pytest.approx(5.0)


def test_nothing_is_refused_before_the_rate_is_known(timed) -> None:  # type: ignore[no-untyped-def]
    batcher, _, clock = timed
    futures = batcher.submit([sized("big", 5000)], OPTIONS, deadline=clock() + 0.001)
    assert len(futures) == 1
    assert batcher.stats.late == 0


def test_a_call_that_cannot_finish_before_its_deadline_is_refused_at_once(timed) -> None:  # type: ignore[no-untyped-def]
    batcher, model, clock = timed
    warm_up(batcher)
    model.release.clear()
    model.started.clear()
    (blocker,) = batcher.submit([sized("blocker", 10)], OPTIONS)
    assert model.started.wait(WAIT)
    queued = batcher.submit([sized(f"q{n}", 100) for n in range(10)], OPTIONS)  # 10 s of work
    calls = model.calls
    with pytest.raises(Overloaded, match=r"would need about 10\.2 s .* deadline is in 5\.0 s"):
        batcher.submit([sized("late", 20)], OPTIONS, deadline=clock() + 5.0)
    assert batcher.stats.late == 1
    # The cheap check callers make before preparing a request sees the queue alone.
    with pytest.raises(Overloaded, match=r"would need about 10\.0 s for this call \(1000 tokens queued at"):
        batcher.check_deadline(clock() + 5.0)
    batcher.check_deadline(clock() + 11.0)
    batcher.check_deadline(None)
    assert batcher.stats.late == 2
    # Room before the deadline, or no deadline at all: admitted.
    ok = batcher.submit([sized("fits", 20)], OPTIONS, deadline=clock() + 60.0)
    free = batcher.submit([sized("free", 20)], OPTIONS)
    # A single huge input (the 100k-character word) is refused on an empty queue too.
    with pytest.raises(Overloaded, match="would need about"):
        batcher.submit([sized("huge", 3000)], OPTIONS, deadline=clock() + 20.0)
    model.release.set()
    for fut in [blocker, *queued, *ok, *free]:
        fut.result(WAIT)
    assert model.calls > calls
    assert batcher.stats.late == 3


# -- over gRPC ---------------------------------------------------------------------------


@pytest.fixture
def slow_server(copy_store: Path) -> Iterator[tuple[ServerThread, Batcher]]:
    config = server_config(copy_store, inter_threads=1, batch_wait_ms=0.0, cache_entries=0,
                           preload=("copy-en-de",))
    server = ServerThread(build_service(config), config).start()
    batcher = server.service.registry.acquire("copy-en-de").batcher
    try:
        yield server, batcher
    finally:
        server.stop(5)


def test_grpc_refuses_a_call_it_cannot_finish_in_time_with_resource_exhausted(slow_server) -> None:  # type: ignore[no-untyped-def]
    server, batcher = slow_server
    for _ in range(DecodeRate.MIN_CALLS):  # as measured on a model doing 5 tokens/s
        batcher.rate.observe(200, 40.0)
    text = "The city council approved the new budget on Tuesday evening. " * 4
    request = pb.TranslateRequest(text=text, source_language="en", target_language="de")
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranslationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Translate(request, timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "would need about" in info.value.details()
        assert batcher.stats.calls == 0 and batcher.stats.late == 1
        # The same call with time enough is served.
        assert stub.Translate(request, timeout=120).text
    # Served once, the pair is known: the next calls are checked on the event loop, before
    # any worker thread (an unknown pair or a detected source is left to translate()).
    service = server.service
    with pytest.raises(Overloaded, match="would need about"):
        service.refuse_if_late("en", "de", "", time.monotonic() - 1.0)
    service.refuse_if_late("en", "fr", "", time.monotonic() - 1.0)
    service.refuse_if_late("", "de", "", time.monotonic() - 1.0)
    service.refuse_if_late("en", "de", "", None)


def test_max_request_seconds_ends_a_call_and_drops_its_work(copy_store: Path) -> None:
    config = server_config(copy_store, inter_threads=1, batch_wait_ms=0.0, cache_entries=0,
                           max_request_seconds=0.5, preload=("copy-en-de",))
    server = ServerThread(build_service(config), config).start()
    loaded = server.service.registry.acquire("copy-en-de")
    gate = hold_decoding(loaded, WAIT)
    decoded, started, release = gate.decoded, gate.started, gate.release
    blocker = pb.TranslateRequest(text="The bridge was closed.", source_language="en",
                                  target_language="de")
    victim = pb.TranslateRequest(text="Heavy rain is expected this weekend.",
                                 source_language="en", target_language="de")
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.TranslationServiceStub(channel)
            held = stub.Translate.future(blocker, timeout=WAIT)
            assert started.wait(WAIT)
            with pytest.raises(grpc.RpcError) as info:
                stub.Translate(victim, timeout=WAIT)  # the server's cap is shorter
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "--max-request-seconds 0.5" in info.value.details()
            assert loaded.batcher.queued() == 0  # its sentence left the queue
            release.set()
            with pytest.raises(grpc.RpcError):
                held.result()  # decoding outlived the cap too
        assert decoded == ["The bridge was closed."]
    finally:
        release.set()
        server.stop(5)
