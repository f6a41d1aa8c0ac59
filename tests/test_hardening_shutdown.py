"""Issue 10, defect 8: shutdown keeps to ``--grace`` and logs no tracebacks.

Before the fix the steps of a shutdown each took up to the grace period in turn (gRPC drain,
then every batcher thread joined with the full grace, HTTP before both), gRPC cancelled the
calls still running at the end and logged a CancelledError traceback for each, and the
process could abort on exit while CTranslate2 was still decoding: grace 5 s, exit after
12.9 s. Now calls still running shortly before the end are answered UNAVAILABLE, every step
shares one deadline, and the process exits without waiting for a batch it cannot interrupt.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc

from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.support.sentences import NEWS_LINES
from tests.test_cli_e2e import Server, wait_until

GRACE = 2.0
# Generous for a loaded machine: the fixed server exits within a few tenths of a second of
# the grace period; before the fix it overran it by 4 s or more here.
SLACK = 2.0


def long_document(sentences: int = 300) -> str:
    """Distinct sentences (repeats would be decoded once), several seconds of decoding."""
    lines = [line for line in NEWS_LINES if line.isascii() and line.endswith(".")]
    return " ".join(f"Number {i} says: {lines[i % len(lines)]}" for i in range(sentences))


def test_shutdown_keeps_to_the_grace_period_without_tracebacks(copy_store: Path) -> None:
    server = Server(
        copy_store, "--grace", str(GRACE),
        DRAGOMAN_MAX_BATCH_TOKENS="1000000",  # one long generate call per document
        DRAGOMAN_INTER_THREADS="2", DRAGOMAN_METRICS_ADDRESS="127.0.0.1:0",
        DRAGOMAN_HTTP_ADDRESS="off",
    )
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.TranslationServiceStub(channel)
            text = long_document()
            calls = [
                stub.Translate.future(pb.TranslateRequest(
                    text=text, source_language=source, target_language=target), timeout=120)
                for source, target in (("en", "de"), ("de", "en"))
            ]
            # Both documents are being decoded: in flight, nothing of them left in a queue.
            wait_until(lambda: server.metric("dragoman_documents_in_flight") == 2
                       and server.metric("dragoman_model_queued_sentences") == 0)
            assert not any(call.done() for call in calls)
            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(60)
            took = time.monotonic() - signalled
            for call in calls:
                error = call.exception(timeout=30)
                assert isinstance(error, grpc.RpcError)
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
                assert "shutting down" in error.details()
    finally:
        log = server.stop()
    assert server.proc.returncode == 0, log
    assert took < GRACE + SLACK, f"exit {took:.1f} s after SIGTERM with --grace {GRACE:g}"
    assert "Traceback" not in log and "CancelledError" not in log, log
    assert "stopped" in log
