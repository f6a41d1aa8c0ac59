"""Small combinators over ``concurrent.futures.Future``.

The model layer hands back futures rather than blocking, so the asyncio RPC layer can await
them without tying up a thread per call, the batch job can simply call ``.result()``, and
cancelling the outer future cancels the queued work under it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from concurrent.futures import Executor, Future
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")
U = TypeVar("U")


async def prepare_off_loop(
    executor: Executor, fn: Callable[..., Future[T]], *args: Any
) -> Future[T]:
    """Run ``fn(*args)`` (the cheap preparation that returns the work's future) on the pool
    in a copy of this context (the request id goes along). A caller cancelled meanwhile
    cancels the work as soon as it exists. Shared by the gRPC and HTTP adapters."""
    prepared = asyncio.get_running_loop().run_in_executor(
        executor, contextvars.copy_context().run, functools.partial(fn, *args))
    try:
        return await asyncio.shield(prepared)
    except asyncio.CancelledError:
        prepared.add_done_callback(_cancel_prepared)
        raise


def _cancel_prepared(task: asyncio.Future[Future[Any]]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().cancel()


async def result_by(fut: Future[T], deadline: float | None, max_request_seconds: float) -> T:
    """Await ``fut`` from an adapter's event loop until the ``time.monotonic()`` deadline;
    past it the work is cancelled and the call fails with DeadlineExceeded at once (shared by
    the gRPC and HTTP adapters, so both say the same)."""
    from dragoman.server.errors import DeadlineExceeded

    if deadline is None:
        return await asyncio.wrap_future(fut)
    try:
        return await asyncio.wait_for(
            asyncio.wrap_future(fut), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise DeadlineExceeded(
            "the call ran out of time in the server (its deadline, or the server's "
            f"--max-request-seconds {max_request_seconds:g}); its work was dropped") from None


def completed(value: T) -> Future[T]:
    fut: Future[T] = Future()
    fut.set_result(value)
    return fut


def failed(exc: BaseException) -> Future[Any]:
    fut: Future[Any] = Future()
    fut.set_exception(exc)
    return fut


def gather(futures: Sequence[Future[T]]) -> Future[list[T]]:
    """One future for all of ``futures``: their results in order, or the first error.

    Cancelling the returned future cancels every input that has not started.
    """
    out: Future[list[T]] = Future()
    if not futures:
        out.set_result([])
        return out
    remaining = [len(futures)]
    lock = threading.Lock()

    def on_done(_: Future[T]) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if out.done():
            return
        # Settle first: cancelling the others re-enters this callback, which must not win.
        if _.cancelled():
            _settle(out, exc=_Cancelled())
            _cancel_all()
            return
        exc = _.exception()
        if exc is not None:
            _settle(out, exc=exc)
            _cancel_all()
        elif last:
            _settle(out, value=[f.result() for f in futures])

    def _cancel_all() -> None:
        for f in futures:
            f.cancel()

    def on_outer(f: Future[list[T]]) -> None:
        if f.cancelled():
            _cancel_all()

    out.add_done_callback(on_outer)
    for f in futures:
        f.add_done_callback(on_done)
    return out


def _link(
    src: Future[Any],
    out: Future[Any],
    on_value: Callable[[Any], None],
    on_error: Callable[[BaseException], None] | None = None,
) -> None:
    """When ``src`` settles, call ``on_value``/``on_error`` (which settle ``out``); errors
    raised by them settle ``out`` too. Cancelling ``out`` cancels ``src``."""

    def on_done(f: Future[Any]) -> None:
        if out.done():
            return
        if f.cancelled():
            _settle(out, exc=_Cancelled())
            return
        exc = f.exception()
        try:
            if exc is None:
                on_value(f.result())
            elif on_error is not None:
                on_error(exc)
            else:
                _settle(out, exc=exc)
        except BaseException as err:  # handed to the caller
            _settle(out, exc=err)

    def on_outer(o: Future[Any]) -> None:
        if o.cancelled():
            src.cancel()

    out.add_done_callback(on_outer)
    src.add_done_callback(on_done)


def then(fut: Future[T], fn: Callable[[T], U]) -> Future[U]:
    """A future of ``fn(result)``; errors (including from ``fn``) propagate."""
    out: Future[U] = Future()
    _link(fut, out, lambda value: _settle(out, value=fn(value)))
    return out


def chain(fut: Future[T], fn: Callable[[T], Future[U]]) -> Future[U]:
    """Like :func:`then` where ``fn`` itself returns a future (e.g. a second model pass)."""
    out: Future[U] = Future()

    def start_inner(value: T) -> None:
        _link(fn(value), out, lambda inner_value: _settle(out, value=inner_value))

    _link(fut, out, start_inner)
    return out


def recover(
    fut: Future[T], errors: type[BaseException] | tuple[type[BaseException], ...],
    fn: Callable[[BaseException], T],
) -> Future[T]:
    """``fut``'s result, or ``fn(error)`` when it fails with one of ``errors``."""
    out: Future[T] = Future()

    def on_error(exc: BaseException) -> None:
        if not isinstance(exc, errors):
            raise exc
        _settle(out, value=fn(exc))

    _link(fut, out, lambda value: _settle(out, value=value), on_error)
    return out


def _Cancelled() -> BaseException:
    from dragoman.server.errors import Cancelled

    return Cancelled("the call was cancelled")


def _settle(fut: Future[Any], *, value: Any = None, exc: BaseException | None = None) -> None:
    """Set a result unless the future is already done (racing callbacks, cancellation)."""
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)
    except Exception:  # InvalidStateError: already settled or cancelled
        pass
