"""Issue 10, defect 4: one broken model folder must not take the healthy ones down.

Before the fix a store folder without its ``sentencepiece.model`` or with a corrupt
``model.bin`` made ``dragoman serve`` exit 2 and every model went down with it. Now the healthy
models are served and the broken one is reported in the log, in ``models list`` (a status
column) and in its per-model health status (NOT_SERVING).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dragoman.client.cli import main
from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import server_config

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SENTENCE = "The museum will reopen its doors after two years of renovation."


def _clone(store: Path, source: Path, name: str, target_language: str) -> Path:
    """A copy of a healthy model folder under another name and language pair."""
    folder = store / name
    shutil.copytree(source, folder)
    manifest = json.loads((folder / "dragoman.json").read_text())
    manifest.update(name=name, source_languages=["en"], target_languages=[target_language])
    (folder / "dragoman.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def broken_store(tmp_path: Path, copy_store: Path) -> Path:
    store = tmp_path / "models"
    shutil.copytree(copy_store / "copy-en-de", store / "copy-en-de")
    good = copy_store / "copy-de-en"
    (_clone(store, good, "no-tokenizer", "fr") / "sentencepiece.model").unlink()
    (_clone(store, good, "bad-weights", "it") / "model.bin").write_bytes(b"\x07garbage" * 512)
    truncated = _clone(store, good, "cut-weights", "es") / "model.bin"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (store / "bad-manifest").mkdir()
    (store / "bad-manifest" / "dragoman.json").write_text("{not json")
    return store


BROKEN = {
    "no-tokenizer": "sentencepiece.model",
    "bad-weights": "model.bin",
    "cut-weights": "model.bin",
    "bad-manifest": "dragoman.json",
}


@pytest.fixture
def served(broken_store: Path, caplog: pytest.LogCaptureFixture) -> Iterator[ServerThread]:
    caplog.set_level(logging.INFO)
    config = server_config(broken_store)  # preloads every model, as `dragoman serve` does
    with ServerThread(build_service(config), config) as server:  # before the fix: StoreError
        yield server


def test_serve_starts_with_the_healthy_models_and_reports_the_broken_ones(
    served: ServerThread, caplog: pytest.LogCaptureFixture, swapcase: Callable[[str], str],
) -> None:
    with grpc.insecure_channel(served.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        def status(name: str) -> int:
            return health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status

        assert status("") == SERVING
        assert status("dragoman.model.copy-en-de") == SERVING
        for name in BROKEN:
            assert status(f"dragoman.model.{name}") == NOT_SERVING, name

        stub = pb_grpc.TranslationServiceStub(channel)
        resp = stub.Translate(pb.TranslateRequest(
            text=SENTENCE, source_language="en", target_language="de"), timeout=30)
        assert resp.text == swapcase(SENTENCE)
        # The pair only a broken model serves is refused with the reason, not a traceback.
        with pytest.raises(grpc.RpcError) as info:
            stub.Translate(pb.TranslateRequest(
                text=SENTENCE, source_language="en", target_language="fr"), timeout=30)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "no-tokenizer" in info.value.details()
        assert "sentencepiece.model" in info.value.details()

    records = caplog.get_records("setup") + caplog.records  # the server started in setup
    broken_lines = [r for r in records if r.levelno >= logging.WARNING
                    and any(name in r.getMessage() for name in BROKEN)]
    for name, reason in BROKEN.items():
        lines = [r for r in broken_lines if name in r.getMessage()]
        assert lines, f"nothing logged about {name}"
        assert any(reason in r.getMessage() for r in lines), (name, [r.getMessage() for r in lines])
    assert all(r.exc_info is None for r in broken_lines)  # one line each, no traceback


def test_models_list_has_a_status_column(
    broken_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list", "--models", str(broken_store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "STATUS" in lines[0]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"copy-en-de", *BROKEN}
    assert rows["copy-en-de"].rstrip().endswith("ok")
    for name, reason in BROKEN.items():
        assert "broken:" in rows[name] and reason in rows[name], rows[name]

    assert main(["models", "list", "--json", "--models", str(broken_store)]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["copy-en-de"]["status"] == "ok"
    for name, reason in BROKEN.items():
        assert listed[name]["status"].startswith("broken: ") and reason in listed[name]["status"]
