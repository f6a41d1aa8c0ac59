"""The batcher: results reach the right request in order under heavy concurrency, batches
mix requests within a token budget and group similar lengths, deadlines, cancellation and
the queue bound are honoured before decoding. No timing assertions: a gate holds the model
while a test arranges the queue, and bounded waits only keep a broken build from hanging."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from pathlib import Path
from typing import Any

import pytest

from dragoman.server.batcher import Batcher, BatchingOptions
from dragoman.server.errors import DeadlineExceeded, ModelFailed, Overloaded, Unavailable
from dragoman.server.seq2seq import DecodingOptions, Encoded, RuntimeOptions, Seq2SeqModel
from dragoman.server.store import ModelStore

OPTIONS = DecodingOptions(beam_size=2)
WAIT = 10.0  # upper bound for waits that only fail a broken build


class FakeModel:
    """A Generator whose output is its input reversed; records every call.

    ``gate`` (when set) holds the first call until released, so a test can fill the queue
    behind it; ``jitter`` sleeps a random few milliseconds per call to shuffle thread timing.
    """

    def __init__(self, *, gate: bool = False, jitter: float = 0.0, seed: int = 0) -> None:
        self.name = "fake"
        self.calls: list[list[tuple[str, ...]]] = []
        self.options: list[DecodingOptions] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not gate:
            self.release.set()
        self._jitter = jitter
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def generate(self, batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
        with self._lock:
            self.calls.append([e.source for e in batch])
            self.options.append(options)
            pause = self._rng.uniform(0, self._jitter)
        self.started.set()
        assert self.release.wait(WAIT), "the test never released the model"
        if pause:
            time.sleep(pause)
        return [tuple(reversed(e.source)) for e in batch]

    def decoded(self) -> list[tuple[str, ...]]:
        return [source for call in self.calls for source in call]


def enc(*tokens: str) -> Encoded:
    return Encoded(tuple(tokens))


def sized(tag: str, n: int) -> Encoded:
    """A source of ``n`` tokens whose first token names it."""
    return Encoded((tag, *(f"{tag}{i}" for i in range(1, n))))


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def submit_from_threads(
    batcher: Batcher, requests: Sequence[Sequence[Any]], encode: Callable[[Any], Encoded],
    options: DecodingOptions, decode: Callable[[tuple[str, ...]], Any], *, clients: int,
    wait: float,
) -> dict[int, list[Any]]:
    """Submit every request from ``clients`` threads at once; each thread waits for its
    results before its next request. Closes the batcher; re-raises the first client error."""
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def client(indexes: range) -> None:
        try:
            for r in indexes:
                futures = batcher.submit([encode(s) for s in requests[r]], options)
                results[r] = [decode(f.result(wait)) for f in futures]
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(range(i, len(requests), clients),))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(wait)
    batcher.close(WAIT)
    assert not errors, errors[0]
    return results


@pytest.fixture
def gated() -> FakeModel:
    return FakeModel(gate=True)


def start_blocked(
    model: FakeModel, clock: Callable[[], float] = time.monotonic, **options: object
) -> tuple[Batcher, Future[tuple[str, ...]]]:
    """A one-worker batcher whose worker is stuck decoding a blocker sentence."""
    batcher = Batcher(model, BatchingOptions(**{"wait_ms": 0.0, **options}),  # type: ignore[arg-type]
                      clock=clock)
    (blocker,) = batcher.submit([enc("blocker")], OPTIONS)
    assert model.started.wait(WAIT)
    return batcher, blocker


def test_results_reach_the_right_request_in_order_under_heavy_concurrency() -> None:
    model = FakeModel(jitter=0.003, seed=1)
    batcher = Batcher(model, BatchingOptions(max_batch_tokens=60, wait_ms=1.0, workers=3))
    rng = random.Random(2)
    requests = [
        [tuple(f"r{r}s{s}t{t}" for t in range(rng.randint(1, 25))) for s in range(rng.randint(1, 12))]
        for r in range(240)
    ]
    results = submit_from_threads(
        batcher, requests, lambda s: Encoded(s), OPTIONS, lambda out: out, clients=24, wait=60)
    for r, sentences in enumerate(requests):
        assert results[r] == [tuple(reversed(s)) for s in sentences], f"request {r}"
    decoded = model.decoded()
    assert len(decoded) == len(set(decoded)) == sum(len(r) for r in requests)  # each once
    assert batcher.stats.sentences == len(decoded)
    assert batcher.queued() == 0


def test_concurrent_requests_share_one_call(gated: FakeModel) -> None:
    batcher, blocker = start_blocked(gated)
    a = batcher.submit([enc("a1"), enc("a2")], OPTIONS)
    b = batcher.submit([enc("b1")], OPTIONS)
    c = batcher.submit([enc("c1"), enc("c2"), enc("c3")], OPTIONS)
    gated.release.set()
    assert [f.result(WAIT) for f in a + b + c] == [("a1",), ("a2",), ("b1",), ("c1",), ("c2",), ("c3",)]
    batcher.close(WAIT)
    assert len(gated.calls) == 2
    assert sorted(gated.calls[1]) == [("a1",), ("a2",), ("b1",), ("c1",), ("c2",), ("c3",)]


def test_backlog_batches_stay_in_budget_and_group_similar_lengths(gated: FakeModel) -> None:
    batcher, _ = start_blocked(gated, max_batch_tokens=80)
    sizes = {"A": 10, "B": 40, "C": 11, "D": 41, "E": 10, "F": 40}
    futures = {tag: batcher.submit([sized(tag, n)], OPTIONS)[0] for tag, n in sizes.items()}
    gated.release.set()
    for tag, fut in futures.items():
        assert fut.result(WAIT) == tuple(reversed(sized(tag, sizes[tag]).source))
    batcher.close(WAIT)
    batches = [sorted(source[0] for source in call) for call in gated.calls[1:]]
    # FIFO packing would pair A with B (30 tokens of padding) and C with D; the oldest
    # sentence goes first with the lengths nearest to it.
    assert batches == [["A", "C", "E"], ["B", "F"], ["D"]]
    for call in gated.calls:
        assert len(call) * max(len(s) for s in call) <= 80 or len(call) == 1
    assert batcher.stats.padded_tokens - batcher.stats.tokens == 2  # A and E pad to C


def test_a_sentence_over_the_budget_is_decoded_alone_not_cut(gated: FakeModel) -> None:
    batcher, _ = start_blocked(gated, max_batch_tokens=8)
    big = sized("X", 30)
    (fut,) = batcher.submit([big], OPTIONS)
    gated.release.set()
    assert fut.result(WAIT) == tuple(reversed(big.source))
    batcher.close(WAIT)
    assert gated.calls[1] == [big.source]


def test_idle_workers_split_one_document() -> None:
    both = threading.Barrier(2)

    class Paired(FakeModel):
        def generate(self, batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
            both.wait(WAIT)  # raises BrokenBarrierError unless two calls run at once
            return super().generate(batch, options)

    model = Paired()
    batcher = Batcher(model, BatchingOptions(wait_ms=0.0, workers=2))
    doc = [sized(f"s{i}", 10) for i in range(4)]
    futures = batcher.submit(doc, OPTIONS)
    assert [f.result(WAIT) for f in futures] == [tuple(reversed(e.source)) for e in doc]
    batcher.close(WAIT)
    assert sorted(len(call) for call in model.calls) == [2, 2]


def test_options_are_never_mixed_in_one_call(gated: FakeModel) -> None:
    batcher, _ = start_blocked(gated)
    other = DecodingOptions(beam_size=5)
    first = batcher.submit([enc("x1"), enc("x2")], OPTIONS)
    second = batcher.submit([enc("y1")], other)
    third = batcher.submit([enc("x3")], OPTIONS)
    gated.release.set()
    for f in first + second + third:
        f.result(WAIT)
    batcher.close(WAIT)
    # (the one-sentence document goes first: shortest first among documents arriving together)
    calls = sorted((sorted(call), options)
                   for call, options in zip(gated.calls[1:], gated.options[1:], strict=True))
    assert calls == [([("x1",), ("x2",), ("x3",)], OPTIONS), ([("y1",)], other)]


def test_batching_off_decodes_request_by_request(gated: FakeModel) -> None:
    batcher, _ = start_blocked(gated, mode="request")
    a = batcher.submit([enc("a1"), enc("a2")], OPTIONS)
    b = batcher.submit([enc("b1")], OPTIONS)
    gated.release.set()
    for f in a + b:
        f.result(WAIT)
    batcher.close(WAIT)
    assert gated.calls[1:] == [[("a1",), ("a2",)], [("b1",)]]


def test_deadline_passed_in_the_queue_is_dropped_before_decoding(gated: FakeModel) -> None:
    batcher, blocker = start_blocked(gated)
    deadline = time.monotonic() + 0.05
    late = batcher.submit([enc("late1"), enc("late2")], OPTIONS, deadline)
    on_time = batcher.submit([enc("fine")], OPTIONS, time.monotonic() + 60)
    wait_until(lambda: time.monotonic() > deadline)
    gated.release.set()
    for fut in late:
        with pytest.raises(DeadlineExceeded, match="deadline passed while the text was queued"):
            fut.result(WAIT)
    assert on_time[0].result(WAIT) == ("fine",)
    blocker.result(WAIT)
    batcher.close(WAIT)
    assert ("late1",) not in gated.decoded() and ("late2",) not in gated.decoded()
    assert batcher.stats.expired == 2


def test_cancelled_sentences_leave_the_queue_at_once_and_are_never_decoded(gated: FakeModel) -> None:
    batcher, blocker = start_blocked(gated)
    doomed = batcher.submit([enc("gone1"), enc("gone2"), enc("gone3")], OPTIONS)
    kept = batcher.submit([enc("kept")], OPTIONS)
    assert batcher.queued() == 4
    assert all(f.cancel() for f in doomed)
    assert batcher.queued() == 1  # freed before the model is free again
    gated.release.set()
    assert kept[0].result(WAIT) == ("kept",)
    blocker.result(WAIT)
    batcher.close(WAIT)
    assert not any(s[0].startswith("gone") for s in gated.decoded())
    assert batcher.stats.cancelled == 3
    for f in doomed:
        with pytest.raises(CancelledError):
            f.result(0)


def test_full_queue_refuses_at_once_and_frees_room_on_cancel(gated: FakeModel) -> None:
    batcher, _ = start_blocked(gated, max_queued=4)
    first = batcher.submit([enc("q1"), enc("q2"), enc("q3")], OPTIONS)
    with pytest.raises(Overloaded, match=r"3 sentences queued \(limit 4\)"):
        batcher.submit([enc("r1"), enc("r2")], OPTIONS)
    assert batcher.stats.rejected == 1
    fits = batcher.submit([enc("q4")], OPTIONS)
    first[0].cancel()
    room = batcher.submit([enc("q5")], OPTIONS)
    gated.release.set()
    assert [f.result(WAIT) for f in first[1:] + fits + room] == [("q2",), ("q3",), ("q4",), ("q5",)]
    batcher.close(WAIT)
    assert ("r1",) not in gated.decoded()


def test_expired_sentences_make_room_for_new_calls(gated: FakeModel) -> None:
    batcher, _ = start_blocked(gated, max_queued=2)
    deadline = time.monotonic() + 0.05
    stale = batcher.submit([enc("old1"), enc("old2")], OPTIONS, deadline)
    wait_until(lambda: time.monotonic() > deadline)
    fresh = batcher.submit([enc("new")], OPTIONS)
    for f in stale:
        with pytest.raises(DeadlineExceeded):
            f.result(WAIT)
    gated.release.set()
    assert fresh[0].result(WAIT) == ("new",)
    batcher.close(WAIT)


def test_a_request_larger_than_the_bound_is_taken_on_an_empty_queue() -> None:
    model = FakeModel()
    batcher = Batcher(model, BatchingOptions(max_queued=2, wait_ms=0.0))
    futures = batcher.submit([enc("a"), enc("b"), enc("c")], OPTIONS)
    assert [f.result(WAIT) for f in futures] == [("a",), ("b",), ("c",)]
    batcher.close(WAIT)


def test_model_errors_reach_every_request_of_the_batch(gated: FakeModel) -> None:
    class Broken(FakeModel):
        def generate(self, batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
            super().generate(batch, options)
            raise RuntimeError("decoder exploded")

    model = Broken(gate=True)
    batcher, _ = start_blocked(model)
    a = batcher.submit([enc("a")], OPTIONS)
    b = batcher.submit([enc("b")], OPTIONS)
    model.release.set()
    for f in a + b:
        with pytest.raises(ModelFailed, match="model fake failed on this text"):
            f.result(WAIT)
    batcher.close(WAIT)


def test_one_bad_input_does_not_fail_its_batch_mates(gated: FakeModel) -> None:
    """CTranslate2 errors fail a whole call; the batcher retries each input alone so only
    the culprit's request sees the error."""

    class Picky(FakeModel):
        def generate(self, batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
            out = super().generate(batch, options)
            if any(e.source == ("bad",) for e in batch):
                raise RuntimeError("No position encodings are defined for positions >= 512")
            return out

    model = Picky(gate=True)
    batcher, _ = start_blocked(model)
    good = batcher.submit([enc("x", "y"), enc("z")], OPTIONS)
    bad = batcher.submit([enc("bad")], OPTIONS)
    model.release.set()
    assert [f.result(WAIT) for f in good] == [("y", "x"), ("z",)]
    with pytest.raises(ModelFailed):
        bad[0].result(WAIT)
    shared = {("x", "y"), ("z",), ("bad",)}
    assert any(set(call) == shared for call in model.calls)  # the shared call failed first
    batcher.close(WAIT)


def test_a_short_answer_from_the_model_is_an_error_not_a_truncation() -> None:
    class Short(FakeModel):
        def generate(self, batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
            return super().generate(batch, options)[:-1]

    batcher = Batcher(Short(), BatchingOptions(wait_ms=50.0))
    futures = batcher.submit([enc("a"), enc("b")], OPTIONS)
    for f in futures:
        with pytest.raises(ModelFailed):
            f.result(WAIT)
    batcher.close(WAIT)


def test_close_finishes_queued_work_then_refuses(gated: FakeModel) -> None:
    batcher, blocker = start_blocked(gated)
    queued = batcher.submit([enc("last")], OPTIONS)
    closer = threading.Thread(target=batcher.close, args=(WAIT,))
    closer.start()
    wait_until(lambda: batcher._closed)
    with pytest.raises(Unavailable, match="shutting down"):
        batcher.submit([enc("late")], OPTIONS)
    gated.release.set()
    closer.join(WAIT)
    assert blocker.result(0) == ("blocker",)
    assert queued[0].result(0) == ("last",)


def test_real_copy_model_under_concurrency(copy_store: Path, swapcase: Callable[[str], str]) -> None:
    from tests.support.sentences import COPY_CORPUS

    installed = ModelStore(copy_store).get("copy-en-de")
    model = Seq2SeqModel(installed.path, installed.manifest, RuntimeOptions(inter_threads=2, intra_threads=1))
    batcher = Batcher(model, BatchingOptions(max_batch_tokens=256, wait_ms=1.0, workers=2))
    options = model.default_options()
    rng = random.Random(3)
    requests = [rng.sample(COPY_CORPUS, rng.randint(1, 6)) for _ in range(48)]
    results = submit_from_threads(
        batcher, requests, lambda s: model.encode(s, "en", "de"), options, model.decode,
        clients=12, wait=120)
    for r, sentences in enumerate(requests):
        assert results[r] == [swapcase(s) for s in sentences], f"request {r}"
    assert batcher.stats.sentences == sum(len(r) for r in requests)


def test_paragraph_mode_decodes_each_paragraph_of_each_request_alone(gated: FakeModel) -> None:
    batcher, _ = start_blocked(gated, mode="paragraph")
    a = batcher.submit([enc("a1"), enc("a2"), enc("a3")], OPTIONS, groups=[0, 0, 1])
    b = batcher.submit([enc("b1"), enc("b2")], OPTIONS, groups=[0, 0])
    gated.release.set()
    assert [f.result(WAIT) for f in a + b] == [("a1",), ("a2",), ("a3",), ("b1",), ("b2",)]
    batcher.close(WAIT)
    assert gated.calls[1:] == [[("a1",), ("a2",)], [("a3",)], [("b1",), ("b2",)]]


def test_dynamic_mode_ignores_paragraphs(gated: FakeModel) -> None:
    batcher, _ = start_blocked(gated)
    a = batcher.submit([enc("a1"), enc("a2")], OPTIONS, groups=[0, 1])
    gated.release.set()
    for f in a:
        f.result(WAIT)
    batcher.close(WAIT)
    assert gated.calls[1:] == [[("a1",), ("a2",)]]


def test_groups_must_match_items_and_modes_are_checked() -> None:
    batcher = Batcher(FakeModel(), BatchingOptions(mode="paragraph"))
    with pytest.raises(ValueError, match="1 groups for 2 items"):
        batcher.submit([enc("a"), enc("b")], OPTIONS, groups=[0])
    batcher.close(WAIT)
    with pytest.raises(ValueError, match="batching mode must be one of dynamic, request, paragraph"):
        BatchingOptions(mode="sometimes")
