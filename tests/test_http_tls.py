"""HTTPS on the HTTP adapter: the gRPC listener's certificate (--tls-cert/--tls-key), client
certificates required with --tls-client-ca, and renewed files served without a restart."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dragoman.server.rpc.app import ServerThread, build_service
from tests.conftest import server_config
from tests.support.certs import Authority, Pair, authority

TEXT = "The bridge was closed to traffic."


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return authority(tmp_path / "pki")


@pytest.fixture
def running() -> Iterator[list[ServerThread]]:
    servers: list[ServerThread] = []
    yield servers
    for server in servers:
        server.stop(2)


def _serve(store: Path, running: list[ServerThread], **tls: str) -> ServerThread:
    config = server_config(store, preload=("copy-en-de",), http_address="127.0.0.1:0", **tls)
    server = ServerThread(build_service(config), config).start()
    running.append(server)
    return server


def _port(server: ServerThread) -> int:
    assert server.handle is not None and server.handle.http is not None
    return server.handle.http.port


def _client_context(ca_cert: Path, client: Pair | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def _translate(url: str, context: ssl.SSLContext | None) -> dict[str, object]:
    body = json.dumps({"q": TEXT, "source": "en", "target": "de"}).encode()
    request = urllib.request.Request(url + "/translate", body,
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return json.load(response)


def test_https_with_the_servers_certificate(copy_store: Path, ca: Authority, running) -> None:  # type: ignore[no-untyped-def]
    pair = ca.server()
    server = _serve(copy_store, running, tls_cert=str(pair.cert), tls_key=str(pair.key))
    url = f"https://localhost:{_port(server)}"
    assert _translate(url, _client_context(ca.cert))["translatedText"] == TEXT.swapcase()
    # Plain HTTP on the HTTPS port is no way in.
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        urllib.request.urlopen(f"http://localhost:{_port(server)}/languages", timeout=30).read()
    stranger = authority(ca.folder / "other", "other")
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _translate(url, _client_context(stranger.cert))


def test_mutual_tls_requires_a_client_certificate(copy_store: Path, ca: Authority, running) -> None:  # type: ignore[no-untyped-def]
    pair = ca.server()
    server = _serve(copy_store, running, tls_cert=str(pair.cert), tls_key=str(pair.key),
                    tls_client_ca=str(ca.cert))
    url = f"https://localhost:{_port(server)}"
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        _translate(url, _client_context(ca.cert))
    intruder = authority(ca.folder / "stranger", "stranger").client("intruder")
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        _translate(url, _client_context(ca.cert, intruder))
    member = ca.client()
    assert _translate(url, _client_context(ca.cert, member))["translatedText"] == TEXT.swapcase()


def test_renewed_certificate_reaches_new_connections(copy_store: Path, ca: Authority, running) -> None:  # type: ignore[no-untyped-def]
    first = ca.server("first")
    cert, key = ca.folder / "live.crt", ca.folder / "live.key"
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    server = _serve(copy_store, running, tls_cert=str(cert), tls_key=str(key))
    url = f"https://localhost:{_port(server)}"
    assert _translate(url, _client_context(ca.cert))["translatedText"] == TEXT.swapcase()

    renewed_ca = authority(ca.folder / "renewed", "renewed")
    renewed = renewed_ca.server()
    os.replace(renewed.key, key)
    os.replace(renewed.cert, cert)
    assert _translate(url, _client_context(renewed_ca.cert))["translatedText"] == TEXT.swapcase()
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _translate(url, _client_context(ca.cert))

    # A broken pair (another certificate's key) is refused and the renewed one kept.
    key.write_bytes(first.key.read_bytes())
    assert _translate(url, _client_context(renewed_ca.cert))["translatedText"] == TEXT.swapcase()

    # SIGHUP (reload_tls) re-reads files that look unchanged.
    cert.write_bytes(first.cert.read_bytes())  # a matching pair again: the first CA's
    assert server.handle is not None and server.handle.http is not None
    https = server.handle.http.tls
    assert https is not None
    before = https.reloads
    server.handle.reload_tls()
    assert _translate(url, _client_context(ca.cert))["translatedText"] == TEXT.swapcase()
    assert https.reloads == before + 1
