"""`dragoman batch --engine ray` on a local Ray instance (2 CPUs, 2 actors) gives the same
records and error records as the in-process engine, for JSONL and for Parquet."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from dragoman.server.batchjob.job import FieldOptions, JobOptions

from tests.test_batch import ENGLISH, article, read_jsonl, run_cli, translated

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'dragoman[cluster]')")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():  # type: ignore[no-untyped-def]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _records() -> list[dict[str, object]]:
    records: list[dict[str, object]] = [
        {"id": f"r{i}", "n": i, "title": ENGLISH[i % len(ENGLISH)], "text": article(i)}
        for i in range(40)
    ]
    records.insert(5, {"id": "empty", "n": -1, "title": "", "text": ""})
    records.insert(20, {"id": "fr", "n": -2, "title": "",
                        "text": "Le pr\u00e9sident a annonc\u00e9 une r\u00e9forme des retraites et "
                                "le gouvernement a pr\u00e9sent\u00e9 un nouveau plan."})
    return records


def _spec(inputs: list[Path], output: Path, store: Path):  # type: ignore[no-untyped-def]
    from dragoman.server.batchjob.ray_engine import RayOptions, RaySpec

    return RaySpec(
        inputs=tuple(str(p) for p in inputs), output=str(output),
        job=JobOptions("translate", "de"), fields=FieldOptions(), models=str(store),
        options=RayOptions(actors=2, actor_cpus=0.5, block_docs=8, block_bytes=2048, window=8),
    )


def test_ray_jsonl_matches_local_engine(
    tmp_path: Path, copy_store: Path, local_ray: None, monkeypatch: pytest.MonkeyPatch,
    swapcase: Callable[[str], str], capsys: pytest.CaptureFixture[str],
) -> None:
    from dragoman.server.batchjob.ray_engine import run_ray_job

    records = _records()
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setenv("DRAGOMAN_MODELS", str(copy_store))
    local = tmp_path / "local.jsonl"
    assert run_cli("translate", "--to", "de", "--local", str(source), "-o", str(local)) == 1

    out = tmp_path / "ray_out"
    summary = run_ray_job(_spec([source], out, copy_store))
    assert (summary.done, summary.failed, summary.exit_status) == (40, 2, 1)
    parts = sorted(out.glob("part-*.jsonl"))
    assert len(parts) >= 2  # the work really was split
    ray_lines = [line for part in parts for line in part.read_text().splitlines()]
    assert sorted(ray_lines) == sorted(local.read_text().splitlines())
    for line in ray_lines:
        record = json.loads(line)
        assert record["text_de"] == translated(str(record["text"]), swapcase)
    ray_errors = [(e["id"], e["code"]) for e in read_jsonl(Path(f"{out}.errors.jsonl"))]
    local_errors = [(e["id"], e["code"]) for e in read_jsonl(tmp_path / "local.jsonl.errors.jsonl")]
    assert sorted(ray_errors, key=str) == sorted(local_errors, key=str) == \
        sorted([("empty", "EMPTY_TEXT"), ("fr", "NOT_FOUND")], key=str)

    # The same job from the command line: a rerun of the finished job does nothing.
    capsys.readouterr()
    assert run_cli("translate", "--to", "de", "--engine", "ray", "--models", str(copy_store),
                   "--actors", "2", "--actor-cpus", "0.5", str(source), "-o", str(out)) == 1
    assert "0 done, 0 failed, 42 skipped" in capsys.readouterr().err
    assert sorted(out.glob("part-*.jsonl")) == parts
    # Another job must not clobber it.
    assert run_cli("translate", "--to", "fr", "--engine", "ray", "--models", str(copy_store),
                   str(source), "-o", str(out)) == 2
    assert "holds the output of a different job" in capsys.readouterr().err


def test_ray_parquet_in_and_out(
    tmp_path: Path, copy_store: Path, local_ray: None, swapcase: Callable[[str], str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from dragoman.server.batchjob.ray_engine import run_ray_job

    records = _records()
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(records), source)
    out = tmp_path / "ray_parquet"
    summary = run_ray_job(_spec([source], out, copy_store))
    assert (summary.done, summary.failed) == (40, 2)
    table = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("part-*.parquet"))])
    assert table.column_names == ["id", "n", "title", "text", "text_de", "title_de"]
    rows = sorted(table.to_pylist(), key=lambda r: r["n"])
    good = [r for r in records if r["id"] not in ("empty", "fr")]
    assert [r["id"] for r in rows] == [r["id"] for r in good]
    for row, record in zip(rows, good):
        assert {k: row[k] for k in ("id", "n", "title", "text")} == record
        assert row["text_de"] == translated(str(record["text"]), swapcase)
        assert row["title_de"] == translated(str(record["title"]), swapcase)


def test_ray_jsonl_lines_end_at_newline_only(
    tmp_path: Path, copy_store: Path, local_ray: None, swapcase: Callable[[str], str]
) -> None:
    """A raw U+2028/U+2029/U+0085 inside a JSON string is part of its line (issue 17)."""
    from dragoman.server.batchjob.ray_engine import run_ray_job

    lines = [json.dumps({"id": f"s{i}", "text": f"{article(i)}\u2028{ENGLISH[i]}\u2029x\x85y"},
                        ensure_ascii=False) for i in range(6)]
    assert all("\u2028" in line for line in lines)
    source = tmp_path / "seps.jsonl"
    source.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
    out = tmp_path / "seps_out"
    summary = run_ray_job(_spec([source], out, copy_store))
    assert (summary.done, summary.failed) == (6, 0)
    written = [line for part in sorted(out.glob("part-*.jsonl"))
               for line in part.read_bytes().decode("utf-8").split("\n") if line]
    assert len(written) == 6
    for line, original in zip(sorted(written), sorted(lines)):
        assert line.startswith(original[:-1])  # carried bytes unchanged, results appended
