"""The charts the README shows come from a committed benchmark run: the results JSON still
renders with bench/charts.py, and every chart the README points at exists."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "throughput-quick.json"


def test_committed_results_render(tmp_path: Path) -> None:
    results = json.loads(RESULTS.read_text())
    modes = {r["name"].split(" ", 1)[0] for s in results["sessions"] for r in s["runs"]}
    assert {"(b)", "(c)", "(c2)", "(m)"} <= modes
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "charts.py"), str(RESULTS),
                           "-o", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("throughput.png", "latency.png", "memory.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_shows_the_committed_charts() -> None:
    readme = (ROOT / "README.md").read_text()
    shown = re.findall(r"!\[[^\]]*\]\((bench/charts/[^)]+\.png)\)", readme)
    assert {Path(p).name for p in shown} == {"throughput.png", "latency.png", "memory.png"}
    for path in shown:
        assert (ROOT / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
