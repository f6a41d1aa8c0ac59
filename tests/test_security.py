"""TLS, mutual TLS, certificate reload, API keys with quotas and the token file, end to end
over real sockets through the client library and the CLI. Certificates are made by the test
(tests/support/certs.py); quotas run on an injected clock, so nothing waits on time."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dragoman.client import Client
from dragoman.client.cli import main
from dragoman.client.errors import ResourceExhausted, Unauthenticated, Unavailable
from dragoman.server.access import AccessControl, KeyStore
from dragoman.server.rpc.app import ServerThread, build_service
from tests.conftest import server_config
from tests.support.certs import Authority, authority

TEXT = "The bridge was closed to traffic."


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _serve(store: Path, *, clock: Clock | None = None, **overrides: object) -> ServerThread:
    config = server_config(store, preload=("copy-en-de",), **overrides)
    service = build_service(config)
    if clock is not None:  # same settings, a clock the test moves
        service.access = AccessControl.from_settings(
            config.token, config.token_file, config.keys, clock=clock)
    return ServerThread(service, config).start()


@pytest.fixture
def running(request: pytest.FixtureRequest) -> Iterator[list[ServerThread]]:
    servers: list[ServerThread] = []
    yield servers
    for server in servers:
        server.stop(2)


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return authority(tmp_path / "pki")


@pytest.fixture
def no_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DRAGOMAN_API_KEY", "DRAGOMAN_TOKEN", "DRAGOMAN_TLS", "DRAGOMAN_TLS_CA",
                 "DRAGOMAN_CLIENT_CERT", "DRAGOMAN_CLIENT_KEY", "DRAGOMAN_SERVER"):
        monkeypatch.delenv(name, raising=False)


def _localhost(server: ServerThread) -> str:
    return f"localhost:{server.port}"


# -- TLS ---------------------------------------------------------------------------------


def test_tls_serves_clients_that_trust_the_ca(copy_store, ca, running, no_client_env) -> None:  # type: ignore[no-untyped-def]
    pair = ca.server()
    server = _serve(copy_store, tls_cert=str(pair.cert), tls_key=str(pair.key))
    running.append(server)
    with Client(_localhost(server), tls_ca=str(ca.cert), timeout=10) as client:
        assert client.translate(TEXT, "de", source="en").text == TEXT.swapcase()
        assert client.health() == "SERVING"
    with Client(_localhost(server), timeout=5) as plain:
        with pytest.raises(Unavailable):
            plain.health()
    other = authority(ca.folder / "other", "other")
    with Client(_localhost(server), tls_ca=str(other.cert), timeout=5) as wrong_ca:
        with pytest.raises(Unavailable):
            wrong_ca.health()


def test_mtls_refuses_clients_without_a_certificate(copy_store, ca, running, no_client_env) -> None:  # type: ignore[no-untyped-def]
    pair, client_pair = ca.server(), ca.client()
    server = _serve(copy_store, tls_cert=str(pair.cert), tls_key=str(pair.key),
                    tls_client_ca=str(ca.cert))
    running.append(server)
    with Client(_localhost(server), tls_ca=str(ca.cert), timeout=5) as anonymous:
        with pytest.raises(Unavailable):
            anonymous.translate(TEXT, "de", source="en")
    stranger = authority(ca.folder / "stranger", "stranger").client("intruder")
    with Client(_localhost(server), tls_ca=str(ca.cert), tls_cert=str(stranger.cert),
                tls_key=str(stranger.key), timeout=5) as intruder:
        with pytest.raises(Unavailable):
            intruder.health()
    with Client(_localhost(server), tls_ca=str(ca.cert), tls_cert=str(client_pair.cert),
                tls_key=str(client_pair.key), timeout=10) as client:
        assert client.translate(TEXT, "de", source="en").text == TEXT.swapcase()


def test_certificate_is_reloaded_when_the_files_change_and_on_sighup(copy_store, ca, running, no_client_env) -> None:  # type: ignore[no-untyped-def]
    first = ca.server("first")
    cert, key = ca.folder / "live.crt", ca.folder / "live.key"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    server = _serve(copy_store, tls_cert=str(cert), tls_key=str(key))
    running.append(server)
    with Client(_localhost(server), tls_ca=str(ca.cert), timeout=10) as client:
        assert client.health() == "SERVING"

    # Renewal by a new CA (as after a key compromise): files replaced, no restart.
    renewed_ca = authority(ca.folder / "renewed", "renewed")
    renewed = renewed_ca.server()
    os.replace(renewed.key, ca.folder / "new.key")
    os.replace(renewed.cert, ca.folder / "new.crt")
    os.replace(ca.folder / "new.key", key)
    os.replace(ca.folder / "new.crt", cert)
    with Client(_localhost(server), tls_ca=str(renewed_ca.cert), timeout=10) as client:
        assert client.health() == "SERVING"
    with Client(_localhost(server), tls_ca=str(ca.cert), timeout=5) as old_trust:
        with pytest.raises(Unavailable):
            old_trust.health()

    # A broken pair (key of another certificate) is refused and the current one kept.
    key.write_bytes(first.key.read_bytes())
    with Client(_localhost(server), tls_ca=str(renewed_ca.cert), timeout=10) as client:
        assert client.health() == "SERVING"

    # SIGHUP forces a re-read even when the files look unchanged.
    assert server.handle is not None and server.handle.tls is not None
    files = server.handle.tls
    shutil.copy(first.cert, cert)  # a matching pair again: the first CA's
    before = files.reloads
    files.request_reload()
    with Client(_localhost(server), tls_ca=str(ca.cert), timeout=10) as client:
        assert client.health() == "SERVING"
    assert files.reloads == before + 1


def test_tls_files_are_checked_at_start(copy_store, ca) -> None:  # type: ignore[no-untyped-def]
    from dragoman.server.errors import InvalidInput

    pair, other = ca.server(), ca.server("other")
    config = server_config(copy_store, tls_cert=str(pair.cert), tls_key=str(other.key))
    with pytest.raises(InvalidInput, match="not a PEM certificate chain and its matching"):
        ServerThread(build_service(config), config).start()
    with pytest.raises(InvalidInput, match="--tls-cert and --tls-key go together"):
        server_config(copy_store, tls_cert=str(pair.cert))


# -- keys and quotas ---------------------------------------------------------------------


def test_keys_end_to_end_through_the_cli_and_the_client(copy_store, tmp_path, running, capsys, no_client_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    keys = tmp_path / "keys.db"
    assert main(["keys", "add", "newsroom", "--keys", str(keys)]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("dgm_")
    server = _serve(copy_store, keys=str(keys))
    running.append(server)

    with Client(server.address, api_key=key, timeout=10) as client:
        assert client.translate(TEXT, "de", source="en").text == TEXT.swapcase()
    with Client(server.address, timeout=10) as client:
        assert client.health() == "SERVING"  # health stays open
        with pytest.raises(Unauthenticated, match="missing API key"):
            client.translate(TEXT, "de", source="en")
        with pytest.raises(Unauthenticated):
            list(client.translate_many([TEXT], "de"))
    with Client(server.address, api_key=key + "x", timeout=10) as client:
        with pytest.raises(Unauthenticated, match="invalid API key"):
            client.summarise(TEXT)

    source = tmp_path / "in.txt"
    source.write_text(TEXT)
    assert main(["--server", server.address, "--api-key", key, "translate", "--from", "en",
                 "--to", "de", str(source)]) == 0
    assert capsys.readouterr().out.strip() == TEXT.swapcase()
    monkeypatch.setenv("DRAGOMAN_API_KEY", key)
    assert main(["--server", server.address, "translate", "--from", "en", "--to", "de",
                 str(source)]) == 0
    assert capsys.readouterr().out.strip() == TEXT.swapcase()
    monkeypatch.delenv("DRAGOMAN_API_KEY")
    assert main(["--server", server.address, "translate", "--to", "de", str(source)]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err

    # A batch job through the server takes the same flag.
    jsonl = tmp_path / "articles.jsonl"
    jsonl.write_text('{"id": "a", "text": "%s"}\n' % TEXT)
    out = tmp_path / "articles.de.jsonl"
    assert main(["--api-key", key, "batch", "translate", "--server", server.address, "--from",
                 "en", "--to", "de", "--progress", "none", str(jsonl), "-o", str(out)]) == 0
    assert '"text_de": "%s"' % TEXT.swapcase() in out.read_text()

    # Revoked while the server runs: refused from the next call on.
    assert main(["keys", "list", "--keys", str(keys)]) == 0
    assert "newsroom" in capsys.readouterr().out
    assert main(["keys", "remove", "newsroom", "--keys", str(keys)]) == 0
    with Client(server.address, api_key=key, timeout=10) as client:
        with pytest.raises(Unauthenticated, match="invalid API key"):
            client.translate(TEXT, "de", source="en")


def test_unauthenticated_calls_are_refused_before_the_request_is_parsed(copy_store, tmp_path, running) -> None:  # type: ignore[no-untyped-def]
    KeyStore(tmp_path / "keys.db").add("someone")
    server = _serve(copy_store, keys=str(tmp_path / "keys.db"))
    running.append(server)
    with grpc.insecure_channel(server.address) as channel:
        raw = channel.unary_unary("/dragoman.v1.TranslationService/Translate")
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xff\xff\xff not a protobuf", timeout=10)  # would be INVALID_ARGUMENT
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "authorization: Bearer KEY" in info.value.details()


def test_quotas_per_minute_and_per_day(copy_store, tmp_path, running, no_client_env) -> None:  # type: ignore[no-untyped-def]
    store = KeyStore(tmp_path / "keys.db")
    minute_key, _ = store.add("minute", chars_per_minute=2 * len(TEXT))
    day_key, _ = store.add("day", chars_per_day=3 * len(TEXT))
    clock = Clock()
    server = _serve(copy_store, keys=str(store.path), clock=clock)
    running.append(server)
    with Client(server.address, api_key=minute_key, timeout=10) as client:
        client.translate(TEXT, "de", source="en")
        client.translate(TEXT, "de", source="en")
        with pytest.raises(ResourceExhausted, match="characters per minute; retry in 60 s"):
            client.translate(TEXT, "de", source="en")
        clock.now += 61
        client.translate(TEXT, "de", source="en")
    with Client(server.address, api_key=day_key, timeout=10) as client:
        for _ in range(3):
            client.summarise(TEXT)
            clock.now += 3600
        with pytest.raises(ResourceExhausted, match="characters per day"):
            client.translate(TEXT, "de", source="en")
        results = list(client.translate_many([TEXT], "de", source="en", on_error="yield"))
        assert results[0].error is not None and results[0].error.code == "RESOURCE_EXHAUSTED"
        clock.now += 86400
        assert client.translate(TEXT, "de", source="en").text == TEXT.swapcase()
    assert server.service.access.usage(server.service.access.authenticate(day_key)) == (
        len(TEXT), 3 * len(TEXT))


def test_refused_calls_do_not_use_up_the_quota(copy_store, tmp_path, running, no_client_env) -> None:  # type: ignore[no-untyped-def]
    from dragoman.client.errors import InvalidArgument, NotFound

    store = KeyStore(tmp_path / "keys.db")
    key, _ = store.add("careful", chars_per_minute=len(TEXT))
    server = _serve(copy_store, keys=str(store.path), clock=Clock())
    running.append(server)
    with Client(server.address, api_key=key, timeout=10) as client:
        with pytest.raises(NotFound):
            client.translate(TEXT, "fi", source="en")
        with pytest.raises(InvalidArgument):
            client.translate(TEXT, "xx-not-a-code", source="en")
        assert client.translate(TEXT, "de", source="en").text == TEXT.swapcase()


def test_token_file_and_health_without_a_key(copy_store, tmp_path, running, no_client_env) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "token"
    secret.write_text("file-secret\n")
    server = _serve(copy_store, token_file=str(secret))
    running.append(server)
    with Client(server.address, token="file-secret", timeout=10) as client:
        assert client.translate(TEXT, "de", source="en").text == TEXT.swapcase()
    with Client(server.address, timeout=10) as client:
        with pytest.raises(Unauthenticated):
            client.languages()
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_can_be_switched_off(copy_store, running) -> None:  # type: ignore[no-untyped-def]
    server = _serve(copy_store, reflection=False)
    running.append(server)
    with grpc.insecure_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_cli_over_mtls_with_flags_and_environment(copy_store, ca, tmp_path, running, capsys, monkeypatch, no_client_env) -> None:  # type: ignore[no-untyped-def]
    pair, client_pair = ca.server(), ca.client()
    server = _serve(copy_store, tls_cert=str(pair.cert), tls_key=str(pair.key),
                    tls_client_ca=str(ca.cert))
    running.append(server)
    source = tmp_path / "in.txt"
    source.write_text(TEXT)
    address = _localhost(server)
    assert main(["--server", address, "--tls-ca", str(ca.cert), "--tls-cert",
                 str(client_pair.cert), "--tls-key", str(client_pair.key), "translate",
                 "--from", "en", "--to", "de", str(source)]) == 0
    assert capsys.readouterr().out.strip() == TEXT.swapcase()
    assert main(["--server", address, "--tls-ca", str(ca.cert), "health"]) == 1
    assert "unavailable" in capsys.readouterr().err
    monkeypatch.setenv("DRAGOMAN_TLS_CA", str(ca.cert))
    monkeypatch.setenv("DRAGOMAN_CLIENT_CERT", str(client_pair.cert))
    monkeypatch.setenv("DRAGOMAN_CLIENT_KEY", str(client_pair.key))
    assert main(["--server", address, "health"]) == 0
    assert capsys.readouterr().out.strip() == "SERVING"
    assert main(["--server", address, "--tls-cert", str(client_pair.cert), "--tls-key",
                 str(tmp_path / "missing.key"), "health"]) == 2
    assert "cannot read TLS key file" in capsys.readouterr().err
