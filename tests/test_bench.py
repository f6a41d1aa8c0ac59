"""The benchmark scripts still run against the current server (a toy model, a few documents):
they drive the server through flags and internals that would otherwise rot unnoticed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_throughput_bench_runs_every_configuration(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--smoke", "--workdir", str(tmp_path),
         "--memory-mb", "8", "--naive-clients", "1,2", "--results", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for row in ("| (a) raw translate_batch", "| (b) service, 2 clients", "| (b') service",
                "| (m) service, --decode-memory-mb 8", "| (c) one call per paragraph",
                "| (c') one call per request", "| (c2) one call per request"):
        assert row in done.stdout, row
    assert "targets (measured, not asserted):" in done.stdout
    # The results JSON carries every run with its client count, and bench/charts.py draws it.
    results = json.loads((tmp_path / "r.json").read_text())
    runs = {r["name"]: r for s in results["sessions"] for r in s["runs"]}
    assert runs["(c) one call per paragraph (Argos), 1 client"]["clients"] == 1
    assert runs["(c2) one call per request, 2 clients"]["clients"] == 2
    charts = subprocess.run([sys.executable, str(BENCH / "charts.py"), str(tmp_path / "r.json"),
                             "-o", str(tmp_path / "charts")], capture_output=True, text=True,
                            timeout=300)
    assert charts.returncode == 0, charts.stderr
    for name in ("throughput.png", "latency.png", "memory.png"):
        assert (tmp_path / "charts" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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


def test_latency_bench_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "latency.py"), "--smoke", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for row in ("| (a) raw translate_batch", "| (a1) p50 latency / wall time",
                "| (b) interactive beside bulk, p50 x idle", "| (c) bulk stream throughput x raw"):
        assert row in done.stdout, row
    assert "priority field: yes" in done.stdout
    assert "targets (measured, not asserted):" in done.stdout
