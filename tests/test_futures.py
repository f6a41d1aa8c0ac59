from __future__ import annotations

from concurrent.futures import Future

import pytest

from dragoman.server.errors import Cancelled, DeadlineExceeded, InvalidInput
from dragoman.server.futures import chain, completed, failed, gather, recover, then


def test_gather_keeps_order_and_reports_first_error() -> None:
    a, b, c = Future(), Future(), Future()
    out = gather([a, b, c])
    c.set_result(3)
    a.set_result(1)
    assert not out.done()
    b.set_result(2)
    assert out.result() == [1, 2, 3]
    x, y = Future(), Future()
    out = gather([x, y])
    y.set_exception(DeadlineExceeded("late"))
    with pytest.raises(DeadlineExceeded, match="late"):
        out.result()
    assert x.cancelled(), "the rest is cancelled once one input failed"


def test_cancelling_outer_cancels_pending_inputs() -> None:
    a, b = Future(), Future()
    out = gather([a, b])
    out.cancel()
    assert a.cancelled() and b.cancelled()


def test_then_and_errors_from_fn() -> None:
    assert then(completed(2), lambda v: v * 3).result() == 6
    with pytest.raises(ZeroDivisionError):
        then(completed(0), lambda v: 1 / v).result()
    with pytest.raises(InvalidInput):
        then(failed(InvalidInput("bad")), lambda v: v).result()


def test_chain_cancels_the_inner_future() -> None:
    inner: Future[int] = Future()
    out = chain(completed(1), lambda _: inner)
    assert not out.done()
    out.cancel()
    assert inner.cancelled()
    src: Future[int] = Future()
    out = chain(src, lambda v: completed(v + 1))
    src.set_result(1)
    assert out.result() == 2


def test_cancelled_input_surfaces_as_cancelled_error() -> None:
    src: Future[int] = Future()
    out = then(src, lambda v: v)
    src.cancel()
    with pytest.raises(Cancelled):
        out.result()


def test_recover_only_the_named_errors() -> None:
    assert recover(failed(InvalidInput("x")), InvalidInput, lambda e: "fallback").result() == "fallback"
    assert recover(completed("ok"), InvalidInput, lambda e: "fallback").result() == "ok"
    with pytest.raises(DeadlineExceeded):
        recover(failed(DeadlineExceeded("late")), InvalidInput, lambda e: "fallback").result()
