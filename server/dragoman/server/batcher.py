"""Dynamic batching: sentences from all concurrent requests share CTranslate2 calls.

Translating request by request leaves CTranslate2 decoding tiny batches; here every request
only queues its (tokenised) sentences and worker threads pack whatever is queued into one
``generate`` call of at most ``max_batch_tokens`` source tokens. A worker that finds a short
queue waits ``wait_ms`` for company, so a lone request pays at most that; under load batches
fill while the previous one decodes. Deadlines and cancellations are honoured before decoding,
and the queue is bounded so overload is refused at once instead of piling up memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from dragoman.server.engine import DecodingOptions, Encoded
from dragoman.server.errors import DeadlineExceeded, Overloaded, Unavailable

logger = logging.getLogger(__name__)


class Generator(Protocol):
    name: str

    def generate(
        self, batch: Sequence[Encoded], options: DecodingOptions
    ) -> list[tuple[str, ...]]: ...


@dataclass(frozen=True)
class BatchingOptions:
    max_batch_tokens: int = 4096
    wait_ms: float = 2.0
    max_queued: int = 20000  # sentences waiting across all requests
    workers: int = 1
    enabled: bool = True  # False: one call per request, the naive way (benchmarks only)


@dataclass
class _Item:
    encoded: Encoded
    options: DecodingOptions
    deadline: float | None
    future: Future[tuple[str, ...]]
    ticket: int
    enqueued: float = field(default_factory=time.monotonic)


@dataclass
class BatcherStats:
    calls: int = 0
    sentences: int = 0
    tokens: int = 0
    expired: int = 0
    cancelled: int = 0
    rejected: int = 0


class Batcher:
    """Queue + worker threads in front of one model."""

    def __init__(self, model: Generator, options: BatchingOptions = BatchingOptions()) -> None:
        self.model = model
        self.options = options
        self.stats = BatcherStats()
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._tickets = 0
        self._busy = 0
        self._threads = [
            threading.Thread(
                target=self._run, name=f"batcher-{model.name}-{i}", daemon=True
            )
            for i in range(max(1, options.workers))
        ]
        for t in self._threads:
            t.start()

    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def submit(
        self,
        items: Sequence[Encoded],
        options: DecodingOptions,
        deadline: float | None = None,
    ) -> list[Future[tuple[str, ...]]]:
        """Queue ``items`` (one request's sentences); returns one future per item, in order.

        ``deadline`` is a ``time.monotonic()`` instant. Raises :class:`Overloaded` when the
        queue is full (a request larger than the bound is still taken on an empty queue).
        """
        futures: list[Future[tuple[str, ...]]] = [Future() for _ in items]
        if not items:
            return futures
        with self._cond:
            if self._closed:
                raise Unavailable("the server is shutting down")
            if self._queue and len(self._queue) + len(items) > self.options.max_queued:
                self._purge_locked()
                if self._queue and len(self._queue) + len(items) > self.options.max_queued:
                    self.stats.rejected += 1
                    raise Overloaded(
                        f"model {self.model.name} has {len(self._queue)} sentences queued "
                        f"(limit {self.options.max_queued}); retry later"
                    )
            self._tickets += 1
            now = time.monotonic()
            self._queue.extend(
                _Item(e, options, deadline, f, self._tickets, now)
                for e, f in zip(items, futures)
            )
            self._cond.notify_all()
        return futures

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish what is queued, stop the workers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    # -- worker side -------------------------------------------------------------------

    def _purge_locked(self) -> None:
        kept = deque(i for i in self._queue if not i.future.cancelled())
        self.stats.cancelled += len(self._queue) - len(kept)
        self._queue = kept

    def _take_locked(self) -> list[_Item]:
        """Pop a batch: items sharing the head's options, up to the token budget."""
        head = self._queue[0]
        budget = self.options.max_batch_tokens
        taken: list[_Item] = []
        kept: deque[_Item] = deque()
        tokens = 0
        while self._queue:
            item = self._queue.popleft()
            same = item.options == head.options
            if not self.options.enabled:
                same = same and item.ticket == head.ticket
            size = len(item.encoded.source)
            if same and (not taken or tokens + size <= budget):
                taken.append(item)
                tokens += size
            else:
                kept.append(item)
                if tokens >= budget:
                    break
        kept.extend(self._queue)
        self._queue = kept
        return taken

    def _queued_tokens_locked(self) -> int:
        return sum(len(i.encoded.source) for i in self._queue)

    def _run(self) -> None:
        wait = self.options.wait_ms / 1000.0
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                # Let a small queue fill for up to `wait` after its oldest item arrived.
                if self.options.enabled and wait > 0:
                    while (
                        not self._closed
                        and self._queue
                        and self._queued_tokens_locked() < self.options.max_batch_tokens
                    ):
                        left = self._queue[0].enqueued + wait - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    if not self._queue:
                        continue
                batch = self._take_locked()
                self._busy += 1
            try:
                self._process(batch)
            finally:
                with self._cond:
                    self._busy -= 1

    def _process(self, batch: list[_Item]) -> None:
        now = time.monotonic()
        live: list[_Item] = []
        for item in batch:
            if item.deadline is not None and now >= item.deadline:
                self.stats.expired += 1
                if item.future.set_running_or_notify_cancel():
                    item.future.set_exception(
                        DeadlineExceeded("the deadline passed while the text was queued")
                    )
                continue
            if not item.future.set_running_or_notify_cancel():
                self.stats.cancelled += 1
                continue
            live.append(item)
        if not live:
            return
        try:
            outputs = self.model.generate([i.encoded for i in live], live[0].options)
        except Exception as exc:  # noqa: BLE001 - delivered to every waiting request
            logger.exception("model %s failed on a batch of %d", self.model.name, len(live))
            for item in live:
                item.future.set_exception(exc)
            return
        self.stats.calls += 1
        self.stats.sentences += len(live)
        self.stats.tokens += sum(len(i.encoded.source) for i in live)
        for item, out in zip(live, outputs):
            item.future.set_result(out)
