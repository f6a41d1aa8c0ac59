"""The package layout promises of the design: stubs in sync, namespace complete, no generic
top-level modules, two distributions (dragoman-client from client/, the server `dragoman` from
the top level, pinning the client at its own version), the wheels carry the generated stubs."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

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


CLIENT_PYPROJECT = ROOT / "client" / "pyproject.toml"
SERVER_PYPROJECT = ROOT / "pyproject.toml"


def _pyproject(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def _declared_packages(path: Path | None = None) -> list[str]:
    paths = [path] if path else [CLIENT_PYPROJECT, SERVER_PYPROJECT]
    return [p for each in paths for p in _pyproject(each)["tool"]["setuptools"]["packages"]]


def _packages_in(folder: Path) -> set[str]:
    return {".".join(init.parent.relative_to(folder).parts)
            for init in (folder / "dragoman").rglob("__init__.py")}


def test_every_package_is_declared_in_its_distribution() -> None:
    assert _packages_in(ROOT / "client") == set(_declared_packages(CLIENT_PYPROJECT))
    assert _packages_in(ROOT / "server") == set(_declared_packages(SERVER_PYPROJECT))


def test_no_generic_top_level_modules() -> None:
    assert all(p.startswith("dragoman.") for p in _declared_packages())


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower()


def test_the_client_needs_only_grpc_and_the_server_pins_the_client() -> None:
    client = _pyproject(CLIENT_PYPROJECT)["project"]
    server = _pyproject(SERVER_PYPROJECT)["project"]
    assert client["name"] == "dragoman-client" and server["name"] == "dragoman"
    assert {_requirement_name(r) for r in client["dependencies"]} == {
        "grpcio", "grpcio-health-checking", "protobuf"}
    assert f"dragoman-client=={client['version']}" in server["dependencies"]
    assert server["version"] == client["version"]
    # One owner of the console script, or uninstalling either would delete the other's.
    assert client["scripts"] == {"dragoman": "dragoman.client.cli:main"}
    assert "scripts" not in server


def test_client_import_does_not_load_the_model_layer() -> None:
    code = (
        "import sys, dragoman.client, dragoman.client.cli; "
        "bad = [m for m in ('ctranslate2', 'dragoman.server.seq2seq', 'sentencepiece') "
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
def test_wheels_contain_stubs_and_entry_point(tmp_path: Path) -> None:
    # Built from a copy: setuptools reuses a checkout's build/ folder, whose leftovers from an
    # earlier layout would end up in the wheel.
    import shutil

    source = tmp_path / "src"
    for name in ("client", "server"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns(
            "__pycache__", "build", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source / "client"), str(source)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"cannot build a wheel here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr
    client = zipfile.ZipFile(next(tmp_path.glob("dragoman_client-*.whl")))
    names = client.namelist()
    assert "dragoman/v1/translation_pb2.py" in names
    assert "dragoman/v1/translation_pb2.pyi" in names
    assert "dragoman/v1/summarisation_pb2_grpc.py" in names
    assert "dragoman/client/cli/__init__.py" in names
    for package in ("client", "v1"):  # typed packages (PEP 561)
        assert f"dragoman/{package}/py.typed" in names
    assert not any(n.startswith(("dragoman/server/", "server/", "client/")) for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dragoman = dragoman.client.cli:main" in client.read(entry).decode()

    server = zipfile.ZipFile(next(tmp_path.glob("dragoman-*.whl")))
    names = server.namelist()
    assert "dragoman/server/rpc/app.py" in names and "dragoman/server/py.typed" in names
    assert "dragoman/server/http/static/index.html" in names
    assert not any(n.startswith(("dragoman/client/", "dragoman/v1/", "server/", "client/"))
                   for n in names)
    assert not any(n.endswith("entry_points.txt") for n in names)
    metadata = server.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: dragoman-client==" in metadata


def test_every_domain_error_names_a_real_status_code() -> None:
    import grpc

    from dragoman.server import errors

    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.DragomanError)]
    assert len(classes) >= 9
    for cls in classes:
        assert cls.code in grpc.StatusCode.__members__, cls
