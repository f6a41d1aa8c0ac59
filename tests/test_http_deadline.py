"""The server's --max-request-seconds holds for HTTP requests as for gRPC calls: a request
queued behind a decode that outlasts it gets the dialect's 504 and its work is dropped."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dragoman.server.rpc.app import ServerThread, build_service
from tests.conftest import server_config
from tests.support.gate import hold_decoding

WAIT = 30.0


def _post(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_max_request_seconds_ends_an_http_request_and_drops_its_work(copy_store: Path) -> None:
    config = server_config(copy_store, inter_threads=1, batch_wait_ms=0.0, cache_entries=0,
                           max_request_seconds=0.5, preload=("copy-en-de",),
                           http_address="127.0.0.1:0")
    server = ServerThread(build_service(config), config).start()
    loaded = server.service.registry.acquire("copy-en-de")
    gate = hold_decoding(loaded, WAIT)
    decoded, started, release = gate.decoded, gate.started, gate.release
    try:
        assert server.handle is not None and server.handle.http is not None
        url = f"http://127.0.0.1:{server.handle.http.port}"
        held: list[tuple[int, dict[str, object]]] = []
        blocker = threading.Thread(target=lambda: held.append(_post(
            url + "/translate", {"q": "The bridge was closed.", "source": "en", "target": "de"})))
        blocker.start()
        assert started.wait(WAIT)
        status, body = _post(url + "/translate", {
            "q": "Heavy rain is expected this weekend.", "source": "en", "target": "de"})
        assert status == 504
        assert "--max-request-seconds 0.5" in str(body["error"])
        assert loaded.batcher.queued() == 0  # its sentence left the queue
        status, body = _post(url + "/v2/translate", {"text": ["Heavy rain."], "target_lang": "DE",
                                                    "source_lang": "EN"})
        assert status == 504 and "max-request-seconds" in str(body["message"])
        release.set()
        blocker.join(WAIT)
        assert held and held[0][0] == 504  # decoding outlived the cap too
        assert decoded == ["The bridge was closed."]
    finally:
        release.set()
        server.stop(5)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
