"""The in-process engine: the job drives the model layer directly, no server and no gRPC.

It builds the same service a server would (store, registry, cache, ``Dragoman``) from the
same configuration (``DRAGOMAN_MODELS`` and the other ``DRAGOMAN_*`` settings), so a batch
job translates exactly as the server does, batching sentences across the documents in
flight. Ray actors use it too, one per actor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future

from dragoman.server.batcher import Priority
from dragoman.server.batchjob.inflight import FutureEngine
from dragoman.server.batchjob.job import Failure, JobOptions, Request
from dragoman.server.build import build_service
from dragoman.server.config import ServerConfig
from dragoman.server.errors import DragomanError
from dragoman.server.futures import then
from dragoman.server.service import Dragoman, SummariseInput, TranslateInput
from dragoman.server.text.segment import TextFormat

logger = logging.getLogger(__name__)

def classify(exc: BaseException) -> Failure:
    """A model-layer exception as an error record's code and reason."""
    if isinstance(exc, DragomanError) and exc.code != "INTERNAL":
        return Failure(exc.code, str(exc))
    logger.error("internal error on a document", exc_info=exc)
    return Failure("INTERNAL", f"{type(exc).__name__}: {exc}")


def check_route(service: Dragoman, job: JobOptions) -> None:
    """Fail before reading any input when the given language pair has no model at all."""
    if job.task == "translate" and job.source_language and \
            job.source_language != job.target_language:
        service.route(job.source_language, job.target_language, job.model)


def submitter(service: Dragoman, job: JobOptions) -> Callable[[Request], Future[str]]:
    """``submit(request) -> Future[str]`` for ``job`` against ``service``."""

    def translate(request: Request) -> Future[str]:
        future = service.translate(TranslateInput(
            text=request.text,
            target_language=job.target_language,
            source_language=request.source or job.source_language,
            format=TextFormat(request.format),
            beam_size=job.beam_size,
            id=request.tag,
            model=job.model,
            priority=Priority.BULK,  # an archive job yields to interactive calls
        ))
        return then(future, lambda out: out.text)

    def summarise(request: Request) -> Future[str]:
        future = service.summarise(SummariseInput(
            text=request.text,
            language=job.source_language,
            target_language=job.target_language,
            method=job.method,
            max_sentences=job.max_sentences,
            max_words=job.max_words,
            format=TextFormat(request.format),
            id=request.tag,
            model=job.model,
            priority=Priority.BULK,
        ))
        return then(future, lambda out: out.summary)

    return translate if job.task == "translate" else summarise


class LocalEngine(FutureEngine):
    """Documents straight into an in-process ``Dragoman``; ``close`` also frees the models."""

    def __init__(self, service: Dragoman, job: JobOptions, window: int) -> None:
        # Stay under the service's own admission limit, so it never refuses us as overloaded.
        window = max(1, min(window, service.limits.max_in_flight))
        super().__init__(submitter(service, job), classify, window)
        self.service = service

    def close(self) -> None:
        super().close()
        self.service.close(timeout=5.0)


def open_local_engine(config: ServerConfig, job: JobOptions, window: int) -> LocalEngine:
    service = build_service(config)
    try:
        check_route(service, job)
    except BaseException:
        service.close(timeout=1.0)
        raise
    return LocalEngine(service, job, window)
