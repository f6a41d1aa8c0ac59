"""asyncio servicers: thin adapters from protobuf to the service and back.

Preparation (segmenting, tokenising) runs on a thread pool and decoding on the batcher's
threads, so the event loop only awaits futures. A cancelled call cancels its queued work.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable

import grpc

from dragoman.server.batcher import Priority
from dragoman.server.errors import DragomanError, Unavailable
from dragoman.server.futures import prepare_off_loop, result_by
from dragoman.server.rpc import messages
from dragoman.server.rpc.auth import principal_of
from dragoman.server.rpc.status import status_of
from dragoman.server.service import Dragoman
from dragoman.v1 import summarisation_pb2 as spb
from dragoman.v1 import summarisation_pb2_grpc as spb_grpc
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

STREAM_WINDOW = 64  # documents of one stream in flight at once
SHUTTING_DOWN = "the server is shutting down; retry (another replica will answer)"
_END_STREAM = pb.TranslateResponse()  # put in a stream's queue by abort_all


class _Calls:
    """Runs service calls off the event loop and maps their errors."""

    def __init__(self, service: Dragoman, executor: ThreadPoolExecutor) -> None:
        self.service = service
        self.executor = executor
        self._pending: set[Future[Any]] = set()  # the service's futures of calls in flight
        self.streams: set[Callable[[], None]] = set()  # each ends one open stream
        self.aborting = False

    def abort_all(self) -> int:
        """Answer every call still running UNAVAILABLE now and drop its queued work.

        For the end of the grace period: calls that gRPC itself had to cancel would end with
        a vague status and a CancelledError traceback in the log. Returns how many calls and
        streams were ended."""
        self.aborting = True
        pending, streams = list(self._pending), list(self.streams)
        for fut in pending:
            fut.cancel()
        for end in streams:
            end()
        return len(pending) + len(streams)

    async def run(
        self, context: grpc.aio.ServicerContext, fn: Callable[..., Future[Any]], *args: Any,
        chars: int = 0, pair: tuple[str, str, str] | None = None,
        priority: Priority = Priority.INTERACTIVE,
    ) -> Any:
        """Await ``fn(*args, deadline)``; raises DragomanError for the caller to map.

        ``pair`` (source, target, model as requested) lets a call that cannot finish before
        its deadline be refused before it is handed to a worker thread; ``priority`` (the
        call's class) says which queued work is ahead of it.

        ``chars`` are charged to the caller's key before any work (refunded when the service
        refuses the call outright). The deadline is the caller's, capped by
        ``--max-request-seconds``; past it the work is cancelled and the call fails with
        DEADLINE_EXCEEDED at once.
        """
        service = self.service
        deadline = service.request_deadline(context.time_remaining())
        if pair is not None:  # on the loop: a refusal under overload costs microseconds
            service.refuse_if_late(*pair, deadline, priority)
        principal = None
        if chars and service.access.required:
            principal = principal_of(service.access, context)
            service.access.charge(principal, chars)
        try:
            fut = await prepare_off_loop(self.executor, fn, *args, deadline)
        except DragomanError:
            if principal is not None:
                service.access.refund(principal, chars)
            raise
        if self.aborting:  # the grace period ran out while the call was being prepared
            fut.cancel()
            raise Unavailable(SHUTTING_DOWN)
        self._pending.add(fut)
        try:
            return await result_by(fut, deadline, service.limits.max_request_seconds)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.aborting and fut.cancelled() and (task is None or not task.cancelling()):
                raise Unavailable(SHUTTING_DOWN) from None  # abort_all, not the caller
            raise
        finally:
            self._pending.discard(fut)

    async def call(
        self, context: grpc.aio.ServicerContext, fn: Callable[..., Future[Any]], *args: Any,
        chars: int = 0, pair: tuple[str, str, str] | None = None,
        priority: Priority = Priority.INTERACTIVE,
    ) -> Any:
        try:
            return await self.run(context, fn, *args, chars=chars, pair=pair, priority=priority)
        except DragomanError as exc:
            code, message = status_of(exc)
            await context.abort(code, message)
        except Exception:  # never leak a traceback to the caller
            logger.exception("internal error")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error (see the server log)")

    async def sync(self, context: grpc.aio.ServicerContext, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking service method (no future) on the pool with the same error mapping."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self.executor, contextvars.copy_context().run, fn, *args)
        except DragomanError as exc:
            code, message = status_of(exc)
            await context.abort(code, message)
        except Exception:
            logger.exception("internal error")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error (see the server log)")


def _pair(req: pb.TranslateRequest) -> tuple[str, str, str]:
    return req.source_language, req.target_language, req.model


def _priority(req: pb.TranslateRequest, default: Priority) -> Priority:
    """The request's class for the admission check (an unknown value is refused later)."""
    try:
        return messages.priority(req.priority, default)
    except DragomanError:
        return default


class TranslationServicer(pb_grpc.TranslationServiceServicer):
    def __init__(self, calls: _Calls) -> None:
        self._calls = calls
        # Replies of all streams made but not yet taken by gRPC (bounded by the windows).
        self.unsent_replies = 0

    def _translate(self, req: pb.TranslateRequest, deadline: float | None) -> Future[Any]:
        return self._calls.service.translate(messages.translate_input(req), deadline)

    def _translate_bulk(self, req: pb.TranslateRequest, deadline: float | None) -> Future[Any]:
        """A stream's document: bulk unless it asks otherwise."""
        return self._calls.service.translate(
            messages.translate_input(req, Priority.BULK), deadline)

    async def Translate(self, request: pb.TranslateRequest, context: grpc.aio.ServicerContext) -> pb.TranslateResponse:
        out = await self._calls.call(context, self._translate, request, chars=len(request.text),
                                     pair=_pair(request),
                                     priority=_priority(request, Priority.INTERACTIVE))
        return messages.translate_response(out)

    async def TranslateStream(
        self, request_iterator: AsyncIterator[pb.TranslateRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TranslateResponse]:
        """Documents in, replies out in completion order, with flow control both ways.

        A document holds its place in the stream's window from when it is read until its
        reply has been handed to gRPC (each ``yield`` returns only when the previous write
        has completed, and gRPC completes writes only as the client reads). So a client that
        stops reading stops the server reading its requests, and gRPC's flow control then
        stops the client's writes: the server holds at most ``STREAM_WINDOW`` documents and
        replies per stream, however many the client tries to send.
        """
        results: asyncio.Queue[pb.TranslateResponse | None] = asyncio.Queue()
        window = asyncio.Semaphore(STREAM_WINDOW)
        tasks: set[asyncio.Task[None]] = set()
        unsent = 0  # replies of this stream made but not yet handed to gRPC

        async def one(req: pb.TranslateRequest) -> None:
            nonlocal unsent
            try:
                out = await self._calls.run(context, self._translate_bulk, req,
                                            chars=len(req.text), pair=_pair(req),
                                            priority=_priority(req, Priority.BULK))
                resp = messages.translate_response(out)
            except DragomanError as exc:
                code, message = status_of(exc)
                resp = pb.TranslateResponse(
                    id=req.id, error=pb.DocumentError(code=code.name, message=message))
            except Exception:  # one document must not end the stream
                logger.exception("internal error on document %r", req.id)
                resp = pb.TranslateResponse(id=req.id, error=pb.DocumentError(
                    code="INTERNAL", message="internal error (see the server log)"))
            unsent += 1
            self.unsent_replies += 1
            results.put_nowait(resp)

        async def read() -> None:
            try:
                async for req in request_iterator:
                    await window.acquire()  # waits while the client does not read
                    task = asyncio.create_task(one(req))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if tasks:
                    await asyncio.gather(*list(tasks))
            finally:
                results.put_nowait(None)

        def end() -> None:  # abort_all: the grace period is running out
            results.put_nowait(_END_STREAM)

        self._calls.streams.add(end)
        reader = asyncio.create_task(read())
        try:
            while (item := await results.get()) is not None:
                if item is _END_STREAM:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
                yield item  # returns once gRPC has taken the reply
                unsent -= 1
                self.unsent_replies -= 1
                window.release()
            await reader  # surfaces a broken request stream
        finally:
            self._calls.streams.discard(end)
            self.unsent_replies -= unsent
            reader.cancel()
            for task in list(tasks):
                task.cancel()

    async def DetectLanguage(self, request: pb.DetectLanguageRequest, context: grpc.aio.ServicerContext) -> pb.DetectLanguageResponse:
        det = await self._calls.sync(context, self._calls.service.detect, request.text)
        return messages.detect_response(det)

    async def ListLanguages(self, request: pb.ListLanguagesRequest, context: grpc.aio.ServicerContext) -> pb.ListLanguagesResponse:
        info = await self._calls.sync(context, self._calls.service.languages)
        return messages.languages_response(info)


class SummarisationServicer(spb_grpc.SummarisationServiceServicer):
    def __init__(self, calls: _Calls) -> None:
        self._calls = calls

    def _summarise(self, req: spb.SummariseRequest, deadline: float | None) -> Future[Any]:
        return self._calls.service.summarise(messages.summarise_input(req), deadline)

    async def Summarise(self, request: spb.SummariseRequest, context: grpc.aio.ServicerContext) -> spb.SummariseResponse:
        out = await self._calls.call(context, self._summarise, request, chars=len(request.text))
        return messages.summarise_response(out)
