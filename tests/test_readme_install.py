"""The README's "Installing models" examples, run as written through the console script.

Every `dragoman ...` line of the section's code blocks runs in order, each block against a
fresh store (DRAGOMAN_MODELS), in a folder holding what the lines name: an Argos package, a
CTranslate2 folder and tiny checkpoints of each family built here (tests/test_families.py and
tests/test_summarise_convert.py builders), with the network sources served by a local mirror
(DRAGOMAN_ARGOS_INDEX, HF_ENDPOINT). `dragoman serve` gets a free port added and is stopped
once its models are loaded. A README edit that breaks an example fails here.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mirror import Mirror
from tests.test_cli_e2e import ROOT, _env, dragoman, run

pytest.importorskip("transformers", reason="the README examples convert checkpoints")
pytest.importorskip("huggingface_hub", reason="the README examples download from a hub")


def readme_blocks() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Installing models"):]
    section = section[: section.index("\n## ", 5)]
    blocks = []
    for block in section.split("```sh\n")[1:]:
        lines = []
        for line in block.split("```", 1)[0].splitlines():
            command = line.split("  #", 1)[0].strip()
            if command.startswith("dragoman "):
                lines.append(command)
        blocks.append(lines)
    return blocks


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, sp_model: Path) -> Path:
    """Everything the README's lines name, built offline."""
    from tests.support.argospackage import build_argos_package
    from tests.support.copymodel import build_copy_model
    from tests.support.hfmodels import build_tiny_marian
    from tests.test_families import _train_sentencepiece, build_m2m100, build_nllb
    from tests.test_summarise_convert import build_bart, build_t5

    work = tmp_path_factory.mktemp("readme")
    ct2 = build_copy_model(work / "build" / "ct2", sp_model, quantization="int8",
                           max_positions=256)
    for src, tgt in (("de", "en"), ("en", "de")):
        build_argos_package(work / "packages" / f"translate-{src}_{tgt}-1_9.argosmodel",
                            sp_model, ct2, src, tgt, package_version="1.9")
    shutil.copy(work / "packages" / "translate-de_en-1_9.argosmodel", work)
    shutil.copytree(ct2, work / "opus-mt-de-en-ct2")
    shutil.copy(sp_model, work / "opus-mt-de-en-ct2" / "sentencepiece.model")
    build_tiny_marian(work / "opus-mt-de-en", sp_model)
    bpe = _train_sentencepiece(work / "build" / "bpe", "bpe")
    build_nllb(work / "nllb-200-distilled-600M", bpe)
    build_m2m100(work / "m2m100_418M", bpe)
    build_bart(work / "distilbart-cnn-12-6")
    build_t5(work / "flan-t5-small")
    return work


@pytest.fixture(scope="module")
def mirror(folder: Path) -> Iterator[Mirror]:
    with Mirror() as m:
        index = []
        for package in sorted((folder / "packages").iterdir()):
            m.add_file(f"/v1/{package.name}", package.read_bytes())
            src, tgt = package.name.split("-")[1].split("_")
            index.append({"package_version": "1.9", "from_code": src, "to_code": tgt,
                          "links": [f"v1/{package.name}"], "code": f"translate-{src}_{tgt}"})
        m.add_file("/index.json", json.dumps(index).encode())
        m.add_repo("Helsinki-NLP/opus-mt-de-en", folder / "opus-mt-de-en")
        m.add_repo("facebook/nllb-200-distilled-600M", folder / "nllb-200-distilled-600M")
        m.add_repo("google/flan-t5-small", folder / "flan-t5-small")
        yield m


def _serve(argv: list[str], env: dict[str, str]) -> str:
    proc = subprocess.Popen([*dragoman(), *argv[1:], "--address", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    log = []
    for line in proc.stdout:
        log.append(line)
        if "model(s)" in line and "loaded" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    return "".join(log) + (rest or "")


@pytest.mark.slow
def test_readme_install_examples_run_as_written(folder: Path, mirror: Mirror,
                                                tmp_path: Path) -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 2 and any("models install argos:" in c for c in blocks[0])
    ran = 0
    for number, commands in enumerate(blocks):
        env = _env(DRAGOMAN_MODELS=str(tmp_path / f"store{number}"),
                   DRAGOMAN_ARGOS_INDEX=f"{mirror.url}/index.json", HF_ENDPOINT=mirror.url,
                   HF_HOME=str(tmp_path / "hf"))
        for command in commands:
            argv = shlex.split(command)
            if argv[1] == "serve":
                log = _serve(argv, env)
                assert "could not install" not in log, log
                assert "loaded" in log, log
            else:
                proc = subprocess.run([*dragoman(), *argv[1:]], capture_output=True, text=True,
                                      env=env, cwd=folder, timeout=300)
                assert proc.returncode == 0, f"{command}: {proc.stderr}"
            ran += 1
    assert ran >= 12
    listing = run("models", "list", "--json", env=_env(DRAGOMAN_MODELS=str(tmp_path / "store1")))
    names = {m["name"] for m in json.loads(listing.stdout)}
    assert {"opus-mt-de-en-ct2", "opus-mt-de-en", "nllb-200-distilled-600M", "m2m100_418M",
            "distilbart-cnn-12-6", "flan-t5-small"} <= names
    assert "argos-de-en" not in names  # the block ends with `models remove argos-de-en`
