"""Issue 16: documents finish in arrival order, interactive sentences go ahead of bulk ones,
bulk alone runs at full batches and is never starved, and admission by time counts only the
work ahead of a call's class.

Deterministic: a gated fake model records the batches it is given while a test arranges the
queue behind a blocker sentence; nothing is timed."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from dragoman.server.batcher import (
    ASSUMED_RATE,
    BULK_EVERY,
    BULK_SLICE_S,
    INTERACTIVE_RECENT_S,
    TOPUP_SHARE,
    Batcher,
    BatchingOptions,
    DecodeRate,
    Priority,
)
from dragoman.server.errors import InvalidInput, Overloaded
from dragoman.server.rpc import messages
from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.server.seq2seq import DecodingOptions, Encoded
from dragoman.v1 import summarisation_pb2 as spb
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import server_config
from tests.test_batcher import WAIT, FakeModel, sized, start_blocked
from tests.test_cli_remote import dragoman
from tests.test_client import running_fake_server

OPTIONS = DecodingOptions(beam_size=2)
INTERACTIVE, BULK = Priority.INTERACTIVE, Priority.BULK


def tags(call: Sequence[tuple[str, ...]]) -> set[str]:
    """Document tags of a recorded call (sentences are named ``<doc>.<n>``)."""
    return {source[0].split(".")[0] for source in call}


def doc(tag: str, sentences: int, size: int = 10) -> list[Encoded]:
    return [sized(f"{tag}.{n}", size) for n in range(sentences)]


def test_an_interactive_sentence_after_1000_bulk_ones_is_in_the_next_batch() -> None:
    model = FakeModel(gate=True)
    batcher, blocker = start_blocked(model, max_batch_tokens=100)
    bulk = batcher.submit(doc("bulk", 1000, size=5), OPTIONS, priority=BULK)
    (urgent,) = batcher.submit([sized("urgent.0", 5)], OPTIONS, priority=INTERACTIVE)
    model.release.set()
    urgent.result(WAIT)
    for fut in [blocker, *bulk]:
        fut.result(WAIT)
    batcher.close(WAIT)
    assert "urgent" in tags(model.calls[1])  # the first batch after the blocker
    # ... and bulk kept it company, but only up to TOPUP_SHARE of the budget: on CPU every
    # token added to a batch adds to its decoding time.
    assert tags(model.calls[1]) == {"urgent", "bulk"}
    assert 5 * len(model.calls[1]) <= 100 * TOPUP_SHARE < 5 * (len(model.calls[1]) + 1)
    # Bulk alone again: full batches.
    assert [len(call) for call in model.calls[2:-1]] == [20] * (len(model.calls) - 3)


class Stepped(FakeModel):
    """Every call waits for its own permit (``step(n)``), so a test decides which worker
    returns first; ``clock`` advances by the call's tokens at ``rate`` tokens/s."""

    def __init__(self, rate: float = 20.0) -> None:
        super().__init__()
        self.now = 0.0
        self.rate = rate
        self.gates = [threading.Event() for _ in range(400)]
        self.entered = threading.Semaphore(0)

    def clock(self) -> float:
        return self.now

    def generate(self, batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
        with self._lock:
            index = len(self.calls)
        out = super().generate(batch, options)
        self.entered.release()
        assert self.gates[index].wait(WAIT), f"call {index} was never let through"
        self.now += sum(len(e.source) for e in batch) / self.rate
        return out

    def step(self, index: int) -> None:
        self.gates[index].set()

    def wait_entered(self, calls: int = 1) -> None:
        for _ in range(calls):
            assert self.entered.acquire(timeout=WAIT)

    def open(self) -> None:
        for gate in self.gates:
            gate.set()


def test_an_interactive_article_beside_bulk_is_spread_over_the_workers_without_strangers() -> None:
    model = Stepped()
    batcher = Batcher(model, BatchingOptions(max_batch_tokens=100, wait_ms=0.0, workers=2))
    try:
        blockers = [batcher.submit([sized(f"block{n}.0", 10)], OPTIONS, priority=BULK)[0]
                    for n in range(2)]
        model.wait_entered(2)  # both workers are decoding a bulk sentence
        bulk = batcher.submit(doc("bulk", 100), OPTIONS, priority=BULK)
        article = batcher.submit(doc("article", 6), OPTIONS, priority=INTERACTIVE)
        model.step(0)  # one worker frees up: it takes half the article, nothing else
        model.wait_entered()
        model.step(1)  # the other frees up while the first decodes: it takes the rest
        model.wait_entered()
        model.open()
        for fut in [*blockers, *bulk, *article]:
            fut.result(WAIT)
    finally:
        model.open()
        batcher.close(WAIT)
    assert [tags(call) for call in model.calls[2:4]] == [{"article"}, {"article"}]
    assert [len(call) for call in model.calls[2:4]] == [3, 3]


@pytest.mark.parametrize(
    ("other_busy_tokens", "first_part"),
    [(100, 6),  # the other worker's batch ends after the article would: all on the free one
     (30, 4)],  # it ends 1 s later: 4 sentences now (done at 2.5 s), 2 on it (done at 2.5 s)
)
def test_an_interactive_article_is_spread_so_that_its_parts_finish_together(
    other_busy_tokens: int, first_part: int
) -> None:
    """With the rate measured (20 tokens/s per worker), the worker that frees up first
    takes the share that finishes when the other worker, once its bulk batch ends, would
    finish the rest (an even split makes the article wait for the longer bulk batch)."""
    model = Stepped(rate=20.0)
    batcher = Batcher(model, BatchingOptions(max_batch_tokens=100, wait_ms=0.0, workers=2),
                      clock=model.clock)
    for _ in range(3):
        batcher.rate.observe(100, 100 / 20.0)
    try:
        (blocker,) = batcher.submit([sized("block.0", 10)], OPTIONS, priority=BULK)
        model.wait_entered()  # one worker: 10 tokens, ends at 0.5 s
        busy = batcher.submit(doc("busy", other_busy_tokens // 10), OPTIONS, priority=BULK)
        model.wait_entered()  # the other: ends at other_busy_tokens / 20 s
        bulk = batcher.submit(doc("bulk", 20), OPTIONS, priority=BULK)
        article = batcher.submit(doc("article", 6), OPTIONS, priority=INTERACTIVE)
        model.step(0)  # the first worker frees up at 0.5 s and takes its share
        model.wait_entered()
        model.step(1)  # the other frees up and takes the rest, if any
        model.open()
        for fut in [blocker, *busy, *bulk, *article]:
            fut.result(WAIT)
    finally:
        model.open()
        batcher.close(WAIT)
    # An even split (what it was) would take 3 and leave 3 to wait for the bulk batch.
    assert tags(model.calls[2]) == {"article"}
    assert len(model.calls[2]) == first_part


def test_bulk_batches_shrink_to_a_slice_while_interactive_calls_are_recent() -> None:
    model = Stepped(rate=20.0)  # tokens/s: a BULK_SLICE_S slice is 20 x BULK_SLICE_S tokens
    model.open()
    slice_sentences = int(20 * BULK_SLICE_S) // 10
    batcher = Batcher(model, BatchingOptions(max_batch_tokens=100, wait_ms=0.0, workers=1),
                      clock=model.clock)
    try:
        # Bulk alone: full batches (and the decoding rate gets measured).
        warm = batcher.submit(doc("warm", 40), OPTIONS, priority=BULK)
        for fut in warm:
            fut.result(WAIT)
        assert {len(call) for call in model.calls} == {10}
        model.gates = [threading.Event() for _ in range(400)]  # hold the next call
        (blocker,) = batcher.submit([sized("block.0", 10)], OPTIONS, priority=BULK)
        model.wait_entered(len(model.calls))
        first = len(model.calls)
        (urgent,) = batcher.submit([sized("urgent.0", 10)], OPTIONS, priority=INTERACTIVE)
        bulk = batcher.submit(doc("bulk", 8), OPTIONS, priority=BULK)  # a few slices' worth
        model.open()
        for fut in [blocker, urgent, *bulk]:
            fut.result(WAIT)
        during = [len(call) for call in model.calls[first + 1:] if tags(call) == {"bulk"}]
        assert during and max(during) <= slice_sentences
        # Once no interactive call came for INTERACTIVE_RECENT_S, bulk batches are full again.
        model.now += INTERACTIVE_RECENT_S + 1
        after = len(model.calls)
        late = batcher.submit(doc("late", 30), OPTIONS, priority=BULK)
        for fut in late:
            fut.result(WAIT)
        assert [len(call) for call in model.calls[after:]] == [10, 10, 10]
    finally:
        model.open()
        batcher.close(WAIT)


def finishing_calls(calls: Sequence[Sequence[tuple[str, ...]]]) -> dict[str, int]:
    """Index of the call in which each document's last sentence was decoded."""
    finished: dict[str, int] = {}
    for index, call in enumerate(calls):
        for tag in tags(call):
            finished[tag] = index
    return finished


def test_documents_finish_in_arrival_order_when_all_are_equal() -> None:
    """Each document needs three batches; submitted first, finished first (before, every
    document advanced a little in every batch and all finished near the end)."""
    model = FakeModel(gate=True)
    batcher, blocker = start_blocked(model, max_batch_tokens=100)
    sizes = [4, 9, 13, 7, 11, 5, 12, 8, 6, 10] * 3  # 30 sentences, mixed lengths
    futures = {
        tag: batcher.submit([sized(f"{tag}.{n}", s) for n, s in enumerate(sizes)], OPTIONS)
        for tag in ("d0", "d1", "d2", "d3", "d4", "d5")
    }
    model.release.set()
    blocker.result(WAIT)
    for futs in futures.values():
        for fut in futs:
            fut.result(WAIT)
    batcher.close(WAIT)
    finished = finishing_calls(model.calls)
    order = sorted(futures, key=lambda tag: finished[tag])
    assert order == list(futures)
    assert [finished[t] for t in futures] == sorted(finished[t] for t in futures)
    # The first document is done in the first third of the work, not at the end.
    assert finished["d0"] <= len(model.calls) // 3


def test_of_documents_arriving_together_the_shorter_finishes_first() -> None:
    """Shortest first among documents that arrive together: a short article sent a moment
    after a long one is not held up behind it (the mean and median latency drop)."""
    model = FakeModel(gate=True)
    batcher, blocker = start_blocked(model, clock=lambda: 0.0, max_batch_tokens=100)
    long = batcher.submit(doc("long", 30), OPTIONS)
    short = batcher.submit(doc("short", 3), OPTIONS)
    model.release.set()
    for fut in [blocker, *long, *short]:
        fut.result(WAIT)
    batcher.close(WAIT)
    finished = finishing_calls(model.calls)
    assert finished["short"] == 1  # the first batch after the blocker
    assert finished["short"] < finished["long"]


def test_a_document_is_overtaken_only_by_shorter_ones_arriving_within_its_decoding_time() -> None:
    """A 300-token document's place in line is its arrival plus 300 tokens at the decoding
    rate (ASSUMED_RATE before one is measured): a short document arriving before that goes
    ahead of it, one arriving after goes behind it, so overtaking is bounded."""
    now = [0.0]
    model = FakeModel(gate=True)
    batcher, blocker = start_blocked(model, clock=lambda: now[0], max_batch_tokens=100)
    long = batcher.submit(doc("long", 30), OPTIONS)  # 300 tokens: in line at 300 / rate
    own_time = 300 / ASSUMED_RATE
    now[0] = 0.5 * own_time
    early = batcher.submit(doc("early", 3), OPTIONS)
    now[0] = 0.99 * own_time  # 30 tokens more: in line after the long document
    late = batcher.submit(doc("late", 3), OPTIONS)
    model.release.set()
    for fut in [blocker, *long, *early, *late]:
        fut.result(WAIT)
    batcher.close(WAIT)
    finished = finishing_calls(model.calls)
    assert finished["early"] < finished["long"]
    first_late = min(n for n, call in enumerate(model.calls) if "late" in tags(call))
    assert first_late >= finished["long"]  # at most topping up the long one's last batch


def test_a_short_document_does_not_wait_for_the_rest_of_a_long_one_being_decoded() -> None:
    model = FakeModel(gate=True)
    batcher = Batcher(model, BatchingOptions(max_batch_tokens=100, wait_ms=0.0),
                      clock=lambda: 0.0)
    long = batcher.submit(doc("long", 50), OPTIONS)  # 500 tokens: the first 100 start at once
    assert model.started.wait(WAIT)
    short = batcher.submit(doc("short", 3), OPTIONS)
    model.release.set()
    for fut in [*long, *short]:
        fut.result(WAIT)
    batcher.close(WAIT)
    assert tags(model.calls[0]) == {"long"}
    assert "short" in tags(model.calls[1])


def test_the_naive_batching_modes_keep_arrival_order() -> None:
    """"request" and "paragraph" exist to be measured against: first come, first served."""
    model = FakeModel(gate=True)
    batcher, blocker = start_blocked(model, max_batch_tokens=100, mode="request")
    long = batcher.submit(doc("long", 30), OPTIONS)
    short = batcher.submit(doc("short", 3), OPTIONS)
    model.release.set()
    for fut in [blocker, *long, *short]:
        fut.result(WAIT)
    batcher.close(WAIT)
    assert [tags(call) for call in model.calls[1:]] == [{"long"}] * 3 + [{"short"}]


def test_bulk_work_alone_fills_every_batch() -> None:
    model = FakeModel(gate=True)
    batcher, blocker = start_blocked(model, max_batch_tokens=100)
    futures = [f for n in range(20) for f in batcher.submit(doc(f"b{n}", 7), OPTIONS, priority=BULK)]
    model.release.set()
    for fut in [blocker, *futures]:
        fut.result(WAIT)
    batcher.close(WAIT)
    # 140 sentences of 10 tokens: 14 full batches of 10, as interactive work would get.
    assert [len(call) for call in model.calls[1:]] == [10] * 14


def test_bulk_is_not_starved_by_constant_interactive_load() -> None:
    """Every batch sees fresh interactive work; the oldest bulk sentence still leads a batch
    within BULK_EVERY + 1 batches, and the bulk document advances at that pace."""

    class Busy(FakeModel):
        """Queues a new interactive document (a full batch's worth) during every call."""

        batcher: Batcher | None = None

        def generate(self, batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
            out = super().generate(batch, options)
            if self.batcher is not None and len(self.calls) < 60:
                self.batcher.submit(doc(f"i{len(self.calls)}", 10), OPTIONS)
            return out

    model = Busy(gate=True)
    batcher, blocker = start_blocked(model, max_batch_tokens=100)
    model.batcher = batcher
    batcher.submit(doc("i0", 10), OPTIONS)
    bulk = batcher.submit(doc("bulk", 20), OPTIONS, priority=BULK)
    model.release.set()
    for fut in [blocker, *bulk]:
        fut.result(WAIT)
    batcher.close(WAIT)
    with_bulk = [n for n, call in enumerate(model.calls) if "bulk" in tags(call)]
    assert with_bulk and with_bulk[0] <= BULK_EVERY + 1
    assert all(b - a <= BULK_EVERY + 1 for a, b in itertools.pairwise(with_bulk))
    assert batcher.stats.bulk_led >= 1
    # Interactive work still went first in the batches bulk did not lead.
    assert sum("bulk" not in tags(call) for call in model.calls[1:]) >= len(with_bulk)


def test_interactive_deadlines_count_only_interactive_work_ahead() -> None:
    """Admission by time (issue 10) with priority: the bulk backlog does not make an
    interactive call late, but it does make a bulk call late."""

    class Clock:
        now = time.monotonic()

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    model = FakeModel(gate=True)
    batcher = Batcher(model, BatchingOptions(max_batch_tokens=100, wait_ms=0.0), clock=clock)
    for _ in range(DecodeRate.MIN_CALLS):
        batcher.rate.observe(100, 1.0)  # 100 tokens/s
    (blocker,) = batcher.submit([sized("blocker", 1)], OPTIONS)
    assert model.started.wait(WAIT)
    bulk = batcher.submit(doc("bulk", 100), OPTIONS, priority=BULK)  # 10 s of work
    urgent = batcher.submit(doc("urgent", 2), OPTIONS, deadline=clock() + 1.0)  # 0.2 s of work
    assert batcher.estimated_wait(0, INTERACTIVE) == pytest.approx(0.2)
    assert batcher.estimated_wait(0, BULK) == pytest.approx(10.2)
    batcher.check_deadline(clock() + 1.0, priority=INTERACTIVE)
    with pytest.raises(Overloaded, match=r"would need about 10\.2 s .* deadline is in 1\.0 s"):
        batcher.check_deadline(clock() + 1.0, priority=BULK)
    with pytest.raises(Overloaded, match="would need about"):
        batcher.submit(doc("late", 1), OPTIONS, deadline=clock() + 1.0, priority=BULK)
    model.release.set()
    for fut in [blocker, *bulk, *urgent]:
        fut.result(WAIT)
    batcher.close(WAIT)


def test_cancelled_and_expired_sentences_leave_their_class_total() -> None:
    model = FakeModel(gate=True)
    batcher, blocker = start_blocked(model, max_batch_tokens=100)
    bulk = batcher.submit(doc("bulk", 3), OPTIONS, priority=BULK)
    for fut in bulk:
        fut.cancel()
    assert batcher.queued() == 0
    for _ in range(DecodeRate.MIN_CALLS):
        batcher.rate.observe(100, 1.0)
    assert batcher.estimated_wait(0, BULK) == 0
    model.release.set()
    blocker.result(WAIT)
    batcher.close(WAIT)


# -- the wire: proto field, defaults per RPC ---------------------------------------------


def test_unspecified_priority_is_the_rpcs_default() -> None:
    req = pb.TranslateRequest(text="x", target_language="de")
    assert messages.translate_input(req).priority is INTERACTIVE
    assert messages.translate_input(req, BULK).priority is BULK
    req.priority = pb.PRIORITY_INTERACTIVE
    assert messages.translate_input(req, BULK).priority is INTERACTIVE
    req.priority = pb.PRIORITY_BULK
    assert messages.translate_input(req).priority is BULK
    assert messages.summarise_input(spb.SummariseRequest(text="x")).priority is INTERACTIVE
    summary = spb.SummariseRequest(text="x", priority=pb.PRIORITY_BULK)
    assert messages.summarise_input(summary).priority is BULK
    with pytest.raises(InvalidInput, match="unknown priority 7"):
        messages.translate_input(pb.TranslateRequest(text="x", priority=7))  # type: ignore[arg-type]


@pytest.fixture
def recording_server(copy_store: Path) -> Iterator[tuple[ServerThread, list[Priority]]]:
    config = server_config(copy_store, inter_threads=1, batch_wait_ms=0.0, cache_entries=0,
                           preload=("copy-en-de",), http_address="127.0.0.1:0")
    server = ServerThread(build_service(config), config).start()
    service = server.service
    seen: list[Priority] = []
    lock = threading.Lock()
    translate = service.translate

    def recording(req, deadline=None):  # type: ignore[no-untyped-def]
        with lock:
            seen.append(req.priority)
        return translate(req, deadline)

    service.translate = recording  # type: ignore[method-assign]
    try:
        yield server, seen
    finally:
        server.stop(5)


def test_unary_calls_are_interactive_and_streams_bulk_unless_they_say(recording_server) -> None:  # type: ignore[no-untyped-def]
    server, seen = recording_server
    text = "The council met on Tuesday."
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranslationServiceStub(channel)
        stub.Translate(pb.TranslateRequest(text=text, source_language="en", target_language="de"),
                       timeout=60)
        stub.Translate(pb.TranslateRequest(text=text, source_language="en", target_language="de",
                                           priority=pb.PRIORITY_BULK), timeout=60)
        replies = list(stub.TranslateStream(iter([
            pb.TranslateRequest(id="a", text=text, source_language="en", target_language="de"),
            pb.TranslateRequest(id="b", text=text, source_language="en", target_language="de",
                                priority=pb.PRIORITY_INTERACTIVE),
        ]), timeout=60))
    assert len(replies) == 2 and all(r.text for r in replies)
    assert seen[:2] == [INTERACTIVE, BULK]
    assert sorted(seen[2:]) == [INTERACTIVE, BULK]


def test_client_and_cli_send_the_priority(recording_server) -> None:  # type: ignore[no-untyped-def]
    from dragoman.client import Client

    server, seen = recording_server
    with Client(server.address) as client:
        client.translate("The council met.", "de", source="en", priority="bulk")
        client.translate("The council met.", "de", source="en")
        list(client.translate_many(["The council met."], "de", source="en"))
        list(client.translate_many(["The council met."], "de", source="en",
                                   priority="interactive"))
        from dragoman.client.errors import InvalidArgument

        with pytest.raises(InvalidArgument, match="priority must be one of interactive, bulk"):
            client.translate("x", "de", priority="urgent")
    assert seen == [BULK, INTERACTIVE, BULK, INTERACTIVE]
    done = dragoman("--server", server.address, "translate", "--to", "de", "--from", "en",
                    "--priority", "bulk", "-", stdin="The council met.")
    assert done.returncode == 0, done.stderr
    assert seen[-1] is BULK
    done = dragoman("--server", server.address, "translate", "--to", "de", "--priority", "soon",
                    "-", stdin="x")
    assert done.returncode == 2 and "invalid choice: 'soon'" in done.stderr


def test_cli_summarise_sends_the_priority() -> None:
    with running_fake_server() as fake:
        done = dragoman("--server", fake.address, "summarise", "--priority", "bulk", "-",
                        stdin="One sentence. Another one.")
        assert done.returncode == 0, done.stderr
        assert fake.summarisation.requests[-1].priority == pb.PRIORITY_BULK
        done = dragoman("--server", fake.address, "summarise", "-", stdin="One. Two.")
        assert fake.summarisation.requests[-1].priority == pb.PRIORITY_UNSPECIFIED


def test_http_calls_are_interactive(recording_server) -> None:  # type: ignore[no-untyped-def]
    import requests

    server, seen = recording_server
    reply = requests.post(f"{server.http_url}/translate", timeout=60,
                          json={"q": "The council met.", "source": "en", "target": "de"})
    assert reply.status_code == 200, reply.text
    assert seen == [INTERACTIVE]
