"""A running server notices models installed while it runs and keeps per-model health true."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dragoman.server.rpc import app
from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import install_copy_model, server_config


def _status(channel: grpc.Channel, name: str) -> int | None:
    """The health of ``name``; None while the server does not know it (NOT_FOUND)."""
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        return stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def _eventually(check, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_new_model_and_unload_are_reported(
    tmp_path: Path, sp_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "HOUSEKEEPING_SECONDS", 0.1)
    store = tmp_path / "models"
    install_copy_model(store, sp_model, "copy-en-de", "en", "de")
    config = server_config(store, max_loaded_models=1)
    with ServerThread(build_service(config), config) as running:
        channel = grpc.insecure_channel(running.address)
        stub = pb_grpc.TranslationServiceStub(channel)
        de = pb.TranslateRequest(text="Hello there.", source_language="en", target_language="de")
        assert stub.Translate(de, timeout=10).model == "copy-en-de"  # loads it (no preload)
        assert _eventually(lambda: _status(channel, "dragoman.model.copy-en-de")
                           == health_pb2.HealthCheckResponse.SERVING)
        req = pb.TranslateRequest(text="Hello there.", source_language="en", target_language="fr")
        with pytest.raises(grpc.RpcError) as info:
            stub.Translate(req, timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

        assert _status(channel, "dragoman.model.copy-en-fr") is None
        install_copy_model(store, sp_model, "copy-en-fr", "en", "fr")
        assert _eventually(lambda: _status(channel, "dragoman.model.copy-en-fr")
                           == health_pb2.HealthCheckResponse.NOT_SERVING)
        assert stub.Translate(req, timeout=10).model == "copy-en-fr"
        # Only one model fits: the first was unloaded and its health says so.
        assert _eventually(lambda: _status(channel, "dragoman.model.copy-en-de")
                           == health_pb2.HealthCheckResponse.NOT_SERVING)
        assert _eventually(lambda: _status(channel, "dragoman.model.copy-en-fr")
                           == health_pb2.HealthCheckResponse.SERVING)
        channel.close()
