"""What every HTTP dialect does around a service call: find the caller, check the size
limits before any work, charge the characters, and await the service off the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from dragoman.server.access import AccessControl, Principal
from dragoman.server.errors import DragomanError, InvalidInput, Overloaded
from dragoman.server.futures import prepare_off_loop, result_by
from dragoman.server.service import (
    Dragoman,
    LanguagesInfo,
    SummariseInput,
    SummariseOutput,
    TranslateInput,
    TranslateOutput,
)
from dragoman.server.text.langdetect import Detection

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _pair(req: TranslateInput) -> tuple[str, str, str]:
    return (req.source_language, req.target_language, req.model)


class TooLarge(InvalidInput):
    """A request over ``--max-chars`` (per text or in total): DeepL answers 413 for it."""


class Calls:
    """The shared service facade as the HTTP adapters see it."""

    def __init__(self, service: Dragoman, executor: ThreadPoolExecutor, access: AccessControl) -> None:
        self.service = service
        self.executor = executor
        self.access = access
        self.characters = 0  # characters translated over HTTP since start (DeepL usage fallback)

    @property
    def max_chars(self) -> int:
        return self.service.limits.max_chars

    # -- access -----------------------------------------------------------------------

    def authenticate(self, key: str | None) -> Principal:
        """The caller of a request (cheap: a digest and a dictionary, as on the gRPC side)."""
        return self.access.authenticate(key or None)

    def usage(self, principal: Principal) -> tuple[int, int | None]:
        """(characters used, limit or None); the access check's own count when it keeps one."""
        usage = getattr(self.access, "usage", None)
        if callable(usage):
            used, limit = usage(principal)
            return int(used), limit
        return self.characters, None

    def check_sizes(self, texts: Sequence[str]) -> int:
        """Refuse a request over the limits before any work; returns its character count."""
        total = 0
        for text in texts:
            if len(text) > self.max_chars:
                raise TooLarge(
                    f"a text has {len(text)} characters; the limit is {self.max_chars} "
                    "(split the document or raise --max-chars)")
            total += len(text)
        if total > self.max_chars:
            raise TooLarge(
                f"the request has {total} characters in {len(texts)} texts; the limit is "
                f"{self.max_chars} per request")
        room = self.service.limits.max_in_flight - self.service.in_flight
        if len(texts) > room:
            raise Overloaded(
                f"{self.service.in_flight} documents are in flight (limit "
                f"{self.service.limits.max_in_flight}); retry later")
        return total

    async def charged(self, principal: Principal, chars: int, work: Callable[[], Any]) -> Any:
        """Charge ``chars`` to ``principal``, run ``work()``; refund when the service refuses
        or the client hangs up first (its work is dropped)."""
        self.access.charge(principal, chars)
        try:
            result = await work()
        except (DragomanError, asyncio.CancelledError):
            refund = getattr(self.access, "refund", None)
            if callable(refund):
                refund(principal, chars)
            raise
        self.characters += chars
        return result

    # -- the service ------------------------------------------------------------------

    async def sync(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking call on the shared pool, never on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(  # keeps the request id
            self.executor, contextvars.copy_context().run, fn, *args)

    async def _future(self, fn: Callable[..., Future[T]], *args: Any,
                      pair: tuple[str, str, str] | None = None) -> T:
        """Prepare on the pool (``fn`` returns a future), then await the future; a cancelled
        request cancels its queued work.

        HTTP callers set no deadline, so the server's ``--max-request-seconds`` is theirs, as
        on gRPC: a request for a known ``pair`` (source, target, model) that cannot be decoded
        in time is refused on the loop, and one that runs out of time fails with its work
        dropped."""
        service = self.service
        deadline = service.request_deadline(None)
        if pair is not None:
            service.refuse_if_late(*pair, deadline)
        fut = await prepare_off_loop(self.executor, fn, *args, deadline)
        return await result_by(fut, deadline, service.limits.max_request_seconds)

    async def translate(self, req: TranslateInput) -> TranslateOutput:
        return await self._future(self.service.translate, req, pair=_pair(req))

    async def translate_detected(self, req: TranslateInput) -> tuple[TranslateOutput, Detection | None]:
        """Translate; with no source language, detect it first in the same trip to the pool
        (the dialects report the detection's confidence, which the service does not keep)."""
        found: list[Detection] = []

        def prepare(deadline: float | None) -> Future[TranslateOutput]:
            if req.source_language:
                return self.service.translate(req, deadline)
            found.append(self.service.detect(req.text))
            return self.service.translate(replace(req, source_language=found[0].language), deadline)

        out = await self._future(prepare, pair=_pair(req))
        return out, (found[0] if found else None)

    async def translate_all(
        self, reqs: Sequence[TranslateInput],
    ) -> list[tuple[TranslateOutput, Detection | None]]:
        """Every document at once, so they share the batcher's batches; the first error wins."""
        tasks = [asyncio.ensure_future(self.translate_detected(r)) for r in reqs]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()

    async def summarise(self, req: SummariseInput) -> SummariseOutput:
        return await self._future(self.service.summarise, req)

    async def detect(self, text: str) -> Detection:
        return await self.sync(self.service.detect, text)

    async def languages(self) -> LanguagesInfo:
        return await self.sync(self.service.languages)


