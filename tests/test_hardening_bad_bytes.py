"""Issue 10, defect 6: bytes that are not a valid request message get INVALID_ARGUMENT.

Before the fix a string field holding invalid UTF-8 or a truncated message got ``UNKNOWN``
("Exception deserializing request!") and a full traceback in the server log for every call.
Now the caller gets INVALID_ARGUMENT naming the message type, and the log at most one line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dragoman.server.rpc.app import ServerThread
from dragoman.v1 import summarisation_pb2 as spb
from dragoman.v1 import translation_pb2 as pb

TRANSLATION = "/dragoman.v1.TranslationService/"
SUMMARISE = "/dragoman.v1.SummarisationService/Summarise"
GOOD = pb.TranslateRequest(text="abc", source_language="en", target_language="en")


def _bad_utf8(message: object = GOOD) -> bytes:
    raw = message.SerializeToString()  # type: ignore[attr-defined]
    assert raw.count(b"abc") == 1
    return raw.replace(b"abc", b"a\xff\xfe")  # same length: framing intact, text not UTF-8


def _truncated() -> bytes:
    raw = pb.TranslateRequest(text="a" * 100, target_language="de").SerializeToString()
    return raw[:20]  # cut inside the text field


BAD = {
    "invalid UTF-8 in a string field": _bad_utf8(),
    "a truncated message": _truncated(),
    "garbage": b"\xff\xff\xff\xff\xff",
}


@pytest.fixture
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


def _raw_unary(channel: grpc.Channel, method: str) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def _check_quiet(caplog: pytest.LogCaptureFixture, calls: int) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(loud) <= calls, [r.getMessage() for r in loud]
    assert not [r for r in loud if r.exc_info], "a traceback was logged"
    assert not [r for r in loud if "Traceback" in r.getMessage()]


@pytest.mark.parametrize("what", sorted(BAD))
def test_bad_bytes_are_invalid_argument_with_one_quiet_log_line(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture, what: str
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(grpc.RpcError) as info:
        _raw_unary(channel, TRANSLATION + "Translate")(BAD[what], timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "dragoman.v1.TranslateRequest" in info.value.details()
    assert "Error" not in info.value.details()  # no exception class names
    _check_quiet(caplog, 1)


def test_every_method_with_a_request_message_is_guarded(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bad = _bad_utf8()
    for method, message in (
        (TRANSLATION + "DetectLanguage", pb.DetectLanguageRequest(text="abc")),
        (SUMMARISE, spb.SummariseRequest(text="abc")),
    ):
        with pytest.raises(grpc.RpcError) as info:
            _raw_unary(channel, method)(_bad_utf8(message), timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
        assert message.DESCRIPTOR.full_name in info.value.details()
    # A bad message inside a stream ends the stream with INVALID_ARGUMENT after the good ones.
    stream = channel.stream_stream(TRANSLATION + "TranslateStream", request_serializer=None,
                                   response_deserializer=pb.TranslateResponse.FromString)
    replies = stream(iter([GOOD.SerializeToString(), bad]), timeout=30)
    with pytest.raises(grpc.RpcError) as info:
        list(replies)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "TranslateRequest" in info.value.details()
    _check_quiet(caplog, 3)
    # The server is fine: a good call and health still answer.
    reply = _raw_unary(channel, TRANSLATION + "Translate")(GOOD.SerializeToString(), timeout=30)
    assert pb.TranslateResponse.FromString(reply).text == "abc"
    summary = spb.SummariseRequest(text="One sentence. Another one here.", language="en")
    assert _raw_unary(channel, SUMMARISE)(summary.SerializeToString(), timeout=30)
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
        health_pb2.HealthCheckResponse.SERVING
