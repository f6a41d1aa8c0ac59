"""The benchmark scripts still run against the current server (a toy model, a few documents):
they drive the server through flags and internals that would otherwise rot unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_throughput_bench_runs_every_configuration(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--smoke", "--workdir", str(tmp_path),
         "--memory-mb", "8"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for row in ("| (a) raw translate_batch", "| (b) service, 2 clients", "| (b') service",
                "| (m) service, --decode-memory-mb 8", "| (c) one call per paragraph",
                "| (c') one call per request", "| (c2) one call per request"):
        assert row in done.stdout, row
    assert "targets (measured, not asserted):" in done.stdout


def test_batch_bench_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "batch_throughput.py"), "--articles", "12", "--repeat", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "batch --local" in done.stdout and "batch --server" in done.stdout


def test_http_bench_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "http_throughput.py"), "--smoke", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for row in ("| (a) raw translate_batch", "| gRPC Translate, 2 clients", "| HTTP POST /translate, 2 clients"):
        assert row in done.stdout, row
    assert "HTTP at 2 clients within 10% of gRPC:" in done.stdout


def test_load_fault_bench_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "load_fault.py"), "--smoke", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for row in ("| overload burst", "| concurrent calls held", "| RESOURCE_EXHAUSTED latency",
                "| recovery time", "| peak RSS hostile input", "| kill -9 of the server",
                "| kill -9 of the batch job"):
        assert row in done.stdout, row
    assert "lost 0, duplicated 0" in done.stdout
    assert "targets (measured, not asserted):" in done.stdout


def test_model_sources_bench_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "model_sources.py"), "--smoke", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "argos:en-de: 1 file(s)" in done.stdout
    assert "opus-mt:de-en:" in done.stdout and "model.safetensors" in done.stdout
    assert "pytorch_model.bin" not in done.stdout
