"""Logging for operators: repeated warnings are rate-limited with a count, a progress bar is
never broken by log lines, JSON lines carry request ids.

The flood this guards against: one test run wrote 7,754 copies of the engine's
``output reached max_decoding_length`` warning to the server log, and ``dragoman batch
--local`` printed 601 of them over its progress bar in 15 s.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from dragoman.server.batchjob.progress import BarProgress
from dragoman.server.observability import logs

ENGINE_WARNING = "model %s: output reached max_decoding_length=%d for a %d-token input"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def isolated_logger() -> Iterator[logging.Logger]:
    """The engine's logger with no inherited handlers, restored afterwards."""
    logger = logging.getLogger("dragoman.server.seq2seq")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield logger
    finally:
        logger.handlers[:], logger.propagate, logger.level = saved


def test_repeated_warning_is_logged_once_per_window_with_a_count(
    isolated_logger: logging.Logger,
) -> None:
    stream = io.StringIO()
    clock = Clock()
    handler = logs.make_handler("text", stream, rate_limit=logs.RateLimitFilter(clock=clock))
    isolated_logger.addHandler(handler)
    for n in range(5000):
        isolated_logger.warning(ENGINE_WARNING, "m", 40 + n % 7, n)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "output reached max_decoding_length=40" in lines[0]
    clock.now += 61  # the window is over: the next one goes out with the count
    isolated_logger.warning(ENGINE_WARNING, "m", 99, 5)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].endswith("max_decoding_length=99 for a 5-token input "
                             "(4,999 more in the last 60 s)")
    # Another message, and anything below WARNING, is never held back.
    isolated_logger.warning("model %s failed on a batch of %d", "m", 3)
    for n in range(3):
        isolated_logger.info("loaded %d", n)
    assert len(stream.getvalue().splitlines()) == 6


def test_held_back_counts_are_reported_when_the_handler_closes(
    isolated_logger: logging.Logger,
) -> None:
    """A flood that stops before the window ends is still counted, at exit."""
    stream = io.StringIO()
    handler = logs.make_handler("text", stream)
    isolated_logger.addHandler(handler)
    for n in range(300):
        isolated_logger.warning(ENGINE_WARNING, "m", 40, n)
    handler.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].endswith(f"(299 more like {ENGINE_WARNING!r} not shown)")


def test_the_cli_logging_set_up_rate_limits(isolated_logger: logging.Logger) -> None:
    """configure_logging (serve and batch) installs the filter on the root handler."""
    isolated_logger.propagate = True
    stream = io.StringIO()
    root = logging.getLogger()
    before = root.handlers[:]
    try:
        logs.configure_logging("text", stream=stream)
        for n in range(1000):
            isolated_logger.warning(ENGINE_WARNING, "m", 40, n)
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        for handler in before:
            if handler not in root.handlers:
                root.addHandler(handler)
    assert stream.getvalue().count("max_decoding_length") == 1


def _bar_lines(output: str) -> list[str]:
    """What a terminal shows: each line's text after its last carriage return."""
    return [line.rsplit("\r", 1)[-1] for line in output.split("\n")]


def test_log_lines_do_not_break_the_progress_bar(isolated_logger: logging.Logger) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    isolated_logger.addHandler(handler)
    bar = BarProgress(stream)
    bar.start(total=10, skipped=0)
    for n in range(10):
        bar.advance(1, 0, 100)
        isolated_logger.warning("warning number %d", n)
    bar.close()
    isolated_logger.warning("after the bar")
    shown = _bar_lines(stream.getvalue())
    for n in range(10):
        assert f"WARNING: warning number {n}" in shown, stream.getvalue()
    assert "WARNING: after the bar" in shown
    assert handler.stream is stream  # given back when the bar closed


def test_json_lines_parse_and_carry_the_request_id(isolated_logger: logging.Logger) -> None:
    stream = io.StringIO()
    isolated_logger.addHandler(logs.make_handler("json", stream))
    with logs.request_scope("req-123"):
        isolated_logger.warning("translating %d sentences", 3)
    isolated_logger.info("no request here")
    try:
        raise ValueError("boom")
    except ValueError:
        isolated_logger.exception("it failed")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["message"] for r in records] == [
        "translating 3 sentences", "no request here", "it failed"]
    assert records[0]["request_id"] == "req-123" and records[1]["request_id"] is None
    assert records[0]["level"] == "WARNING" and records[0]["logger"] == "dragoman.server.seq2seq"
    assert records[0]["timestamp"].endswith("Z") and "T" in records[0]["timestamp"]
    assert "ValueError: boom" in records[2]["exception"]


def test_text_lines_carry_the_request_id(isolated_logger: logging.Logger) -> None:
    stream = io.StringIO()
    isolated_logger.addHandler(logs.make_handler("text", stream))
    with logs.request_scope("abc"):
        isolated_logger.warning("inside")
    isolated_logger.warning("outside")
    inside, outside = stream.getvalue().splitlines()
    assert "[request abc]" in inside and "inside" in inside
    assert "request" not in outside


@pytest.mark.parametrize(("given", "kept"), [
    ("abc-123_X.y:z", True), ("", False), ("x" * 200, False), ("bad id\n", False),
    ("caf\u00e9", False),
])
def test_request_ids_from_callers_are_kept_only_when_safe(given: str, kept: bool) -> None:
    rid = logs.accept_request_id(given)
    assert (rid == given) is kept
    assert rid and len(rid) <= logs.MAX_REQUEST_ID


def test_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        logs.make_handler("xml", io.StringIO())
