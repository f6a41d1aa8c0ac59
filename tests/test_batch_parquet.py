"""Parquet on the local and server engines (issue 17): every column comes back with its type
and values, result columns are added, failed rows go to the errors file, and an interrupted
job resumes from its last committed part."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_batch import ENGLISH, article, local_env, read_jsonl, run_cli, translated  # noqa: F401

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'dragoman[parquet]')")
pq = pytest.importorskip("pyarrow.parquet")


def write_input(path: Path, rows: int = 30, row_group_size: int = 8) -> pa.Table:
    """Articles with columns of many types; row 7 has no text, row 12 a blank one."""
    records = []
    for i in range(rows):
        text = None if i == 7 else " " if i == 12 else article(i)
        records.append({
            "id": i, "score": i * 0.125, "when": dt.datetime(2024, 1, 1 + i % 28, 12, i),
            "tags": [f"t{i}", "x"], "meta": {"source": f"s{i}", "rank": i},
            "blob": bytes([i, 0, 255]), "title": ENGLISH[i % len(ENGLISH)], "text": text,
        })
    schema = pa.schema([
        ("id", pa.int32()), ("score", pa.float64()), ("when", pa.timestamp("ms")),
        ("tags", pa.list_(pa.string())),
        ("meta", pa.struct([("source", pa.string()), ("rank", pa.int16())])),
        ("blob", pa.binary()), ("title", pa.string()), ("text", pa.string()),
    ])
    table = pa.Table.from_pylist(records, schema=schema)
    pq.write_table(table, path, row_group_size=row_group_size)
    return table


def check_output(out: Path, table: pa.Table, swapcase: Callable[[str], str]) -> None:
    result = pq.read_table(out)
    assert result.column_names == [*table.column_names, "text_de", "title_de"]
    kept = [i for i in range(table.num_rows) if i not in (7, 12)]
    # Every input column: same type, same values, for the rows that succeeded.
    assert result.select(table.column_names).equals(table.take(kept))
    for row, i in zip(result.to_pylist(), kept):
        assert row["text_de"] == translated(article(i), swapcase)
        assert row["title_de"] == translated(ENGLISH[i % len(ENGLISH)], swapcase)


def test_parquet_local_engine(tmp_path: Path, local_env: Path, swapcase: Callable[[str], str],
                              capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.parquet"
    table = write_input(source)
    out = tmp_path / "out.parquet"
    assert run_cli("translate", "--to", "de", "--local", str(source), "-o", str(out)) == 1
    assert "28 done, 2 failed" in capsys.readouterr().err
    check_output(out, table, swapcase)
    errors = read_jsonl(tmp_path / "out.parquet.errors.jsonl")
    assert [(e["id"], e["location"], e["code"]) for e in errors] == [
        ("7", "row 7", "MALFORMED_RECORD"), ("12", "row 12", "EMPTY_TEXT")]
    # A bare output name mirrors the input: Parquet again.
    bare = tmp_path / "bare"
    assert run_cli("translate", "--to", "de", "--local", str(source), "-o", str(bare)) == 1
    assert pq.read_table(bare).equals(pq.read_table(out))
    # JSONL out of Parquet in is allowed too (values JSON can hold; others as strings).
    as_jsonl = tmp_path / "out.jsonl"
    assert run_cli("translate", "--to", "de", "--local", str(source), "-o", str(as_jsonl)) == 1
    first = read_jsonl(as_jsonl)[0]
    assert first["meta"] == {"source": "s0", "rank": 0} and first["when"] == "2024-01-01 12:00:00"


def test_parquet_server_engine_matches_local(tmp_path: Path, server, local_env: Path,  # type: ignore[no-untyped-def]
                                             swapcase: Callable[[str], str]) -> None:
    source = tmp_path / "in.parquet"
    table = write_input(source)
    remote = tmp_path / "remote.parquet"
    assert run_cli("translate", "--to", "de", "--server", server.address, str(source),
                   "-o", str(remote)) == 1
    check_output(remote, table, swapcase)
    local = tmp_path / "local.parquet"
    assert run_cli("translate", "--to", "de", "--local", str(source), "-o", str(local)) == 1
    assert pq.read_table(remote).equals(pq.read_table(local))


def test_parquet_job_resumes_from_its_last_commit(tmp_path: Path, local_env: Path,
                                                  swapcase: Callable[[str], str]) -> None:
    """Stop a job after some commits (an engine that gives up), rerun: nothing twice."""
    from dragoman.server.batchjob.command import BatchSpec, build_job, open_engine
    from dragoman.server.batchjob.job import JobOptions
    from dragoman.server.batchjob.runner import RunOptions

    source = tmp_path / "in.parquet"
    table = write_input(source, rows=60, row_group_size=10)
    out = tmp_path / "out.parquet"
    spec = BatchSpec(source, out, JobOptions("translate", "de"), engine="local",
                     run=RunOptions(window=2, commit_interval=1e-6))

    class Stopping:
        """The real engine, but the job stops after 25 replies (as if killed)."""

        def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
            self.engine = engine

        def process(self, requests):  # type: ignore[no-untyped-def]
            for n, reply in enumerate(self.engine.process(requests)):
                if n == 25:
                    raise KeyboardInterrupt
                yield reply

        def close(self) -> None:
            self.engine.close()

    with open_engine(spec) as engine:
        with pytest.raises(KeyboardInterrupt):
            build_job(spec, Stopping(engine)).run()
    staging = tmp_path / "out.parquet.partial"
    assert sorted(staging.glob("part-*.parquet")) and not out.exists()
    with open_engine(spec) as engine:
        summary = build_job(spec, engine).run()
    assert summary.skipped > 0 and summary.total_done + summary.total_failed == 60
    assert summary.done + summary.failed + summary.skipped == 60
    result = pq.read_table(out)
    kept = [i for i in range(60) if i not in (7, 12)]
    assert result.select(table.column_names).equals(table.take(kept))
    assert not staging.exists()
