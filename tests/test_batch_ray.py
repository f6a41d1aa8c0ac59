"""`dragoman batch --engine ray` on a two-node Ray cluster on loopback (a head with 1 CPU and
a worker node with 2, separate raylets, shared by the whole module): the same records and error
records as the in-process engine for every input format, and exactly-once output after the
driver is killed -9 and after a node's worker processes are killed."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from dragoman.server.batchjob.job import FieldOptions, JobOptions
from tests.test_batch import ENGLISH, article, read_jsonl, run_cli, translated

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'dragoman[cluster]')")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():  # type: ignore[no-untyped-def]
    """A head node and one worker node, each its own raylet, on 127.0.0.1."""
    import os

    from ray.cluster_utils import Cluster

    # Loopback only: without this Ray resolves 127.0.0.1 to the machine's address. Raylets,
    # workers and the driver subprocesses inherit it.
    saved = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    saved_constant = ray_constants.ENABLE_RAY_CLUSTER  # read when ray was imported
    ray_constants.ENABLE_RAY_CLUSTER = False
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1"})
    cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    ray_constants.ENABLE_RAY_CLUSTER = saved_constant
    if saved is None:
        os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    else:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = saved


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
        options=RayOptions(actors=2, actor_cpus=0.5, block_docs=3, block_bytes=2048, window=8),
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


# -- kill -9 the driver, kill a node's workers, rerun ----------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _kill_test_input(path: Path, count: int) -> tuple[list[str], set[str]]:
    """``count`` one-sentence records with carried fields in odd formats, and a few bad lines;
    returns the raw good lines and the ids of the bad ones."""
    good, bad = [], set()
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            if i % 500 == 250:
                handle.write('{"id": "broken%d", "text": \n' % i)  # malformed: MALFORMED_RECORD
                bad.add(f"line {i + 1}")
                continue
            line = ('{"id": "d%d", "rank": %d.50, "tags": ["a",  "\\u00e9"], "text": %s}'
                    % (i, i, json.dumps(ENGLISH[i % len(ENGLISH)])))
            handle.write(line + "\n")
            good.append(line)
    return good, bad


def _driver(source: Path, out: Path, store: Path, address: str) -> "subprocess.Popen[str]":
    import os
    import subprocess
    import sys

    env = {**os.environ, "DRAGOMAN_MODELS": str(store), "DRAGOMAN_INTRA_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "client"), str(ROOT / "server")])}
    return subprocess.Popen(
        [sys.executable, "-m", "dragoman.client.cli", "batch", "translate", "--to", "de",
         "--from", "en", "--engine", "ray", "--ray-address", address, "--actors", "2",
         "--actor-cpus", "0.5", "--ray-block-kb", "4", "--in-flight", "16", "-v",
         "--progress", "log", "--log-interval", "1", str(source), "-o", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_blocks(manifest: Path, count: int, proc: "subprocess.Popen[str]",
                     timeout: float = 300.0) -> int:
    """Wait until the manifest lists ``count`` committed blocks (polling the file)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = manifest.read_bytes().count(b"\n") if manifest.exists() else 0
        if lines >= count:
            return lines
        if proc.poll() is not None:
            raise AssertionError(f"the driver ended early: {proc.communicate()[1][-3000:]}")
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} blocks committed in {timeout}s")


def _kill_node_workers(node: object) -> int:
    """SIGKILL every Ray worker process of ``node`` (the children of its raylet)."""
    import os
    import signal

    from ray._private import ray_constants

    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid  # type: ignore[attr-defined]
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        # Workers retitle themselves "ray::IDLE", "ray::MapWorker(...)"; agents are no workers.
        if ppid == raylet and cmdline.startswith(b"ray::") and b"Agent" not in cmdline:
            os.kill(int(entry), signal.SIGKILL)
            killed += 1
    return killed


def _plan_line(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if " committed by earlier runs" in line)


def test_driver_and_node_kills_then_rerun_give_every_document_exactly_once(
    tmp_path: Path, copy_store: Path, local_ray: object, swapcase: Callable[[str], str],
) -> None:
    cluster = local_ray
    source = tmp_path / "many.jsonl"
    good, bad = _kill_test_input(source, 3000)
    out = tmp_path / "many_out"
    manifest = out / "_MANIFEST.jsonl"
    address = cluster.address  # type: ignore[attr-defined]

    # Run 1: kill -9 the driver once 5 blocks are committed.
    first = _driver(source, out, copy_store, address)
    _wait_for_blocks(manifest, 5, first)
    first.kill()
    first.wait()
    after_driver_kill = manifest.read_bytes().count(b"\n")
    plan = json.loads((out / "_PLAN.json").read_text())
    assert len(plan) >= 20

    # Run 2: the same command; kill the worker node's workers 5 blocks later (its actor dies
    # in the middle of a block; Ray restarts it and retries the block), and let it finish.
    second = _driver(source, out, copy_store, address)
    _wait_for_blocks(manifest, after_driver_kill + 5, second)
    worker_node = next(iter(cluster.worker_nodes))  # type: ignore[attr-defined]
    killed = _kill_node_workers(worker_node)
    assert killed >= 1
    at_node_kill = manifest.read_bytes().count(b"\n")
    _, stderr = second.communicate(timeout=600)
    assert second.returncode == 1, stderr[-3000:]  # 1: the bad lines are in the errors file
    resumed = _plan_line(stderr)
    assert f"{after_driver_kill} committed by earlier runs" in resumed, resumed
    # The node's actor died mid-block: Ray restarted it and retried the block; none failed.
    assert re.search(r"failed blocks +0 +0\n", stderr) and "BLOCK_FAILED" not in stderr
    table = stderr[stderr.index("batch summary"):]
    blocks_row = next(line for line in table.splitlines() if line.startswith("blocks"))

    # Exactly once, in the output or the errors file; carried bytes unchanged.
    lines = [line for part in sorted(out.glob("part-*.jsonl"))
             for line in part.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(good) == len({json.loads(line)["id"] for line in lines})
    by_id = {json.loads(line)["id"]: line for line in lines}
    for original in good:
        record = json.loads(original)
        written = by_id[record["id"]]
        assert written.startswith(original[:-1] + ", "), (original, written)
        assert json.loads(written)["text_de"] == translated(record["text"], swapcase)
    errors = read_jsonl(Path(f"{out}.errors.jsonl"))
    assert sorted(e["location"] for e in errors) == sorted(bad)
    assert {e["code"] for e in errors} == {"MALFORMED_RECORD"}
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not (out / "_errors").exists() and not (out / "_input").exists()
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert sorted(e["block"] for e in entries) == list(range(len(plan)))
    print(f"\n{len(plan)} blocks of ~{len(good) // len(plan)} documents; driver killed after "
          f"{after_driver_kill} committed blocks; rerun: {resumed.split('INFO')[-1].strip()}; "
          f"{killed} worker processes of the worker node killed at {at_node_kill} committed "
          f"blocks; the job then finished with no failed block ({blocks_row.split()[1:]} "
          "blocks this run / job)")

    # Run 3: a rerun of the finished job only reads the success marker.
    third = _driver(source, out, copy_store, address)
    _, stderr = third.communicate(timeout=300)
    assert third.returncode == 1
    assert "0 done, 0 failed, 3000 skipped" in stderr
    assert sorted(e["block"] for e in
                  map(json.loads, manifest.read_text().splitlines())) == list(range(len(plan)))


# -- every input format, and a block that keeps failing ------------------------------------


def _tree(folder: Path) -> None:
    for i in range(7):
        (folder / f"sub{i % 2}").mkdir(parents=True, exist_ok=True)
        (folder / f"sub{i % 2}" / f"a{i}.txt").write_text(article(i))
    (folder / "page.html").write_text(f"<html><body><p>{ENGLISH[3]}</p></body></html>")
    (folder / "notes.md").write_text(f"# {ENGLISH[4]}\n\n{ENGLISH[5]}\n")
    (folder / "empty.txt").write_text("")
    (folder / "binary.txt").write_bytes(b"\x00\x01")


@pytest.mark.parametrize("kind", ["folder", "zip", "tar.gz", "warc.gz"])
def test_ray_reads_folders_archives_and_warc_like_local(
    tmp_path: Path, copy_store: Path, local_ray: object, monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """Expanded into JSONL blocks on the driver; records and errors as --local writes them."""
    import shutil
    import tarfile

    from dragoman.server.batchjob.ray_engine import run_ray_job
    from tests.test_batch import _write_warc

    tree = tmp_path / "tree"
    tree.mkdir()
    _tree(tree)
    if kind == "folder":
        source = tree
    elif kind == "zip":
        source = Path(shutil.make_archive(str(tmp_path / "docs"), "zip", tree))
    elif kind == "tar.gz":
        source = tmp_path / "docs.tar.gz"
        with tarfile.open(source, "w:gz") as archive:
            for path in sorted(tree.rglob("*")):
                if path.is_file():
                    archive.add(path, arcname=path.relative_to(tree).as_posix())
    else:
        source = tmp_path / "crawl.warc.gz"
        _write_warc(source)
    monkeypatch.setenv("DRAGOMAN_MODELS", str(copy_store))
    local = tmp_path / "local.jsonl"
    local_code = run_cli("translate", "--to", "de", "--local", str(source), "-o", str(local))
    out = tmp_path / "ray_out"
    spec = _spec([source], out, copy_store)
    summary = run_ray_job(spec)
    assert summary.exit_status == local_code
    assert summary.total_blocks >= (1 if kind == "warc.gz" else 2)  # 3 documents per block
    lines = [line for part in sorted(out.glob("part-*.jsonl"))
             for line in part.read_text(encoding="utf-8").splitlines()]
    assert lines == local.read_text(encoding="utf-8").splitlines()  # same records, same order
    local_errors = tmp_path / "local.jsonl.errors.jsonl"
    ray_errors = Path(f"{out}.errors.jsonl")
    assert (ray_errors.read_bytes() if ray_errors.exists() else b"") == \
        (local_errors.read_bytes() if local_errors.exists() else b"")
    assert not (out / "_input").exists()


def test_a_block_that_keeps_failing_goes_to_the_errors_file(
    tmp_path: Path, copy_store: Path, local_ray: object, swapcase: Callable[[str], str],
) -> None:
    """A Parquet row group that cannot be decoded fails on every attempt: its rows become
    BLOCK_FAILED records, the other row groups are translated, the job ends normally."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from dragoman.server.batchjob.progress import LogProgress
    from dragoman.server.batchjob.ray_engine import run_ray_job

    source = tmp_path / "damaged.parquet"
    rows = [{"id": f"p{i}", "text": ENGLISH[i]} for i in range(30)]
    pq.write_table(pa.Table.from_pylist(rows), source, row_group_size=10, compression="snappy")
    meta = pq.ParquetFile(source).metadata
    data = bytearray(source.read_bytes())
    for c in range(meta.num_columns):
        chunk = meta.row_group(1).column(c)
        start = chunk.dictionary_page_offset or chunk.data_page_offset
        data[start + 4:start + chunk.total_compressed_size - 4] = \
            b"\xff" * (chunk.total_compressed_size - 8)
    source.write_bytes(bytes(data))
    out = tmp_path / "damaged_out"
    stream = io.StringIO()
    progress = LogProgress(stream, interval=0.0, wants_total=True)
    summary = run_ray_job(_spec([source], out, copy_store), progress)
    assert (summary.done, summary.failed, summary.failed_blocks, summary.total_blocks) == \
        (20, 10, 1, 3)
    errors = read_jsonl(Path(f"{out}.errors.jsonl"))
    assert [e["location"] for e in errors] == [f"row {i}" for i in range(10, 20)]
    assert {e["code"] for e in errors} == {"BLOCK_FAILED"}
    table = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("part-*.parquet"))])
    assert table.column("id").to_pylist() == [f"p{i}" for i in [*range(10), *range(20, 30)]]
    assert table.column("text_de").to_pylist() == [
        translated(ENGLISH[i], swapcase) for i in [*range(10), *range(20, 30)]]
    assert "1 failed blocks" in stream.getvalue() and "/30, ETA" in stream.getvalue()
    # The same file on the local engine: the damaged row group's rows fail, the rest work.
    local = tmp_path / "local.parquet"
    assert run_cli("translate", "--to", "de", "--local", "--models", str(copy_store),
                   str(source), "-o", str(local)) == 1
    assert pq.read_table(local).column("id").to_pylist() == table.column("id").to_pylist()
