"""The server engine: documents go to a Dragoman server through the client library.

Translations share one TranslateStream with a bounded number of documents unanswered, and a
document the server rejects comes back as a per-document error while the stream goes on.
Summaries have no stream, so they are unary calls from a small thread pool. This module is
the only part of the batch job that touches gRPC (through ``dragoman.client``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from dragoman.client import Client, TranslateInput
from dragoman.client.errors import DragomanError as ClientError
from dragoman.server.batchjob.inflight import FutureEngine
from dragoman.server.batchjob.job import Failure, JobOptions, Reply, Request
from dragoman.server.errors import InvalidInput
from dragoman.server.text.unicode import unicode_problem

logger = logging.getLogger(__name__)

INVALID_ARGUMENT = InvalidInput.code


@dataclass(frozen=True)
class _Ended:
    """The stream is over; ``error`` is why, when it broke."""

    error: BaseException | None


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, ClientError):
        return Failure(exc.code, exc.details)
    logger.error("unexpected error on a document", exc_info=exc)
    return Failure("INTERNAL", f"{type(exc).__name__}: {exc}")


class RemoteEngine:
    """Sends requests to the server behind ``client``; the caller owns (and closes) it."""

    def __init__(self, client: Client, job: JobOptions, window: int) -> None:
        self.client = client
        self.job = job
        self.window = max(1, window)
        self._pool: ThreadPoolExecutor | None = None
        self._summaries: FutureEngine | None = None
        self._stream: Iterator[object] | None = None

    def process(self, requests: Iterable[Request]) -> Iterator[Reply]:
        if self.job.task == "translate":
            return self._translate(requests)
        self._pool = ThreadPoolExecutor(self.window, thread_name_prefix="batch-summarise")
        self._summaries = FutureEngine(self._summarise, classify, self.window)
        return self._summaries.process(requests)

    def _translate(self, requests: Iterable[Request]) -> Iterator[Reply]:
        """Replies of the stream, and of documents that cannot be sent (answered here, so
        one of them never ends the stream); a thread merges the two in completion order."""
        job = self.job
        replies: queue.Queue[Reply | _Ended] = queue.Queue()

        def sendable() -> Iterator[TranslateInput]:
            for r in requests:
                problem = unicode_problem(r.text)
                if problem:
                    replies.put(Reply(r.ordinal, r.part, failure=Failure(INVALID_ARGUMENT, problem)))
                    continue
                yield TranslateInput(text=r.text, id=r.tag, format=r.format,
                                     source=r.source or None)

        results = self.client.translate_many(
            sendable(), job.target_language, source=job.source_language or None,
            beam_size=job.beam_size, model=job.model or None, max_in_flight=self.window,
            on_error="yield", priority="bulk",
        )
        self._stream = results

        def pump() -> None:
            try:
                for result in results:
                    ordinal, part = Request.parse_tag(result.id)
                    if result.error is not None:
                        replies.put(Reply(ordinal, part,
                                          failure=Failure(result.error.code, result.error.message)))
                    else:
                        replies.put(Reply(ordinal, part, result.text))
            except BaseException as exc:  # re-raised on the consumer's thread
                replies.put(_Ended(exc))
            else:
                replies.put(_Ended(None))

        threading.Thread(target=pump, name="batch-stream", daemon=True).start()
        while not isinstance(item := replies.get(), _Ended):
            yield item
        if item.error is not None:
            raise item.error

    def _summarise(self, request: Request) -> Future[str]:
        assert self._pool is not None
        job = self.job
        return self._pool.submit(
            lambda: self.client.summarise(
                request.text,
                target=job.target_language or None,
                language=job.source_language or None,
                method=job.method,
                max_sentences=job.max_sentences,
                max_words=job.max_words,
                format=request.format,
                id=request.tag,
                model=job.model or None,
                priority="bulk",
            ).summary
        )

    def close(self) -> None:
        if self._summaries is not None:
            self._summaries.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        stream = self._stream
        if stream is not None and hasattr(stream, "close"):
            try:
                stream.close()  # a generator: closing it cancels the RPC
            except ValueError:  # still running on the engine thread
                logger.debug("stream busy; it ends when the runner stops feeding it")
