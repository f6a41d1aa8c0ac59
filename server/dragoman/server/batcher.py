"""Dynamic batching: sentences from all concurrent requests share CTranslate2 calls.

Translating request by request leaves CTranslate2 decoding tiny batches; here every request
only queues its (tokenised) sentences, and worker threads (one per CTranslate2 replica) pack
what is queued into ``generate`` calls of at most ``max_batch_tokens`` source tokens.

* A worker that finds less than a full batch waits up to ``wait_ms`` after the oldest
  sentence arrived, so a lone request pays at most that; under load batches fill while the
  previous one decodes.
* Two priority classes: :attr:`Priority.INTERACTIVE` sentences go into the next batch ahead
  of :attr:`Priority.BULK` ones, and bulk sentences fill every place interactive work leaves
  free (a lone bulk job runs at full throughput). Bulk cannot starve: when the oldest bulk
  sentence has been passed over ``BULK_EVERY`` batches in a row, the next batch is led by it.
* With a backlog, a batch is one padded batch of up to ``max_batch_tokens`` tokens holding
  the first sentence in line (of the leading class), filled from the next
  ``WINDOW_BATCHES`` batches' worth in line: the first document first, whole, then similar
  lengths from the next documents (see :func:`_fill_by_documents`). So batches stay full with little padding,
  documents finish in order (instead of every document advancing a little in every
  batch and all finishing near the end), and no sentence is overtaken for long. The order
  is by virtual finish (arrival plus the document's own decoding time, see
  ``ASSUMED_RATE``): arrival order for equal documents, shortest first among documents
  that arrive together. Without a backlog, idle workers split the queue between them, so
  one long document decodes on every replica at once.
* Deadlines and cancellations are honoured before decoding: an expired sentence is failed
  with :class:`DeadlineExceeded` and a cancelled one is forgotten at once (it stops counting
  against the queue bound).
* The queue is bounded (``max_queued`` sentences): a call that would exceed it is refused
  at once with :class:`Overloaded` instead of piling up memory and latency.
* Optionally the decoding memory is bounded too (``max_batch_bytes`` with a ``cost``
  estimate): batches shrink to fit, and one over its share waits for room.
* ``mode`` "request" and "paragraph" switch cross-request batching off, to measure against.

Decoding happens on the worker threads, never on the caller's (the asyncio loop only awaits
the returned futures).
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from dragoman.server.errors import DeadlineExceeded, ModelFailed, Overloaded, Unavailable
from dragoman.server.observability.hooks import ModelObserver
from dragoman.server.observability.tracing import span
from dragoman.server.seq2seq import DEFAULT_MAX_BATCH_TOKENS, DecodingOptions, Encoded

logger = logging.getLogger(__name__)

# A backlog batch is picked from the next WINDOW_BATCHES batches' worth of tokens in line:
# the wider, the closer the lengths it finds (less padding), but the more documents are left
# half done and finish late. Measured on 32 articles sent at once (bench/latency.py, OPUS-MT-
# sized model, CPU): the median article finished at 0.65 of the pass with 4 (simulated),
# 0.52-0.63 with 2 and 0.51-0.57 with 1 (real runs), at the same throughput within the
# machine's noise: CTranslate2 drops finished sentences from a batch as it decodes, so
# padding costs less than its share of tokens.
WINDOW_BATCHES = 1

BATCHING_MODES = ("dynamic", "request", "paragraph")

# Under constant interactive load, the oldest bulk sentence leads the batch after this many
# batches without it: bulk waits a bounded number of batches, never forever.
BULK_EVERY = 8

# How a batch is chosen under a backlog (see _fill_by_documents): a sentence's tokens are
# worth RANK_WEIGHT less per document ahead of its own (lower: documents finish more strictly
# in order, at more padding), and a padding token costs PADDING_COST, except for the oldest
# document's sentences other than the oldest one (so none of them straggles). Tuned on
# article-like length mixes with a recording fake model: 32 articles arriving together
# finish at a median of ~0.6 of the pass (in batches) instead of ~0.7.
RANK_WEIGHT = 0.6
PADDING_COST = 1.0

# Interactive beside bulk. On CPU a batch's decoding time grows with its tokens (a 349-token
# article took 1.48 s alone and 2.46 s with 212 bulk tokens added), and a batch cannot be
# interrupted, so while interactive calls are about (one arrived in the last
# INTERACTIVE_RECENT_S seconds):
# * a bulk batch holds at most what one worker decodes in BULK_SLICE_S at the measured rate,
#   so an interactive call waits about that long at most for a worker;
# * an interactive-led batch is spread over every worker so that the parts finish together:
#   a worker still decoding a bulk slice gets a part that fits after its slice ends (at the
#   measured rate), the free one the rest; and bulk tops it up only to TOPUP_SHARE of the
#   token budget (a lone short sentence still gets company, an article does not pay for
#   strangers).
INTERACTIVE_RECENT_S = 10.0
BULK_SLICE_S = 1.0
TOPUP_SHARE = 1 / 8

# Documents of one class are served in order of their virtual finish: the instant one worker
# would finish the document alone had it started on arrival (arrival + tokens / rate). Equal
# documents go in arrival order; among documents arriving together the shorter goes first
# (which lowers the mean and median latency, as shortest-job-first does), and a document is
# overtaken only by shorter ones that arrived within its own decoding time: bounded, so no
# document starves. Until the rate is measured, ASSUMED_RATE tokens/s per worker stands in.
ASSUMED_RATE = 100.0


class Priority(enum.IntEnum):
    """Scheduling class of a request's sentences (lower goes first)."""

    INTERACTIVE = 0  # someone is waiting: unary calls, the HTTP adapter
    BULK = 1  # archive jobs and streams: throughput, not latency


class Generator(Protocol):
    @property
    def name(self) -> str: ...  # read-only: Seq2SeqModel's is a property

    def generate(
        self, batch: Sequence[Encoded], options: DecodingOptions
    ) -> list[tuple[str, ...]]: ...


@dataclass(frozen=True)
class BatchingOptions:
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS  # source tokens per generate call
    wait_ms: float = 2.0  # how long a short queue waits for company
    max_queued: int = 20000  # sentences waiting across all requests
    workers: int = 1  # threads calling generate (one per CTranslate2 replica)
    # "dynamic": sentences of all requests share calls. The naive ways, kept to measure
    # against: "request" makes one call per request, "paragraph" one call per paragraph of
    # a request (Argos Translate, behind LibreTranslate, calls translate_batch per line).
    mode: str = "dynamic"
    # Estimated decoding memory per generate call (0: no limit). The batches in flight hold
    # at most ``workers`` times this together: a batch over its share (one long sentence)
    # waits until the others leave room. Needs the batcher's ``cost`` function.
    max_batch_bytes: int = 0

    def __post_init__(self) -> None:
        if self.mode not in BATCHING_MODES:
            raise ValueError(f"batching mode must be one of {', '.join(BATCHING_MODES)}")

    @property
    def enabled(self) -> bool:
        return self.mode == "dynamic"


@dataclass
class BatcherStats:
    """Counters since start; read them for monitoring and benchmarks (not a consistent snapshot)."""

    calls: int = 0  # generate calls
    sentences: int = 0  # sentences decoded
    tokens: int = 0  # their source tokens
    padded_tokens: int = 0  # sum over calls of sentences x longest source in the call
    expired: int = 0  # dropped because their deadline passed while queued
    cancelled: int = 0  # dropped because their caller cancelled
    rejected: int = 0  # submit calls refused as Overloaded (queue bound)
    late: int = 0  # submit calls refused as Overloaded: could not finish before their deadline
    bulk_led: int = 0  # batches led by a bulk sentence passed over BULK_EVERY times

    @property
    def padding(self) -> float:
        """Share of padding had each call been one batch (CTranslate2 splits mixed calls
        into sorted sub-batches, so the padding it decodes is at most this)."""
        return 1.0 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0


class DecodeRate:
    """Source tokens decoded per second by one worker, measured on recent generate calls.

    Token-weighted and decaying (each call's weight shrinks by ``DECAY`` per later call), so
    full batches under a backlog dominate and the figure follows load changes within a few
    calls. ``None`` until ``MIN_CALLS`` calls and one full batch's worth of tokens were
    measured: no estimate, no refusal, on a server that has not shown its speed yet.
    """

    DECAY = 0.8
    MIN_CALLS = 3

    def __init__(self, min_tokens: int) -> None:
        self._min_tokens = min_tokens
        self._tokens = 0.0
        self._seconds = 0.0
        self._calls = 0
        self._seen = 0

    def observe(self, tokens: int, seconds: float) -> None:
        """Record one generate call (callers serialise)."""
        if tokens <= 0 or seconds <= 0:
            return
        self._tokens = self._tokens * self.DECAY + tokens
        self._seconds = self._seconds * self.DECAY + seconds
        self._calls += 1
        self._seen += tokens

    def per_second(self) -> float | None:
        if self._calls < self.MIN_CALLS or self._seen < self._min_tokens or not self._seconds:
            return None
        return self._tokens / self._seconds


_QUEUED, _TAKEN, _DROPPED = 0, 1, 2


@dataclass(eq=False)
class _Item:
    encoded: Encoded
    options: DecodingOptions
    deadline: float | None
    future: Future[tuple[str, ...]]
    ticket: int
    size: int
    group: int = 0  # paragraph within the request (only "paragraph" mode looks at it)
    priority: int = Priority.INTERACTIVE
    enqueued: float = field(default_factory=time.monotonic)
    state: int = _QUEUED
    finish: float = 0.0  # the document's virtual finish (see ASSUMED_RATE): its place in line


class Batcher:
    """Queue + worker threads in front of one model."""

    def __init__(
        self, model: Generator, options: BatchingOptions = BatchingOptions(),
        cost: Callable[[int, int, DecodingOptions], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        observer: ModelObserver | None = None,
    ) -> None:
        """``cost(sentences, longest_source, options)`` estimates a call's decoding memory in
        bytes; with ``options.max_batch_bytes`` it caps every batch and the batches in flight
        (a sentence too large for the whole cap still decodes, alone). ``clock`` (monotonic
        seconds, deadlines use the same) times generate calls for the admission estimate.
        ``observer`` hears of every generate call (metrics)."""
        if options.max_batch_tokens < 1 or options.max_queued < 1:
            raise ValueError("max_batch_tokens and max_queued must be at least 1")
        self.model = model
        self.options = options
        self._cost = cost if options.max_batch_bytes > 0 else None
        self._memory_cap = options.max_batch_bytes * max(1, options.workers)
        self._in_flight_bytes = 0  # estimated memory of the batches being decoded
        self.stats = BatcherStats()
        self._clock = clock
        self.observer = observer
        self.rate = DecodeRate(options.max_batch_tokens)
        # One FIFO lane per (priority, decoding options): a generate call has one set of
        # options; a lane's items are in arrival order, so its documents are in age order.
        self._lanes: dict[tuple[int, DecodingOptions], deque[_Item]] = {}
        self._cond = threading.Condition(threading.Lock())
        self._live = 0  # queued sentences, neither taken nor dropped
        self._tokens = 0  # their source tokens
        self._class_tokens = [0] * len(Priority)  # the same, per priority class
        self._bulk_passed = 0  # batches taken without the oldest bulk sentence while it waited
        self._interactive_at = -math.inf  # clock() of the last interactive submit
        self._interactive_busy = 0  # workers decoding an interactive-led batch
        # Per worker, the clock() instant its batch should end at the measured rate (idle:
        # -inf): an interactive article is spread so that its parts finish together.
        self._busy_until = [-math.inf] * max(1, options.workers)
        self._dead = 0  # dropped items still sitting in a lane (removed lazily)
        self._closed = False
        self._draining = False  # no more company is coming: batches go without waiting
        self._tickets = 0
        self._idle = max(1, options.workers)
        self._threads = [
            threading.Thread(
                target=self._run, args=(i,), name=f"batcher-{model.name}-{i}", daemon=True
            )
            for i in range(max(1, options.workers))
        ]
        for t in self._threads:
            t.start()

    def queued(self) -> int:
        """Sentences waiting to be decoded (cancelled and expired ones excluded)."""
        with self._cond:
            return self._live

    def estimated_wait(self, tokens: int = 0, priority: int = Priority.INTERACTIVE) -> float | None:
        """Seconds until the work ahead of a ``priority`` call and ``tokens`` more are decoded,
        at the measured rate (None before the rate is known)."""
        with self._cond:
            return self._wait_locked(tokens, priority)

    def check_deadline(
        self, deadline: float | None, tokens: int = 0, priority: int = Priority.INTERACTIVE
    ) -> None:
        """Raise :class:`Overloaded` when the work ahead of a ``priority`` call (and ``tokens``
        more) cannot be decoded before ``deadline`` at the measured rate: a cheap check callers
        make before they prepare a request, so a refusal under overload costs next to nothing.
        An interactive call waits behind interactive work only, not behind the bulk backlog."""
        with self._cond:
            late = self._late_locked(tokens, deadline, priority)
            if late:
                self.stats.late += 1
        if late:
            raise Overloaded(late)

    def _ahead_locked(self, priority: int) -> int:
        """Queued tokens decoded before a new sentence of ``priority`` (its class and above)."""
        return sum(self._class_tokens[: int(priority) + 1])

    def _wait_locked(self, tokens: int, priority: int = Priority.INTERACTIVE) -> float | None:
        rate = self.rate.per_second()
        if rate is None:
            return None
        return (self._ahead_locked(priority) + tokens) / (rate * max(1, self.options.workers))

    def submit(
        self,
        items: Sequence[Encoded],
        options: DecodingOptions,
        deadline: float | None = None,
        groups: Sequence[int] | None = None,
        priority: int = Priority.INTERACTIVE,
    ) -> list[Future[tuple[str, ...]]]:
        """Queue ``items`` (one request's sentences); returns one future per item, in order.

        ``deadline`` is a ``time.monotonic()`` instant. ``groups`` gives each item's
        paragraph, for the "paragraph" mode only. ``priority`` is the items' class (a bulk
        call's deadline counts the whole queue as ahead of it, an interactive call's only the
        interactive work). Raises :class:`Overloaded` when the
        queue is full (a request larger than the bound is still taken on an empty queue) or
        when, at the measured decoding rate, the queue and these items cannot be decoded
        before ``deadline`` (refused at once rather than timing out after doing the work),
        and :class:`Unavailable` after :meth:`close`. Cancelling a future drops its sentence.
        """
        if not items:
            return []
        if groups is not None and len(groups) != len(items):
            raise ValueError(f"{len(groups)} groups for {len(items)} items")
        priority = Priority(priority)
        queued = [
            _Item(e, options, deadline, Future(), 0, len(e.source),
                  groups[n] if groups is not None and self.options.mode == "paragraph" else 0,
                  priority)
            for n, e in enumerate(items)
        ]
        tokens = sum(item.size for item in queued)
        expired: list[_Item] = []
        refused = ""
        with self._cond:
            if self._closed:
                raise Unavailable("the server is shutting down")
            if self._live and self._live + len(queued) > self.options.max_queued:
                expired = self._drop_expired_locked(time.monotonic())
            if self._live and self._live + len(queued) > self.options.max_queued:
                self.stats.rejected += 1
                refused = (
                    f"model {self.model.name} has {self._live} sentences queued "
                    f"(limit {self.options.max_queued}); retry later"
                )
            elif late := self._late_locked(tokens, deadline, priority):
                self.stats.late += 1
                refused = late
            else:
                self._tickets += 1
                now = time.monotonic()
                rate = self.rate.per_second() or ASSUMED_RATE
                finish = (self._clock() + tokens / rate
                          if self.options.enabled else 0.0)  # the naive modes: arrival order
                for item in queued:
                    item.ticket = self._tickets
                    item.enqueued = now
                    item.finish = finish
                _enqueue(self._lanes.setdefault((priority, options), deque()), queued)
                self._live += len(queued)
                self._tokens += tokens
                self._class_tokens[priority] += tokens
                if priority == Priority.INTERACTIVE:
                    self._interactive_at = self._clock()
                self._cond.notify_all()
        _fail_expired(expired)
        if refused:
            raise Overloaded(refused)
        for item in queued:
            item.future.add_done_callback(functools.partial(self._forget, item))
        return [item.future for item in queued]

    def _late_locked(
        self, own: int, deadline: float | None, priority: int = Priority.INTERACTIVE
    ) -> str:
        """Why the work ahead of a ``priority`` call and ``own`` more tokens cannot be decoded
        before ``deadline``, or "" when they can (or when the rate is not known yet: no
        estimate, no refusal)."""
        if deadline is None:
            return ""
        wait = self._wait_locked(own, priority)
        left = deadline - self._clock()
        if wait is None or wait <= left:
            return ""
        rate = (self.rate.per_second() or 0.0) * max(1, self.options.workers)
        return (
            f"model {self.model.name} would need about {wait:.1f} s for this call "
            f"({self._ahead_locked(priority)} tokens queued"
            f"{f' and {own} of its own' if own else ''} at "
            f"{rate:.0f} tokens/s) "
            f"but its deadline is in {max(0.0, left):.1f} s; retry later or allow more time"
        )

    def drain(self) -> None:
        """The server is shutting down, so no request will join a waiting batch: decode what
        is queued at once instead of waiting ``wait_ms`` for company."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()

    def close(self, timeout: float | None = None) -> bool:
        """Stop taking work, finish what is queued, stop the workers, waiting at most
        ``timeout`` seconds in all; False when a worker was still decoding at the end
        (CTranslate2 cannot be interrupted)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        stopped = not any(t.is_alive() for t in self._threads)
        s = self.stats
        if s.calls:
            logger.info(
                "model %s: %d generate calls, %d sentences (%.1f per call, %.0f source tokens "
                "per call), padding %.0f%%; expired %d, cancelled %d, refused %d (queue "
                "full) and %d (deadline out of reach)",
                self.model.name, s.calls, s.sentences, s.sentences / s.calls,
                s.tokens / s.calls, 100 * s.padding, s.expired, s.cancelled, s.rejected, s.late,
            )
        return stopped

    # -- queue bookkeeping (callers hold self._cond) -------------------------------------

    def _drop_locked(self, item: _Item) -> None:
        item.state = _DROPPED
        self._live -= 1
        self._tokens -= item.size
        self._class_tokens[item.priority] -= item.size
        self._dead += 1

    def _forget(self, item: _Item, future: Future[tuple[str, ...]]) -> None:
        """Done-callback: a future cancelled while queued frees its place at once."""
        if not future.cancelled():
            return
        with self._cond:
            if item.state != _QUEUED:
                return
            self._drop_locked(item)
            self.stats.cancelled += 1
            if self._dead > 256 and self._dead > self._live:
                self._compact_locked()

    def _compact_locked(self) -> None:
        for key, lane in list(self._lanes.items()):
            kept = deque(i for i in lane if i.state == _QUEUED)
            if kept:
                self._lanes[key] = kept
            else:
                del self._lanes[key]
        self._dead = 0

    def _drop_expired_locked(self, now: float) -> list[_Item]:
        expired = [
            item for lane in self._lanes.values() for item in lane
            if item.state == _QUEUED and item.deadline is not None and item.deadline <= now
        ]
        for item in expired:
            self._drop_locked(item)
        self.stats.expired += len(expired)
        if expired:
            self._compact_locked()
        return expired

    def _head_locked(self, lane: deque[_Item]) -> _Item | None:
        while lane and lane[0].state != _QUEUED:
            lane.popleft()
            self._dead -= 1
        return lane[0] if lane else None

    def _oldest_locked(self) -> tuple[tuple[int, DecodingOptions], _Item] | None:
        """The lane leading the next batch, and its first live sentence: the oldest
        interactive one, else the oldest bulk one; the oldest bulk one also when it has been
        passed over ``BULK_EVERY`` batches in a row."""
        best: list[tuple[tuple[int, DecodingOptions], _Item] | None] = [None] * len(Priority)
        for key, lane in list(self._lanes.items()):
            head = self._head_locked(lane)
            if head is None:
                del self._lanes[key]
                continue
            found = best[key[0]]
            if found is None or _first(head, found[1]):
                best[key[0]] = (key, head)
        interactive, bulk = best
        if interactive is None or (bulk is not None and self._bulk_passed >= BULK_EVERY):
            return bulk
        return interactive

    def _lanes_for(self, key: tuple[int, DecodingOptions]) -> list[deque[_Item]]:
        """The leading lane, then the other classes' lanes of the same decoding options
        (they fill the places it leaves free)."""
        priority, options = key
        return [self._lanes[key]] + [
            self._lanes[(other, options)] for other in Priority
            if other != priority and (other, options) in self._lanes
        ]

    def _take_locked(self, now: float, worker: int) -> tuple[list[_Item], list[_Item]]:
        """Pop the next batch for ``worker``; returns (batch, sentences whose deadline
        passed)."""
        found = self._oldest_locked()
        if found is None:
            return [], []
        key, head = found
        lead, options = key
        budget = self.options.max_batch_tokens
        bulk_queued = self._class_tokens[Priority.BULK] > 0
        if self.options.enabled:
            if lead == Priority.INTERACTIVE and bulk_queued:
                # Beside a bulk backlog every worker frees up within a bulk slice: spread
                # the interactive work so that its parts finish together.
                share = self._interactive_share_locked(worker)
            else:
                # Idle workers share a short queue, so one document uses every replica.
                share = math.ceil(self._tokens / max(1, self._idle))
            limit = min(budget, max(1, share))
            if lead == Priority.BULK and (slice_ := self._bulk_slice()):
                limit = min(limit, slice_)
        else:
            limit = budget
        window: list[_Item] = []
        expired: list[_Item] = []
        seen = 0
        lanes = self._lanes_for(key) if self.options.enabled else [self._lanes[key]]
        for lane in lanes:
            for item in lane:
                if item.state != _QUEUED:
                    continue
                if item.deadline is not None and item.deadline <= now:
                    expired.append(item)
                    continue
                if (not self.options.enabled
                        and (item.ticket, item.group) != (head.ticket, head.group)):
                    break
                window.append(item)
                seen += item.size
                if seen >= WINDOW_BATCHES * budget:
                    break
            if seen >= WINDOW_BATCHES * budget:
                break
        for item in expired:
            self._drop_locked(item)
        self.stats.expired += len(expired)
        in_order = not self.options.enabled
        if self.options.enabled and lead == Priority.INTERACTIVE and bulk_queued:
            own = [item for item in window if item.priority == Priority.INTERACTIVE]
            topup = max(1, int(budget * TOPUP_SHARE))
            if sum(item.size for item in own) >= topup:
                # No strangers: the interactive work alone, its share taken in order.
                window, in_order = own, True
            else:
                limit = topup  # a few short sentences: bulk keeps them company, a little
        in_order = in_order or seen <= limit  # judged against the final limit
        if not window:
            return [], expired
        max_bytes = self.options.max_batch_bytes
        if self._in_flight_bytes:
            max_bytes = min(max_bytes, self._memory_cap - self._in_flight_bytes)
        if in_order:
            batch = _fill_in_order(window, limit, self._fits(options, max_bytes))
        else:
            batch = _fill_by_documents(window, self._fits(options, max_bytes, limit))
        bulk_head = self._bulk_head_locked()
        for item in batch:
            item.state = _TAKEN
            self._live -= 1
            self._tokens -= item.size
            self._class_tokens[item.priority] -= item.size
            self._dead += 1  # taken items leave the lane lazily, like dropped ones
        if bulk_head is None or bulk_head.state == _TAKEN:
            if self._bulk_passed >= BULK_EVERY and bulk_head is not None:
                self.stats.bulk_led += 1
            self._bulk_passed = 0
        else:
            self._bulk_passed += 1
        if self._dead > 256 and 4 * self._dead > self._live:
            self._compact_locked()
        return batch, expired

    def _interactive_share_locked(self, worker: int) -> int:
        """Interactive tokens ``worker`` (free now) takes so that it finishes them when the
        other workers finish theirs, each starting when its current batch should end.

        Water-filling at the measured rate ``r``: the finish time F solves r x F plus, over
        the other workers free within F, r x (F - their remaining time) = the interactive
        tokens queued. A worker whose bulk slice ends soon gets nearly half of an article, one
        with most of its slice ahead little or nothing: an even split would make the article
        wait for that slice. Before the rate is measured: an even split over the workers not
        already decoding interactive work."""
        queued = self._class_tokens[Priority.INTERACTIVE]
        workers = len(self._busy_until)
        rate = self.rate.per_second()
        if rate is None:
            return math.ceil(queued / max(1, workers - self._interactive_busy))
        now = self._clock()
        waits = sorted(max(0.0, until - now)
                       for n, until in enumerate(self._busy_until) if n != worker)
        alone = queued / rate  # seconds of work in all
        finish, sharing, started = alone, 1, 0.0
        for wait in waits:
            if wait >= finish:
                break  # this worker (and every later one) would free up too late to help
            sharing += 1
            started += wait
            finish = (alone + started) / sharing
        return max(1, math.ceil(finish * rate))

    def _bulk_slice(self) -> int:
        """Source tokens one worker decodes in ``BULK_SLICE_S`` while interactive calls are
        recent (0: none in ``INTERACTIVE_RECENT_S``, or the rate is not measured yet)."""
        if self._clock() - self._interactive_at > INTERACTIVE_RECENT_S:
            return 0
        rate = self.rate.per_second()
        return max(1, int(rate * BULK_SLICE_S)) if rate else 0

    def _bulk_head_locked(self) -> _Item | None:
        """The oldest queued bulk sentence (its age in batches bounds bulk's wait)."""
        oldest: _Item | None = None
        for (priority, _), lane in self._lanes.items():
            if priority == Priority.BULK:
                head = self._head_locked(lane)
                if head is not None and (oldest is None or _first(head, oldest)):
                    oldest = head
        return oldest

    def _fits(
        self, options: DecodingOptions, max_bytes: int, limit: int = 0
    ) -> Callable[[int, int], bool]:
        """Whether ``count`` sentences padded to ``longest`` tokens make an acceptable call:
        within ``limit`` padded tokens (when given) and ``max_bytes`` of decoding memory."""
        cost = self._cost

        def fits(count: int, longest: int) -> bool:
            if limit and count * longest > limit:
                return False
            return cost is None or cost(count, longest, options) <= max_bytes

        return fits

    # -- worker side -------------------------------------------------------------------

    def _run(self, worker: int) -> None:
        wait = self.options.wait_ms / 1000.0 if self.options.enabled else 0.0
        budget = self.options.max_batch_tokens
        while True:
            with self._cond:
                while True:
                    if not self._live:
                        if self._closed:
                            return
                        self._cond.wait()
                        continue
                    if self._no_room_locked():
                        self._cond.wait()  # a finishing batch notifies
                        continue
                    if (wait > 0 and not self._closed and not self._draining
                            and self._tokens < budget):
                        found = self._oldest_locked()
                        if found is not None:
                            left = found[1].enqueued + wait - time.monotonic()
                            if left > 0:
                                self._cond.wait(left)
                                continue
                    break
                batch, expired = self._take_locked(time.monotonic(), worker)
                held = self._batch_bytes(batch)
                self._in_flight_bytes += held
                self._idle -= 1
                urgent = bool(batch) and batch[0].priority == Priority.INTERACTIVE
                self._interactive_busy += urgent
                rate = self.rate.per_second()
                if batch and rate:
                    self._busy_until[worker] = (self._clock()
                                                + sum(i.size for i in batch) / rate)
                if self._live:
                    self._cond.notify()  # another idle worker may take the rest
            try:
                _fail_expired(expired)
                if batch:
                    self._process(batch)
            finally:
                with self._cond:
                    self._idle += 1
                    self._interactive_busy -= urgent
                    self._busy_until[worker] = -math.inf
                    if held:
                        self._in_flight_bytes -= held
                        self._cond.notify_all()

    def _batch_bytes(self, batch: list[_Item]) -> int:
        if self._cost is None or not batch:
            return 0
        return self._cost(len(batch), max(i.size for i in batch), batch[0].options)

    def _no_room_locked(self) -> bool:
        """True when batches are decoding and the oldest sentence alone would take the
        memory in flight over the cap: wait for them (it then decodes, alone if need be)."""
        if self._cost is None or not self._in_flight_bytes:
            return False
        found = self._oldest_locked()
        if found is None:
            return False
        (_, options), head = found
        return self._in_flight_bytes + self._cost(1, head.size, options) > self._memory_cap

    def _process(self, batch: list[_Item]) -> None:
        live = [item for item in batch if item.future.set_running_or_notify_cancel()]
        if len(live) < len(batch):
            with self._cond:
                self.stats.cancelled += len(batch) - len(live)
        if not live:
            return
        try:
            outputs = self._generate(live)
        except Exception:  # isolated below
            if len(live) == 1:
                logger.exception("model %s failed on a sentence", self.model.name)
                live[0].future.set_exception(
                    ModelFailed(f"model {self.model.name} failed on this text")
                )
                return
            # One bad input must not fail the strangers it was batched with: retry alone.
            logger.warning(
                "model %s failed on a batch of %d; retrying its sentences one by one",
                self.model.name, len(live),
            )
            for item in live:
                self._retry_alone(item)
            return
        for item, out in zip(live, outputs, strict=True):
            item.future.set_result(out)

    def _generate(self, live: list[_Item]) -> list[tuple[str, ...]]:
        tokens = sum(i.size for i in live)
        with span("ctranslate2.generate", {"dragoman.model": self.model.name,
                                           "dragoman.sentences": len(live),
                                           "dragoman.source_tokens": tokens}):
            started = self._clock()
            outputs = self.model.generate([i.encoded for i in live], live[0].options)
            took = self._clock() - started
        if len(outputs) != len(live):
            raise RuntimeError(
                f"model {self.model.name} returned {len(outputs)} outputs for {len(live)} inputs"
            )
        with self._cond:
            self.rate.observe(sum(i.size for i in live), took)
            self.stats.calls += 1
            self.stats.sentences += len(live)
            self.stats.tokens += sum(i.size for i in live)
            self.stats.padded_tokens += len(live) * max(i.size for i in live)
        if self.observer is not None:
            self.observer.batch_done(self.model.name, len(live), tokens,
                                     len(live) * max(i.size for i in live),
                                     sum(len(o) for o in outputs), took)
        return outputs

    def _retry_alone(self, item: _Item) -> None:
        try:
            (out,) = self._generate([item])
        except Exception:  # this input's own failure
            logger.exception("model %s failed on a sentence", self.model.name)
            item.future.set_exception(ModelFailed(f"model {self.model.name} failed on this text"))
        else:
            item.future.set_result(out)


def _first(a: _Item, b: _Item) -> bool:
    """Whether ``a``'s document is ahead of ``b``'s in line (virtual finish, then arrival)."""
    return (a.finish, a.ticket) < (b.finish, b.ticket)


def _enqueue(lane: deque[_Item], document: list[_Item]) -> None:
    """Put one document's sentences in ``lane`` at its place in line: ahead of the documents
    at the lane's end that finish later (the rest of one being decoded too: a short request
    does not wait for a long document to finish), behind the others."""
    behind: list[_Item] = []  # the sentences it goes ahead of, last first
    while lane and _first(document[0], lane[-1]):
        ticket = lane[-1].ticket
        while lane and lane[-1].ticket == ticket:  # a document's sentences are contiguous
            behind.append(lane.pop())
    lane.extend(document)
    lane.extend(reversed(behind))


def _fill_in_order(
    window: list[_Item], limit: int, fits: Callable[[int, int], bool]
) -> list[_Item]:
    """FIFO prefix of ``window`` within ``limit`` source tokens that ``fits`` the memory cap
    (at least one item).

    Used when everything queued fits: CTranslate2 sorts the call by length and splits it
    into padded sub-batches of ``max_batch_tokens`` itself.
    """
    batch: list[_Item] = []
    tokens = longest = 0
    for item in window:
        if batch and (tokens + item.size > limit
                      or not fits(len(batch) + 1, max(longest, item.size))):
            break
        batch.append(item)
        tokens += item.size
        longest = max(longest, item.size)
    return batch


def _fail_expired(items: list[_Item]) -> None:
    """Fail sentences whose deadline passed in the queue (outside the lock: runs callbacks)."""
    for item in items:
        if item.future.set_running_or_notify_cancel():
            item.future.set_exception(
                DeadlineExceeded("the deadline passed while the text was queued")
            )


def _fill_by_documents(window: list[_Item], fits: Callable[[int, int], bool]) -> list[_Item]:
    """With a backlog: one padded batch (count x longest tokens that ``fits``) holding the
    oldest item, filled from the oldest documents first and topped up with similar lengths.

    ``window`` is in priority, then arrival order; an item's rank is its document's place in
    it. Every item of a batch takes one place padded to the batch's longest length L, and is
    worth its tokens, times ``RANK_WEIGHT`` per rank, less ``PADDING_COST`` per padding token
    (the oldest document's items ride free, but the oldest item's padding counts when a younger
    document's sentence sets L: it is not worth padding for someone else). For each
    possible L the batch takes the items worth most; the L whose batch is worth most wins. So
    L stays near the oldest item's length, the oldest document goes in whole where it can
    (its short sentences too, which would otherwise straggle one per batch), younger ones
    fill the rest of the budget with lengths close to L (little padding), and documents
    finish in arrival order instead of all advancing a little in every batch.
    """
    rank: dict[int, int] = {}
    for item in window:
        rank.setdefault(item.ticket, len(rank))
    head = window[0]
    own = {i.size for i in window if rank[i.ticket] == 0}  # lengths of the oldest document
    best: list[_Item] = [head]
    best_score = -math.inf
    for longest in sorted({i.size for i in window if i.size >= head.size}):
        # The oldest item pays its padding when a younger document sets the length.
        head_pays = longest not in own
        count = 1
        while count < len(window) and fits(count + 1, longest):
            count += 1

        def worth(i: _Item, longest: int = longest) -> float:
            weight = RANK_WEIGHT ** rank[i.ticket]
            padding = (longest - i.size) if rank[i.ticket] or (i is head and head_pays) else 0
            return i.size * weight - PADDING_COST * padding

        others = sorted((i for i in window if i is not head and i.size <= longest),
                        key=worth, reverse=True)
        batch = [head, *others[: count - 1]]
        score = sum(worth(i) for i in batch)
        if score > best_score:
            best, best_score = batch, score
        if count == 1:
            break  # longer lengths fit no company either
    return best
