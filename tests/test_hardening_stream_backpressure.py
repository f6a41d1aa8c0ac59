"""Issue 10, defect 3: TranslateStream must push back on a client that writes and never reads.

Before the fix the server read every request as fast as the client wrote, translated it and
queued the reply: 20k documents from a client that never read cost +415 MB. Now a document
holds its place in the stream's window until its reply has been taken by gRPC, so the server
stops reading while the client does not read, and gRPC's flow control stops the client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

from dragoman.server.rpc import servicers
from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import server_config

WAIT = 60.0
DOCUMENTS = 2000
TEXT = "Word " * 4000  # 20 kB: the client's and the server's flow-control windows hold few


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_a_client_that_never_reads_stops_the_server_reading(copy_store: Path) -> None:
    # Same source and target language: the reply is the text itself, no model involved, so
    # the server could answer everything at once if nothing held it back.
    config = server_config(copy_store, preload=())
    with ServerThread(build_service(config), config) as server:
        assert server.handle is not None and server.handle.translation is not None
        servicer = server.handle.translation
        pulled = 0
        lock = threading.Lock()

        def documents() -> Iterator[pb.TranslateRequest]:
            nonlocal pulled
            for i in range(DOCUMENTS):
                with lock:
                    pulled += 1
                yield pb.TranslateRequest(
                    id=str(i), text=TEXT, source_language="en", target_language="en")

        def stalled() -> bool:
            return getattr(servicer, "unsent_replies", 0) == servicers.STREAM_WINDOW

        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.TranslationServiceStub(channel)
            responses = stub.TranslateStream(documents(), timeout=WAIT)
            # Read nothing: the server fills its window with replies gRPC cannot send, then
            # stops reading; the client's writes stop well before its last document.
            wait_until(lambda: stalled() or pulled == DOCUMENTS)
            assert pulled < DOCUMENTS, "the server read every document of a client that reads none"
            # What the server holds of the stream: unsent replies and documents in the works.
            held = servicer.unsent_replies + server.service.in_flight
            assert held <= servicers.STREAM_WINDOW
            # Nothing is lost or stuck: reading now drains the stream, every document once.
            ids = [r.id for r in responses]
        assert sorted(ids, key=int) == [str(i) for i in range(DOCUMENTS)]
        assert servicer.unsent_replies == 0
