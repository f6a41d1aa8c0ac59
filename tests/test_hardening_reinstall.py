"""Issue 10, defect 7: `models install --force` must reach a running server.

Before the fix the registry keyed models by name only: a reinstalled model kept its old
weights in memory and its old sentences in the cache until a restart. Now a changed install
(a new folder, a new manifest) is noticed when the store is re-read; the old copy is
unloaded, the new one loaded, and the model's cache entries dropped.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dragoman.client.cli import main
from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import server_config
from tests.test_backpressure import wait_until

SENTENCE = "The museum will reopen its doors after two years of renovation."


def test_a_forced_reinstall_reloads_the_model_and_drops_its_cache(
    tmp_path: Path, copy_store: Path, swapcase: Callable[[str], str]
) -> None:
    store = tmp_path / "models"
    shutil.copytree(copy_store / "copy-en-de", store / "copy-en-de")  # swapcase model
    config = server_config(store)
    with ServerThread(build_service(config), config) as server, \
            grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranslationServiceStub(channel)
        request = pb.TranslateRequest(text=SENTENCE, source_language="en", target_language="de")
        first = stub.Translate(request, timeout=30)
        assert first.text == swapcase(SENTENCE) and first.cached_sentences == 0
        assert stub.Translate(request, timeout=30).cached_sentences == 1
        assert len(server.service.cache) == 1

        # Replace it with the identity copy model under the same name, as a user would.
        assert main(["models", "install", str(copy_store / "copy-de-en"), "--name", "copy-en-de",
                     "--source", "en", "--target", "de", "--force",
                     "--models", str(store)]) == 0
        # Re-reading the store (housekeeping does it every few seconds; ListLanguages at once)
        # notices the new install.
        stub.ListLanguages(pb.ListLanguagesRequest(), timeout=30)
        assert len(server.service.cache) == 0  # the old model's sentences are gone

        again = stub.Translate(request, timeout=30)
        assert again.text == SENTENCE, "still the old weights"
        assert again.cached_sentences == 0
        assert server.service.registry.loaded_names() == ["copy-en-de"]
        assert len(server.service.cache) == 1

        # Removed: unloaded, its sentences dropped, its health entry NOT_SERVING.
        assert main(["models", "remove", "copy-en-de", "--models", str(store)]) == 0
        stub.ListLanguages(pb.ListLanguagesRequest(), timeout=30)
        assert len(server.service.cache) == 0
        wait_until(lambda: server.service.registry.loaded_names() == [])
        assert server.handle is not None
        asyncio.run_coroutine_threadsafe(server.handle.report_models(), server.loop).result(30)
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(
            service="dragoman.model.copy-en-de"), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.Translate(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
