"""The package layout promises of the design: stubs in sync, namespace complete, no generic
top-level modules, the wheel carries the generated stubs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_generated_stubs_match_proto() -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (test extra) regenerates the stubs")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_stub_drift_is_detected(tmp_path: Path) -> None:
    """The check itself must fail on a stale stub, or it proves nothing."""
    pytest.importorskip("grpc_tools")
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "proto", copy / "proto")
    shutil.copytree(ROOT / "client" / "dragoman" / "v1", copy / "client" / "dragoman" / "v1")
    stub = copy / "client" / "dragoman" / "v1" / "translation_pb2.py"
    stub.write_text(stub.read_text() + "\n# edited by hand\n")
    proc = subprocess.run(
        [sys.executable, str(copy / "proto" / "generate.py"), "--check"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert "translation_pb2.py" in proc.stderr


def _declared_packages() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["tool"]["setuptools"]["packages"]


def test_every_package_is_declared() -> None:
    found = set()
    for root in ("client", "server"):
        for init in (ROOT / root / "dragoman").rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / root)
            found.add(".".join(rel.parts))
    assert found == set(_declared_packages())


def test_no_generic_top_level_modules() -> None:
    assert all(p.startswith("dragoman.") for p in _declared_packages())


def test_client_import_does_not_load_the_model_layer() -> None:
    code = (
        "import sys, dragoman.client, dragoman.client.cli; "
        "bad = [m for m in ('ctranslate2', 'dragoman.server.engine', 'sentencepiece') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_model_layer_never_imports_grpc() -> None:
    """Everything but dragoman.server.rpc must stay gRPC-free (and the RPC layer ctranslate2-free)."""
    server = ROOT / "server" / "dragoman" / "server"
    for path in server.rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(server)
        if rel.parts[0] == "rpc":
            assert "import ctranslate2" not in text, rel
        else:
            assert "import grpc" not in text and "from grpc" not in text, rel


@pytest.mark.slow
def test_wheel_contains_stubs_and_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"cannot build a wheel here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("dragoman-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "dragoman/v1/translation_pb2.py" in names
    assert "dragoman/v1/summarisation_pb2_grpc.py" in names
    assert "dragoman/server/rpc/app.py" in names
    assert "dragoman/client/cli/__init__.py" in names
    for package in ("client", "server", "v1"):  # typed packages (PEP 561)
        assert f"dragoman/{package}/py.typed" in names
    assert not any(n.startswith(("server/", "client/")) for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dragoman = dragoman.client.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_every_domain_error_names_a_real_status_code() -> None:
    import grpc

    from dragoman.server import errors

    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.DragomanError)]
    assert len(classes) >= 9
    for cls in classes:
        assert cls.code in grpc.StatusCode.__members__, cls
