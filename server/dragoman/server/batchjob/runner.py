"""Runs a batch job: read, send to an engine, commit results in input order, resume.

Three threads cooperate. The engine pulls requests from a feed (on its own thread), which
reads the input, rejects unusable documents at once and throttles itself so that no more
than ``max_ahead`` documents are unwritten. Replies come back in completion order on the
engine's thread and are queued for the main thread, which puts each document's parts back
together, writes finished documents strictly in input order and commits every few seconds.
Because the output is always an in-order prefix of the input, the state file needs one
number to say what is done, and a resumed run truncates the output to it and goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from dragoman.server.batchjob.job import (
    TRANSIENT_CODES,
    Assembly,
    Document,
    Engine,
    Failure,
    FieldOptions,
    Item,
    JobOptions,
    Outcome,
    Rejected,
    Reply,
    Request,
    Skipped,
    precheck,
    requests_for,
)
from dragoman.server.batchjob.readers import Reader
from dragoman.server.batchjob.state import Checkpoint, StateFile
from dragoman.server.batchjob.writers import ErrorLog, Sink
from dragoman.server.errors import InvalidInput

logger = logging.getLogger(__name__)

EXIT_ALL_DONE = 0
EXIT_SOME_FAILED = 1


@dataclass(frozen=True)
class RunOptions:
    window: int = 32  # requests in flight in the engine
    commit_interval: float = 2.0  # seconds between commits
    commit_bytes: int = 8 * 1024 * 1024  # ... or when this much output is buffered
    retries: int = 3  # extra attempts for a document the engine could not take right now
    retry_delay: float = 0.5  # first pause before a retry; doubles each time
    restart: bool = False  # discard earlier progress and output

    def __post_init__(self) -> None:
        if self.window < 1:
            raise InvalidInput("the number of documents in flight must be at least 1")
        if self.commit_interval <= 0 or self.commit_bytes < 1:
            raise InvalidInput("the commit interval and size must be positive")
        if self.retries < 0 or self.retry_delay < 0:
            raise InvalidInput("retries and retry delay must not be negative")

    @property
    def max_ahead(self) -> int:
        """Documents read but not yet written: the reorder buffer's bound."""
        return 4 * self.window


@dataclass(frozen=True)
class RunReport:
    """What one run of a batch job did (``report.report_table`` prints it when the job ends);
    ``total_*`` include earlier runs of the same job."""

    done: int
    failed: int
    skipped: int
    total_done: int
    total_failed: int
    ignored: int
    chars: int
    seconds: float
    output: str
    errors: str | None
    # Ray jobs: blocks processed this run (and how many of them failed), and in the whole job.
    blocks: int = 0
    failed_blocks: int = 0
    total_blocks: int = 0
    total_failed_blocks: int = 0

    @property
    def exit_status(self) -> int:
        """0 when every document is in the output, 1 when any ended in the errors file."""
        return EXIT_SOME_FAILED if self.total_failed else EXIT_ALL_DONE


class ProgressReporter(Protocol):
    wants_total: bool

    def start(self, total: int | None, skipped: int) -> None: ...

    def advance(self, done: int, failed: int, chars: int) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    wants_total = False

    def start(self, total: int | None, skipped: int) -> None:
        pass

    def advance(self, done: int, failed: int, chars: int) -> None:
        pass

    def close(self) -> None:
        pass


def job_fingerprint(reader: Reader, job: JobOptions, fields: FieldOptions, output_format: str,
                    max_document_bytes: int) -> dict[str, Any]:
    """What must not change between runs for a resume to be exact."""
    return {
        "input": reader.fingerprint(),
        "job": asdict(job),
        "fields": asdict(fields),
        "output_format": output_format,
        "max_document_bytes": max_document_bytes,
    }


class _End:
    pass


@dataclass(frozen=True)
class _Crash:
    error: BaseException


class _Feed:
    """The engine's request iterator: reads the input, throttled by what is written."""

    def __init__(self, items: Iterator[Item | Skipped], job: JobOptions, events: queue.Queue[Any],
                 start: int, last_key: str | None, max_ahead: int) -> None:
        self._items = items
        self._job = job
        self._events = events
        self._start = start
        self._last_key = last_key
        self._max_ahead = max_ahead
        self.cond = threading.Condition()
        self.open: dict[int, Assembly] = {}
        self._retry: deque[Request] = deque()
        self.written = start
        self.stopped = False

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def advance(self, written: int) -> None:
        with self.cond:
            self.written = written
            self.cond.notify_all()

    def retry(self, request: Request) -> None:
        with self.cond:
            self._retry.append(request)
            self.cond.notify_all()

    def _take_retries(self) -> list[Request]:
        batch = list(self._retry)
        self._retry.clear()
        return batch

    def __iter__(self) -> Iterator[Request]:
        skipped = 0
        for item in self._items:
            if isinstance(item, Skipped):
                skipped += 1
                if item.ordinal == self._start - 1 and item.key != self._last_key:
                    raise InvalidInput(
                        f"the input changed since the interrupted run: document {item.ordinal} "
                        f"is {item.key!r}, not {self._last_key!r}; start over with --restart"
                    )
                continue
            while True:
                with self.cond:
                    while (not self.stopped and not self._retry
                           and item.ordinal - self.written >= self._max_ahead):
                        self.cond.wait()
                    if self.stopped:
                        return
                    retries = self._take_retries()
                yield from retries
                if not retries:
                    break
            yield from self._requests(item)
        if skipped < self._start:
            raise InvalidInput(
                f"the input has only {skipped} documents but {self._start} were committed by "
                "the interrupted run; start over with --restart"
            )
        # Stay open while documents are in flight: one of them may still need a retry.
        while True:
            with self.cond:
                while not self.stopped and not self._retry and self.open:
                    self.cond.wait()
                if self.stopped or (not self._retry and not self.open):
                    return
                retries = self._take_retries()
            yield from retries

    def _requests(self, item: Item) -> list[Request]:
        if isinstance(item, Rejected):
            self._events.put(Outcome(item, failure=Failure(item.code, item.reason)))
            return []
        failure = precheck(item, self._job)
        if failure is not None:
            self._events.put(Outcome(item, failure=failure))
            return []
        requests = requests_for(item, self._job)
        with self.cond:
            self.open[item.ordinal] = Assembly.start(item, requests)
        return requests


class BatchJob:
    """One run of a job; ``run`` returns its report (see ``RunReport.exit_status``)."""

    def __init__(
        self,
        reader: Reader,
        sink: Sink,
        errors: ErrorLog,
        state: StateFile,
        engine: Engine | None,
        job: JobOptions,
        fingerprint: dict[str, Any],
        options: RunOptions = RunOptions(),
        progress: ProgressReporter | None = None,
    ) -> None:
        self.reader = reader
        self.sink = sink
        self.errors = errors
        self.state = state
        self.engine = engine
        self.job = job
        self.fingerprint = fingerprint
        self.options = options
        self.progress = progress or NoProgress()

    # -- setting up ---------------------------------------------------------------------

    def prepare(self) -> Checkpoint:
        """The checkpoint to continue from; refuses to clobber what is not this job's."""
        if self.options.restart:
            self.sink.discard()
            self.errors.path.unlink(missing_ok=True)
            self.state.remove()
            checkpoint = None
        else:
            checkpoint = self.state.load()
        if checkpoint is None:
            if self.sink.exists():
                raise InvalidInput(
                    f"{self.sink.path} exists and has no progress file of this job; use "
                    "--restart to overwrite it, or choose another output"
                )
            checkpoint = Checkpoint(self.fingerprint)
            # Saved before any output exists, so a crash from here on is always resumable.
            self.state.save(checkpoint)
            return checkpoint
        if checkpoint.fingerprint != self.fingerprint:
            changed = sorted(
                k for k in {*checkpoint.fingerprint, *self.fingerprint}
                if checkpoint.fingerprint.get(k) != self.fingerprint.get(k)
            )
            raise InvalidInput(
                f"{self.state.path} belongs to a different job (changed: {', '.join(changed)}); "
                "rerun the original command to resume it, or use --restart to start over"
            )
        return checkpoint

    def needs_engine(self) -> bool:
        """False when the job is already finished (so no model or server is needed)."""
        checkpoint = self.state.load()
        return self.options.restart or checkpoint is None or not checkpoint.finished

    # -- running ------------------------------------------------------------------------

    def run(self) -> RunReport:
        started = time.monotonic()
        checkpoint = start = self.prepare()
        earlier = start.done + start.failed
        if not checkpoint.finished:
            if self.engine is None:
                raise ValueError("an unfinished job needs an engine")
            total = self.reader.count() if self.progress.wants_total else None
            self.progress.start(total, earlier)
            try:
                checkpoint = self._process(checkpoint)
            finally:
                self.progress.close()
        if not checkpoint.complete:
            self.sink.finalise()
            self.errors.close()
            if checkpoint.failed == 0:
                self.errors.path.unlink(missing_ok=True)
            checkpoint = checkpoint.advance(complete=True)
            self.state.save(checkpoint)
        else:
            self.sink.close()
        if self.reader.ignored:
            logger.info("ignored %d entries that are not documents (directories, links, "
                        "hidden files, non-HTML WARC records)", self.reader.ignored)
        return RunReport(
            done=checkpoint.done - start.done, failed=checkpoint.failed - start.failed,
            skipped=earlier, total_done=checkpoint.done, total_failed=checkpoint.failed,
            ignored=self.reader.ignored, chars=checkpoint.chars - start.chars,
            seconds=time.monotonic() - started, output=str(self.sink.path),
            errors=str(self.errors.path) if checkpoint.failed else None,
        )

    def _process(self, checkpoint: Checkpoint) -> Checkpoint:
        assert self.engine is not None
        self.sink.open(checkpoint.output)
        self.errors.open(checkpoint.errors_bytes)
        events: queue.Queue[Any] = queue.Queue()
        feed = _Feed(self.reader.scan(checkpoint.committed), self.job, events,
                     checkpoint.committed, checkpoint.last_key, self.options.max_ahead)
        loop = _Collector(self, feed, checkpoint)
        engine = self.engine

        def pump() -> None:
            try:
                for reply in engine.process(feed):
                    events.put(reply)
                events.put(_End())
            except BaseException as exc:  # handed to the main thread
                events.put(_Crash(exc))

        thread = threading.Thread(target=pump, name="batch-engine", daemon=True)
        thread.start()
        try:
            loop.run(events)
        except BaseException:
            feed.stop()
            loop.cancel_retries()
            engine.close()
            loop.commit_quietly()
            raise
        thread.join()
        return loop.commit(finished=True)


class _Collector:
    """The main thread's side: assemble, order, write, commit."""

    def __init__(self, job: BatchJob, feed: _Feed, checkpoint: Checkpoint) -> None:
        self.job = job
        self.feed = feed
        self.start = checkpoint
        self.checkpoint = checkpoint
        self.next = checkpoint.committed
        self.last_key = checkpoint.last_key
        self.ready: dict[int, Outcome] = {}
        self.attempts: dict[tuple[int, str], int] = {}
        self.timers: list[threading.Timer] = []
        self.done = self.failed = self.chars = 0
        self.committed_at = time.monotonic()

    def run(self, events: queue.Queue[Any]) -> None:
        interval = self.job.options.commit_interval
        while True:
            try:
                event = events.get(timeout=interval)
            except queue.Empty:
                event = None
            if isinstance(event, _End):
                break
            if isinstance(event, _Crash):
                raise event.error
            if isinstance(event, Reply):
                self._reply(event)
            elif isinstance(event, Outcome):
                self.ready[event.ordinal] = event
            self._write_ready()
            if self._commit_due():
                self.commit()
        self._write_ready()
        if self.ready or self.feed.open:
            raise RuntimeError(
                f"the engine ended with {len(self.feed.open) + len(self.ready)} documents "
                "unanswered; rerun to resume"
            )

    def _reply(self, reply: Reply) -> None:
        feed = self.feed
        ref = (reply.ordinal, reply.part)
        if reply.failure is not None and reply.failure.code in TRANSIENT_CODES:
            attempt = self.attempts.get(ref, 0)
            if attempt < self.job.options.retries:
                self.attempts[ref] = attempt + 1
                delay = self.job.options.retry_delay * (2 ** attempt)
                logger.info("document %d: %s; retrying in %.1fs", reply.ordinal,
                            reply.failure.reason, delay)
                with feed.cond:
                    request = feed.open[reply.ordinal].requests[reply.part]
                timer = threading.Timer(delay, feed.retry, args=(request,))
                timer.daemon = True
                self.timers.append(timer)
                timer.start()
                return
        with feed.cond:
            assembly = feed.open.get(reply.ordinal)
            if assembly is None:
                logger.warning("ignoring a reply for unknown document %d", reply.ordinal)
                return
            retry = assembly.fallback(reply)
            if retry is not None:
                logger.info("document %d: %s; %s again from %s", reply.ordinal,
                            reply.failure.reason if reply.failure else "", retry.part, retry.source)
                feed.retry(retry)
                return
            outcome = assembly.add(reply)
            if outcome is not None:
                del feed.open[reply.ordinal]
                feed.cond.notify_all()
        if outcome is not None:
            for part in assembly.requests:
                self.attempts.pop((reply.ordinal, part), None)
            self.ready[outcome.ordinal] = outcome

    def _write_ready(self) -> None:
        advanced = False
        while self.next in self.ready:
            outcome = self.ready.pop(self.next)
            if outcome.ok and isinstance(outcome.item, Document):
                self.job.sink.add(outcome)
                self.done += 1
                self.chars += len(outcome.item.text)
                self.job.progress.advance(1, 0, len(outcome.item.text))
            else:
                self.job.errors.add(outcome)
                self.failed += 1
                self.job.progress.advance(0, 1, 0)
            self.last_key = outcome.item.key
            self.next += 1
            advanced = True
        if advanced:
            self.feed.advance(self.next)

    def _commit_due(self) -> bool:
        options = self.job.options
        if self.next == self.checkpoint.committed:
            return False
        buffered = self.job.sink.pending + self.job.errors.pending
        return (buffered >= options.commit_bytes
                or time.monotonic() - self.committed_at >= options.commit_interval)

    def commit(self, finished: bool = False) -> Checkpoint:
        position = self.job.sink.commit()
        errors_bytes = self.job.errors.commit()
        checkpoint = self.checkpoint.advance(
            committed=self.next, last_key=self.last_key, output=position,
            errors_bytes=errors_bytes, finished=finished,
            done=self.start.done + self.done, failed=self.start.failed + self.failed,
            chars=self.start.chars + self.chars,
        )
        self.job.state.save(checkpoint)
        self.checkpoint = checkpoint
        self.committed_at = time.monotonic()
        return checkpoint

    def commit_quietly(self) -> None:
        """Keep what is already written in order when the run stops early."""
        try:
            self.commit()
        except Exception:
            logger.exception("could not commit the last results")

    def cancel_retries(self) -> None:
        for timer in self.timers:
            timer.cancel()


def process_documents(engine: Engine, items: list[Item], job: JobOptions, retries: int = 3,
                      retry_delay: float = 0.5) -> list[Outcome]:
    """Run a finite list of items through ``engine`` and return their outcomes in order.

    The simple, unordered-commit way used where the caller persists results itself (a Ray
    actor's batch): no state file, transient failures retried in rounds.
    """
    outcomes: dict[int, Outcome] = {}
    assemblies: dict[int, Assembly] = {}
    todo: list[Request] = []
    for item in items:
        if isinstance(item, Rejected):
            outcomes[item.ordinal] = Outcome(item, failure=Failure(item.code, item.reason))
            continue
        failure = precheck(item, job)
        if failure is not None:
            outcomes[item.ordinal] = Outcome(item, failure=failure)
            continue
        requests = requests_for(item, job)
        assemblies[item.ordinal] = Assembly.start(item, requests)
        todo.extend(requests)
    attempt = 0
    while todo:
        again: list[Request] = []
        fallbacks: list[Request] = []  # another language to try: no pause, no attempt used
        for reply in engine.process(iter(todo)):
            failure = reply.failure
            if failure is not None and failure.code in TRANSIENT_CODES and attempt < retries:
                again.append(assemblies[reply.ordinal].requests[reply.part])
                continue
            retry = assemblies[reply.ordinal].fallback(reply)
            if retry is not None:
                fallbacks.append(retry)
                continue
            outcome = assemblies[reply.ordinal].add(reply)
            if outcome is not None:
                outcomes[reply.ordinal] = outcome
        if again:
            time.sleep(retry_delay * (2 ** attempt))
            attempt += 1
        todo = again + fallbacks
    return [outcomes[item.ordinal] for item in items]
