"""An engine over any ``submit(request) -> Future``, with a bounded number in flight.

The in-process engine submits to the model layer, whose calls already return futures; the
server engine's summaries go through a thread pool of unary calls. Either way a feeder
thread pulls requests (which may block: the runner throttles them) and replies are handed
to the consumer in completion order.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from typing import Any

from dragoman.server.batchjob.job import Failure, Reply, Request

logger = logging.getLogger(__name__)

Classify = Callable[[BaseException], Failure]


class _FeedDone:
    pass


@dataclass(frozen=True)
class _FeedFailed:
    error: BaseException


class FutureEngine:
    """Runs requests through ``submit`` with at most ``window`` unanswered at once."""

    def __init__(self, submit: Callable[[Request], Future[str]], classify: Classify,
                 window: int) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self._submit = submit
        self._classify = classify
        self._window = window
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    def process(self, requests: Iterable[Request]) -> Iterator[Reply]:
        replies: queue.Queue[Any] = queue.Queue()
        slots = threading.Semaphore(self._window)
        submitted = [0]

        def finished(request: Request, future: Future[str]) -> None:
            try:
                reply = Reply(request.ordinal, request.part, future.result())
            except CancelledError:
                reply = Reply(request.ordinal, request.part,
                              failure=Failure("CANCELLED", "the request was cancelled"))
            except BaseException as exc:  # becomes the document's error record
                reply = Reply(request.ordinal, request.part, failure=self._classify(exc))
            replies.put(reply)
            slots.release()

        def feed() -> None:
            try:
                for request in requests:
                    while not slots.acquire(timeout=0.5):
                        if self._closed.is_set():
                            return
                    if self._closed.is_set():
                        return
                    submitted[0] += 1
                    try:
                        future = self._submit(request)
                    except Exception as exc:  # refused at once: same as failed
                        replies.put(Reply(request.ordinal, request.part,
                                          failure=self._classify(exc)))
                        slots.release()
                        continue
                    future.add_done_callback(functools.partial(finished, request))
            except BaseException as exc:  # re-raised in the consumer
                replies.put(_FeedFailed(exc))
            finally:
                replies.put(_FeedDone())

        thread = threading.Thread(target=feed, name="batch-feed", daemon=True)
        thread.start()
        received = 0
        fed = False
        while not fed or received < submitted[0]:
            item = replies.get()
            if isinstance(item, _FeedDone):
                fed = True
            elif isinstance(item, _FeedFailed):
                self.close()
                raise item.error
            else:
                received += 1
                yield item
            if self._closed.is_set() and fed:
                return
