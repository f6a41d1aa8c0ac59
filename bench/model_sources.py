"""What `dragoman models install` downloads for one model from each source, and how long the
install takes, against a local mirror (tests/support/mirror.py) on loopback.

Models are OPUS-MT-sized (6+6 layers, d_model 512, 58k vocabulary) with random weights: an
Argos package holding an int8 CTranslate2 model (tests/support/randommodel.build_random_model)
and a Marian checkpoint saved by transformers (float32 safetensors, ~300 MB, as on the Hub),
whose repository also carries the copies Dragoman must not fetch (pytorch_model.bin,
tf_model.h5, ...). Each install runs the real console script (`dragoman models install
argos:en-de` / `opus-mt:de-en`) into a fresh store, with a fresh Hugging Face cache; times are
wall clock, median of --repeat runs. `--smoke` uses tiny models. Measured, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import reporoot

REPO = reporoot.put_on_path()

from tests.support.argospackage import build_argos_package
from tests.support.copymodel import build_copy_model
from tests.support.mirror import Mirror
from tests.support.randommodel import build_random_model
from tests.support.sentences import COPY_CORPUS
from tests.support.spmodels import train_sentencepiece

HF_REPO = "Helsinki-NLP/opus-mt-de-en"
JUNK_BYTES = {"pytorch_model.bin": 1.0, "tf_model.h5": 1.0, "flax_model.msgpack": 1.0,
              "rust_model.ot": 1.0}  # as large as the safetensors, like a real OPUS-MT repo


def build_marian(folder: Path, sp_model: Path, smoke: bool) -> Path:
    import torch
    import transformers

    from tests.support.hfmodels import build_tiny_marian

    build_tiny_marian(folder, sp_model)
    if not smoke:  # replace the tiny weights with an OPUS-MT-sized model
        vocab = json.loads((folder / "vocab.json").read_text())
        size = 58101
        for i in range(len(vocab), size - 1):
            vocab[f"<extra_{i}>"] = i
        vocab["<pad>"] = size - 1
        vocab = {k: v for k, v in vocab.items() if v < size}
        (folder / "vocab.json").write_text(json.dumps(vocab))
        torch.manual_seed(0)
        config = transformers.MarianConfig(  # opus-mt-de-en's shape
            vocab_size=size, d_model=512, encoder_layers=6, decoder_layers=6,
            encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=2048,
            decoder_ffn_dim=2048, activation_function="swish", scale_embedding=True,
            pad_token_id=size - 1, decoder_start_token_id=size - 1, eos_token_id=0,
            forced_eos_token_id=0, max_position_embeddings=512)
        model = transformers.MarianMTModel(config)
        model.save_pretrained(str(folder))
    weights = (folder / "model.safetensors").stat().st_size
    for name, ratio in JUNK_BYTES.items():
        (folder / name).write_bytes(b"\1" * int(weights * ratio))
    return folder


def dragoman(*args: str, env: dict[str, str]) -> float:
    script = shutil.which("dragoman", path=str(Path(sys.executable).parent))
    argv = [script] if script else [sys.executable, "-m", "dragoman.client.cli"]
    started = time.perf_counter()
    done = subprocess.run([*argv, *args], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"dragoman {' '.join(args)} failed: {done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models, one run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    repeat = 1 if args.smoke else args.repeat
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dragoman-sources-"))
    work.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    sp_model = train_sentencepiece(COPY_CORPUS * 4, work / "sp" / "spm", vocab_size=400)
    if args.smoke:
        ct2 = build_copy_model(work / "ct2", sp_model, max_positions=256)
    else:
        ct2 = build_random_model(work / "ct2", sp_model, vocab_size=58101)
    package = build_argos_package(work / "translate-en_de-1_9.argosmodel", sp_model, ct2,
                                  "en", "de", package_version="1.9")
    checkpoint = build_marian(work / "opus-mt-de-en", sp_model, args.smoke)
    print(f"built the models in {time.perf_counter() - started:.1f} s")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRAGOMAN_", "HF_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "client"), str(REPO / "server"), str(REPO)])
    rows = []
    with Mirror() as mirror:
        mirror.add_file(f"/v1/{package.name}", package.read_bytes())
        mirror.add_file("/index.json", json.dumps([{
            "package_version": "1.9", "from_code": "en", "to_code": "de",
            "links": [f"v1/{package.name}"], "code": "translate-en_de"}]).encode())
        repo = mirror.add_repo(HF_REPO, checkpoint)
        env.update(DRAGOMAN_ARGOS_INDEX=f"{mirror.url}/index.json", HF_ENDPOINT=mirror.url,
                   HF_HUB_DISABLE_TELEMETRY="1")
        for spec in ("argos:en-de", "opus-mt:de-en"):
            times = []
            for run in range(repeat):
                mirror.sent.clear()
                store, cache = work / f"store-{run}", work / f"hf-{run}"
                shutil.rmtree(store, ignore_errors=True)
                shutil.rmtree(cache, ignore_errors=True)
                times.append(dragoman("models", "install", spec, "--models", str(store),
                                      env={**env, "HF_HOME": str(cache)}))
            files = {p.rsplit("/", 1)[-1]: n for p, n in mirror.sent.items()
                     if p != "/index.json" and "/api/" not in p}
            installed = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
            rows.append((spec, files, statistics.median(times), installed))
        offered = sum(len(data) for data in repo.files.values())

    for spec, files, seconds, installed in rows:
        total = sum(files.values())
        print(f"\n{spec}: {len(files)} file(s), {total / 1e6:.2f} MB downloaded, install "
              f"{seconds:.1f} s (median of {repeat}), {installed / 1e6:.2f} MB in the store")
        for name, size in sorted(files.items()):
            print(f"  {name:32s} {size:>12,d} bytes")
    print(f"\nthe Hub repository holds {offered / 1e6:.2f} MB in {len(repo.files)} files; "
          "opus-mt:/hf: fetch only the files above")


if __name__ == "__main__":
    main()
