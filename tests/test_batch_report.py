"""The table `dragoman batch` ends with, and its logs as JSON lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dragoman.client.cli import main
from dragoman.server.batchjob.report import error_codes, report_table, wall_time
from dragoman.server.batchjob.runner import RunReport

ROOT = Path(__file__).resolve().parent.parent


def mixed_input(tmp_path: Path) -> Path:
    lines = [json.dumps({"id": f"ok{i}", "text": f"Sentence number {i} of the archive."})
             for i in range(4)]
    lines += ['{"id": "broken", "text": ', json.dumps({"id": "empty", "text": " "}),
              json.dumps({"id": "huge", "text": "Too long. " * 40})]
    source = tmp_path / "mixed.jsonl"
    source.write_text("\n".join(lines) + "\n")
    return source


def test_batch_prints_a_summary_table(tmp_path: Path, copy_store: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DRAGOMAN_MODELS", str(copy_store))
    monkeypatch.setenv("DRAGOMAN_INTRA_THREADS", "1")
    monkeypatch.setenv("DRAGOMAN_MAX_CHARS", "200")
    source = mixed_input(tmp_path)
    code = main(["batch", "translate", "--to", "de", "--from", "en", "--local",
                 "--progress", "none", str(source), "-o", str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err
    assert code == 1
    table = err[err.index("batch summary"):].splitlines()
    cells = [re.split(r"\s{2,}", line.strip()) for line in table[1:]]
    rows = {c[0]: c[1:] for c in cells}
    assert rows["documents"] == ["7", "7"]
    assert rows["done"] == ["4", "4"]
    assert rows["failed"] == ["3", "3"]
    codes = {k: v for k, v in rows.items() if k.isupper()}
    assert codes == {"MALFORMED_RECORD": ["1"], "EMPTY_TEXT": ["1"], "INVALID_ARGUMENT": ["1"]}
    assert int(rows["characters"][0].replace(",", "")) == sum(
        len(f"Sentence number {i} of the archive.") for i in range(4))
    assert rows["characters/s"] and rows["wall time"][0].endswith(" s")


def test_report_table_layout_and_codes(tmp_path: Path) -> None:
    errors = tmp_path / "out.jsonl.errors.jsonl"
    errors.write_text("".join(json.dumps({"id": i, "code": c, "reason": "r"}) + "\n"
                              for i, c in enumerate(["NOT_FOUND", "EMPTY_TEXT", "NOT_FOUND"]))
                      + '{"id": 9, "co')  # a torn last line is skipped
    codes = error_codes(str(errors))
    assert codes == Counter({"NOT_FOUND": 2, "EMPTY_TEXT": 1})
    report = RunReport(done=1200, failed=2, skipped=30, total_done=1230, total_failed=3,
                       ignored=0, chars=1_500_000, seconds=125.0, output="o", errors=str(errors))
    assert report_table(report, codes).splitlines() == [
        "batch summary           this run  job total",
        "documents                  1,202      1,233",
        "  done                     1,200      1,230",
        "  failed                       2          3",
        "    NOT_FOUND                             2",
        "    EMPTY_TEXT                            1",
        "skipped (done before)         30",
        "documents/s                  9.6",
        "characters             1,500,000",
        "characters/s              12,000",
        "wall time                   2:05",
    ]
    assert error_codes(None) == Counter() and error_codes("s3://bucket/x.errors.jsonl") == Counter()
    assert wall_time(3.25) == "3.2 s" and wall_time(3725) == "1:02:05"


def test_batch_local_logs_json_lines(tmp_path: Path, copy_store: Path) -> None:
    source = mixed_input(tmp_path)
    env = {**os.environ, "DRAGOMAN_MODELS": str(copy_store), "DRAGOMAN_INTRA_THREADS": "1",
           "DRAGOMAN_MAX_CHARS": "200",
           "DRAGOMAN_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-m", "dragoman.client.cli", "batch", "translate", "--to", "de",
         "--from", "en", "--local", "-v", "--progress", "log", str(source),
         "-o", str(tmp_path / "out.jsonl")], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert records, done.stderr
    for record in records:
        assert set(record) >= {"timestamp", "level", "logger", "message", "request_id"}
    assert any(r["logger"].startswith("dragoman.server") for r in records)
    assert "batch summary" in done.stderr
