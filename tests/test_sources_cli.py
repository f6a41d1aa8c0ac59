"""The one-command sources through the real console script, against local mirrors: install
`argos:en-de` and `opus-mt:de-en`, then translate with `dragoman serve`/`dragoman translate`;
one-line errors and exit codes; `models available`; `serve --install` online and offline."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mirror import Mirror
from tests.test_cli_e2e import Server, _env, run

pytest.importorskip("huggingface_hub", reason="hf: installs need the convert extra")
pytest.importorskip("transformers", reason="hf: installs need the convert extra")

REPO = "Helsinki-NLP/opus-mt-de-en"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, sp_model: Path) -> Iterator[Mirror]:
    from tests.support.argospackage import build_argos_package
    from tests.support.copymodel import build_copy_model, swapcase_mapping
    from tests.support.hfmodels import build_tiny_marian

    work = tmp_path_factory.mktemp("mirror")
    model = build_copy_model(work / "ct2", sp_model, mapping=swapcase_mapping(sp_model),
                             quantization="int8", max_positions=256)
    package = build_argos_package(work / "p.argosmodel", sp_model, model, "en", "de")
    with Mirror() as m:
        m.add_file("/v1/translate-en_de-1_0.argosmodel", package.read_bytes())
        m.add_file("/index.json", json.dumps([{
            "package_version": "1.0", "argos_version": "1.0", "from_code": "en",
            "to_code": "de", "links": ["v1/translate-en_de-1_0.argosmodel"],
            "code": "translate-en_de"}]).encode())
        m.add_repo(REPO, build_tiny_marian(work / "opus-mt-de-en", sp_model))
        yield m


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _mirror_env(mirror: Mirror, home: Path, **extra: str) -> dict[str, str]:
    return _env(DRAGOMAN_ARGOS_INDEX=f"{mirror.url}/index.json", HF_ENDPOINT=mirror.url,
                HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1", **extra)


def test_install_from_sources_then_translate(mirror: Mirror, tmp_path: Path, swapcase) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "store"
    env = _mirror_env(mirror, tmp_path / "hf")
    proc = run("models", "install", "argos:en-de", "--models", str(store), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "installed argos-en-de" in proc.stdout
    assert "translate-en_de-1_0.argosmodel: 100%" in proc.stderr  # plain progress lines
    proc = run("models", "install", "opus-mt:de-en", "--models", str(store), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "installed opus-mt-de-en (translate, marian)" in proc.stdout
    server = Server(store)
    try:
        text = "The museum will reopen."
        proc = run("translate", "--server", server.address, "--from", "en", "--to", "de",
                   input=text + "\n")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == swapcase(text) + "\n"
        proc = run("translate", "--server", server.address, "--from", "de", "--to", "en",
                   "--json", input="der Hund\n")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["models"] == ["opus-mt-de-en"]
    finally:
        server.stop()


@pytest.mark.parametrize(("spec", "code", "message"), [
    ("argos:en-xx", 2, "no package for en-xx; pairs with en: en-de"),
    ("hf:nobody/nothing", 2, "hf:nobody/nothing: no such repository"),
    ("opus-mt:de", 2, "expected opus-mt:SRC-TGT"),
    ("argos:de_en", 2, "expected SRC-TGT language codes"),
])
def test_source_errors_are_one_line(mirror: Mirror, tmp_path: Path, spec: str, code: int,
                                    message: str) -> None:
    proc = run("models", "install", spec, "--models", str(tmp_path / "s"),
               env=_mirror_env(mirror, tmp_path / "hf"))
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_offline_is_exit_1_with_one_line(tmp_path: Path) -> None:
    dead = _dead_url()
    env = _env(DRAGOMAN_ARGOS_INDEX=f"{dead}/index.json", HF_ENDPOINT=dead,
               HF_HOME=str(tmp_path / "hf"))
    for spec, message in (("argos:en-de", "cannot download the Argos package index"),
                          ("opus-mt:de-en", "cannot be reached")):
        proc = run("models", "install", spec, "--models", str(tmp_path / "s"), env=env)
        assert proc.returncode == 1, proc.stderr
        assert message in proc.stderr and "(offline?)" in proc.stderr
        assert proc.stderr.strip().count("\n") <= 1, proc.stderr  # a warning, then the error
    proc = run("models", "install", "opus-mt:de-en", "--models", str(tmp_path / "s"),
               env={**env, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1 and "HF_HUB_OFFLINE is set" in proc.stderr, proc.stderr


def test_models_available(mirror: Mirror, tmp_path: Path) -> None:
    env = _mirror_env(mirror, tmp_path / "hf")
    proc = run("models", "available", "--from", "en", "--to", "de", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["INSTALL", "TASK", "FROM", "TO", "SIZE", "SOURCE"]
    installs = [line.split()[0] for line in lines[1:]]
    assert installs[0] == "argos:en-de"
    assert {"opus-mt:en-de", "hf:facebook/nllb-200-distilled-600M",
            "hf:facebook/m2m100_418M"} <= set(installs)
    proc = run("models", "available", "--source", "hf", "--from", "en", "--json", env=env)
    entries = json.loads(proc.stdout)
    assert {e["task"] for e in entries} == {"translate", "summarise"}
    assert all(e["source"] == "hf" for e in entries)
    offline = run("models", "available", env=_env(DRAGOMAN_ARGOS_INDEX=f"{_dead_url()}/i.json"))
    assert offline.returncode == 0
    assert "warning: argos: cannot download" in offline.stderr
    assert "opus-mt:de-en" in offline.stdout


def test_serve_install_fetches_missing_pairs(mirror: Mirror, tmp_path: Path) -> None:
    store = tmp_path / "store"
    server = Server(store, **{k: v for k, v in _mirror_env(mirror, tmp_path / "hf").items()
                              if k in ("DRAGOMAN_ARGOS_INDEX", "HF_ENDPOINT", "HF_HOME")},
                    DRAGOMAN_INSTALL="en:de,de:en")
    log = server.stop()
    assert "en->de: installed argos-en-de from argos:en-de" in log
    # The Argos index has no de-en: OPUS-MT is next.
    assert "de->en: installed opus-mt-de-en from opus-mt:de-en" in log
    assert "loaded 2 model(s)" in log


def test_serve_install_offline_starts_with_what_is_installed(tmp_path: Path) -> None:
    dead = _dead_url()
    server = Server(tmp_path / "store", DRAGOMAN_ARGOS_INDEX=f"{dead}/index.json",
                    HF_ENDPOINT=dead, HF_HOME=str(tmp_path / "hf"), DRAGOMAN_INSTALL="en:de")
    log = server.stop()
    assert "en->de: could not install a model (argos:en-de: cannot download the Argos " \
        "package index" in log
    assert "serving without it" in log
    assert "loaded 0 model(s)" in log
