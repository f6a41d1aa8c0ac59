"""The same batch job on Ray Data, for archives that outgrow one machine, resumable by block.

The driver cuts the input into blocks, the job's unit of work: a byte range of a JSONL file
(cut at ``\\n``, the only line end), a gzip-compressed JSONL file, a Parquet row group, or a
run of documents of a folder, tar/zip or WARC input, which the driver expands once into a
JSONL block file under ``OUTPUT/_input``. The plan (``OUTPUT/_PLAN.json``) is saved before
any work starts, so every run of the job sees the same blocks.

Ray Data sends the unfinished blocks to a pool of actors, each of which builds the model
layer once (``LocalEngine``, exactly as ``--local`` does), reads its block, translates its
documents with ``window`` of them in flight, and commits the block: its results as
``OUTPUT/part-NNNNNN.jsonl`` (or ``.parquet``) and its failed documents as
``OUTPUT/_errors/part-NNNNNN.jsonl``, each written under a temporary name and renamed into
place. The driver then appends the block to ``OUTPUT/_MANIFEST.jsonl`` (fsynced): that line
is the commit. A rerun of the same command reads the plan and the manifest, deletes part
files of blocks the manifest does not list (a block that was being written when something
died) and runs the rest, so every document ends up exactly once in the output or the errors
file, whatever was killed: the driver, an actor, a node.

An actor that dies is restarted by Ray and its block retried (``attempts`` in all); an
exception inside a block is retried in the actor as often. A block that still fails goes to
the errors file with every one of its documents (``BLOCK_FAILED``) instead of failing the
job. When every block is committed, the error parts are joined into ``OUTPUT.errors.jsonl``
and ``OUTPUT/_SUCCESS`` is written; a rerun of a finished job reads only that.

Every node needs Dragoman installed (``pip install 'dragoman[cluster]'``), the model store at
the same path (``--models`` or ``DRAGOMAN_MODELS``, e.g. on a shared volume), and the input
and output at paths every node sees.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dragoman.server.atomicfile import fsync_dir, write_atomic
from dragoman.server.batchjob.job import (
    MALFORMED_INPUT,
    Document,
    FieldOptions,
    Item,
    JobOptions,
    Outcome,
    Rejected,
)
from dragoman.server.batchjob.readers import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    ReaderOptions,
    detect_input_format,
    item_from_json,
    item_to_json,
    jsonl_block_items,
    open_reader,
    parquet_row_item,
)
from dragoman.server.batchjob.runner import (
    NoProgress,
    ProgressReporter,
    RunReport,
    process_documents,
)
from dragoman.server.batchjob.writers import (
    error_record,
    record_line,
    result_schema,
    write_parquet_atomically,
)
from dragoman.server.config import ServerConfig, env_name, load_config
from dragoman.server.errors import InvalidInput, ModelFailed

logger = logging.getLogger(__name__)

SUCCESS_MARKER = "_SUCCESS"
JOB_MARKER = "_DRAGOMAN_JOB"
PLAN_FILE = "_PLAN.json"
MANIFEST_FILE = "_MANIFEST.jsonl"
INPUT_DIR = "_input"
ERRORS_DIR = "_errors"
BLOCK_FAILED = "BLOCK_FAILED"
RAY_FORMATS = ("jsonl", "parquet", "folder", "tar", "zip", "warc")
_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json.gz")
_COUNT_GZIP_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: $RAY_ADDRESS, else start a local instance
    local_cpus: int | None = None  # CPUs of a local instance (None: all of them)
    actors: int = 1  # model actors; each loads the models once
    actor_cpus: float = 1.0  # CPUs reserved per actor
    block_docs: int = 1000  # documents per block of a folder, tar/zip or WARC input
    block_bytes: int = 32 * 1024 * 1024  # bytes per block of an uncompressed JSONL file
    window: int = 32  # documents in flight inside one actor
    attempts: int = 3  # tries of a block (actor deaths and exceptions) before it fails

    def __post_init__(self) -> None:
        if self.actors < 1 or self.block_docs < 1 or self.window < 1 or self.attempts < 1:
            raise InvalidInput("actors, block size, in-flight count and attempts must be "
                               "at least 1")
        if self.block_bytes < 1024:
            raise InvalidInput("a JSONL block must be at least 1 KiB")
        if self.actor_cpus <= 0:
            raise InvalidInput("actor CPUs must be positive")


@dataclass(frozen=True)
class RaySpec:
    inputs: tuple[str, ...]
    output: str
    job: JobOptions
    fields: FieldOptions = field(default_factory=FieldOptions)
    input_format: str = "auto"  # or one of RAY_FORMATS
    models: str | None = None
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    warc_id: str = "record"
    restart: bool = False
    options: RayOptions = field(default_factory=RayOptions)

    @property
    def reader_options(self) -> ReaderOptions:
        return ReaderOptions(self.fields, self.max_document_bytes, self.warc_id)


# -- the input: files and blocks ---------------------------------------------------------


def _dataset_folder(path: Path) -> str | None:
    """"jsonl" or "parquet" for a folder holding only such files (a dataset), else None."""
    kinds = set()
    for file in path.rglob("*"):
        if file.is_file() and not any(p.startswith(".") for p in file.relative_to(path).parts):
            name = file.name.lower()
            kinds.add("parquet" if name.endswith(".parquet") else
                      "jsonl" if name.endswith(_JSONL_SUFFIXES) else "other")
    return kinds.pop() if len(kinds) == 1 and kinds != {"other"} else None


def input_files(spec: RaySpec) -> list[tuple[str, Path]]:
    """(format, path) of every input, a dataset folder expanded to its files in name order."""
    files: list[tuple[str, Path]] = []
    for name in spec.inputs:
        if "://" in name:
            raise InvalidInput(f"{name}: the Ray engine reads paths every node sees (a shared "
                               "volume), not URLs")
        path = Path(name)
        if not path.exists():
            raise InvalidInput(f"{path} does not exist")
        fmt = spec.input_format
        if path.is_dir() and fmt in ("auto", "jsonl", "parquet"):
            kind = _dataset_folder(path)
            if kind is not None and fmt in ("auto", kind):
                files += [(kind, f) for f in sorted(path.rglob("*")) if f.is_file()
                          and not any(p.startswith(".") for p in f.relative_to(path).parts)]
                continue
        if fmt == "auto":
            fmt = detect_input_format(path)
        if fmt not in RAY_FORMATS:
            raise InvalidInput(f"input format must be one of {', '.join(RAY_FORMATS)}")
        files.append((fmt, path))
    if not files:
        raise InvalidInput("no input files")
    kinds = {"parquet" if fmt == "parquet" else "records" for fmt, _ in files}
    if len(kinds) != 1:
        raise InvalidInput("give Parquet inputs alone: the output is Parquet for Parquet input "
                           "and JSONL for every other input")
    return files


def _fingerprint(spec: RaySpec, files: list[tuple[str, Path]]) -> dict[str, Any]:
    def describe(fmt: str, path: Path) -> dict[str, Any]:
        info = path.stat()
        entry: dict[str, Any] = {"format": fmt, "path": str(path.resolve())}
        if path.is_file():
            entry.update(size=info.st_size, mtime_ns=info.st_mtime_ns)
        return entry

    return {"inputs": [describe(fmt, path) for fmt, path in files], "job": asdict(spec.job),
            "fields": asdict(spec.fields), "max_document_bytes": spec.max_document_bytes,
            "warc_id": spec.warc_id}


def _jsonl_blocks(path: Path, location: str, block_bytes: int) -> list[dict[str, Any]]:
    """Byte ranges of about ``block_bytes``, each ending after a ``\\n``, with line numbers
    and document counts (non-blank lines)."""
    if path.name.lower().endswith(".gz"):
        docs: int | None = None
        if path.stat().st_size <= _COUNT_GZIP_LIMIT:
            try:
                with gzip.open(path, "rb") as handle:
                    docs = sum(1 for line in handle if line.strip())
            except (OSError, EOFError):
                docs = None  # damaged: the block reports it
        return [{"kind": "jsonl.gz", "path": str(path), "location": location, "docs": docs}]
    blocks: list[dict[str, Any]] = []
    start = position = 0
    first_line = line_no = 1
    docs = 0
    with open(path, "rb") as handle:
        for line in handle:  # binary iteration splits at b"\n" only
            position += len(line)
            line_no += 1
            docs += bool(line.strip())
            if position - start >= block_bytes:
                blocks.append({"kind": "jsonl", "path": str(path), "location": location,
                               "start": start, "end": position, "line": first_line,
                               "docs": docs})
                start, first_line, docs = position, line_no, 0
    if position > start or not blocks:
        blocks.append({"kind": "jsonl", "path": str(path), "location": location,
                       "start": start, "end": position, "line": first_line, "docs": docs})
    return blocks


def _parquet_blocks(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as exc:  # ArrowInvalid, OSError
        raise InvalidInput(f"{path} is not a readable Parquet file: {exc}") from None
    blocks, row = [], 0
    for group in range(meta.num_row_groups):
        rows = meta.row_group(group).num_rows
        blocks.append({"kind": "parquet", "path": str(path), "group": group, "row": row,
                       "docs": rows})
        row += rows
    return blocks


def _expand(fmt: str, path: Path, spec: RaySpec, folder: Path,
            first: int) -> list[dict[str, Any]]:
    """Read a folder, tar/zip or WARC input once and write its documents as JSONL block
    files of ``block_docs`` items each (Rejected items included, so they reach the errors
    file like every other)."""
    reader = open_reader(path, fmt, spec.reader_options)
    blocks: list[dict[str, Any]] = []
    lines: list[str] = []

    def flush() -> None:
        target = folder / f"block-{first + len(blocks):06d}.jsonl"
        with open(target, "wb") as handle:
            handle.write("".join(f"{line}\n" for line in lines).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        blocks.append({"kind": "items", "path": str(target), "source": str(path),
                       "docs": len(lines)})
        lines.clear()

    for item in reader.scan():
        lines.append(item_to_json(item))  # type: ignore[arg-type]  # scan(0) never skips
        if len(lines) >= spec.options.block_docs:
            flush()
    if lines:
        flush()
    if reader.ignored:
        logger.info("%s: ignored %d entries that are not documents", path, reader.ignored)
    return blocks


def plan_blocks(spec: RaySpec, files: list[tuple[str, Path]], out: Path) -> list[dict[str, Any]]:
    """Every block of the job, numbered in input order."""
    folder = out / INPUT_DIR
    shutil.rmtree(folder, ignore_errors=True)
    several = len(files) > 1
    blocks: list[dict[str, Any]] = []
    for fmt, path in files:
        if fmt == "jsonl":
            blocks += _jsonl_blocks(path, f"{path}: " if several else "",
                                    spec.options.block_bytes)
        elif fmt == "parquet":
            blocks += _parquet_blocks(path)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            blocks += _expand(fmt, path, spec, folder, len(blocks))
    if folder.exists():
        fsync_dir(folder)
    return [{"id": n, **block} for n, block in enumerate(blocks)]


def read_block(block: dict[str, Any], options: ReaderOptions) -> tuple[list[Item], Any]:
    """The documents of a block (numbered from 0), and for Parquet the row group's table."""
    kind = block["kind"]
    if kind == "jsonl":
        with open(block["path"], "rb") as handle:
            handle.seek(block["start"])
            data = handle.read(block["end"] - block["start"])
        return jsonl_block_items(data, block["line"], block["location"], options,
                                 at_start=block["start"] == 0), None
    if kind == "jsonl.gz":
        chunks: list[bytes] = []
        damage = None
        try:
            with gzip.open(block["path"], "rb") as handle:
                while chunk := handle.read(1 << 20):
                    chunks.append(chunk)
        except (OSError, EOFError, zlib.error) as exc:
            damage = exc
        data = b"".join(chunks)
        if damage is not None:
            data = data[:data.rfind(b"\n") + 1]  # what was read whole, as --local does
        items = jsonl_block_items(data, 1, block["location"], options, at_start=True)
        if damage is not None:
            line = data.count(b"\n")
            items.append(Rejected(len(items), f"{block['location']}line {line + 1}", None,
                                  MALFORMED_INPUT, f"the compressed input is damaged after "
                                  f"line {line}: {damage}"))
        return items, None
    if kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(block["path"]).read_row_group(block["group"])
        rows = table.to_pylist()
        return [parquet_row_item(row, n, f"row {block['row'] + n}", options.fields)
                for n, row in enumerate(rows)], table
    with open(block["path"], encoding="utf-8") as handle:
        return [item_from_json(line, n) for n, line in enumerate(handle)], None


def part_name(block: dict[str, Any], parquet: bool) -> str:
    return f"part-{block['id']:06d}.{'parquet' if parquet else 'jsonl'}"


def _replace_file(path: Path, data: bytes | None) -> None:
    """Put ``data`` at ``path`` atomically (write, fsync, rename); None removes ``path``."""
    if data is None:
        path.unlink(missing_ok=True)
        return
    write_atomic(path, data)


# -- the actors ----------------------------------------------------------------------------


class BlockActor:
    """One model layer per actor; ``__call__`` processes and commits blocks (one per row)."""

    def __init__(self, config: ServerConfig, job: JobOptions, reader: ReaderOptions,
                 window: int, output: str, parquet: bool, attempts: int) -> None:
        from dragoman.server.batchjob.local import LocalEngine
        from dragoman.server.build import build_service

        self.job = job
        self.reader = reader
        self.output = Path(output)
        self.parquet = parquet
        self.attempts = attempts
        self.text_name, self.title_name = reader.fields.output_names(job)
        self.engine = LocalEngine(build_service(config), job, window)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = [self.run(json.loads(text)) for text in batch.column("block").to_pylist()]
        return pa.Table.from_pylist(rows, schema=pa.schema([
            ("block", pa.int64()), ("done", pa.int64()), ("failed", pa.int64()),
            ("chars", pa.int64()), ("error", pa.string())]))

    def run(self, block: dict[str, Any]) -> dict[str, Any]:
        """Process and commit one block; an error (after ``attempts`` tries) is returned."""
        error = ""
        for attempt in range(self.attempts):
            try:
                return {"block": block["id"], **self._commit(block), "error": None}
            except Exception as exc:  # reported as the block's failure
                logger.exception("block %d failed (attempt %d)", block["id"], attempt + 1)
                error = f"{type(exc).__name__}: {exc}"
        return {"block": block["id"], "done": 0, "failed": 0, "chars": 0, "error": error}

    def _commit(self, block: dict[str, Any]) -> dict[str, int]:
        items, table = read_block(block, self.reader)
        outcomes = process_documents(self.engine, items, self.job)
        good = [o for o in outcomes if o.ok and isinstance(o.item, Document)]
        bad = [o for o in outcomes if not (o.ok and isinstance(o.item, Document))]
        name = part_name(block, self.parquet)
        errors = "".join(f"{error_record(o)}\n" for o in bad).encode("utf-8") if bad else None
        (self.output / ERRORS_DIR).mkdir(parents=True, exist_ok=True)
        _replace_file(self.output / ERRORS_DIR / part_name(block, False), errors)
        target = self.output / name
        if not good:
            target.unlink(missing_ok=True)
        elif self.parquet:
            write_parquet_atomically(self._table(table, outcomes), target)
        else:
            lines = "".join(f"{record_line(o, self.reader.fields, self.text_name, self.title_name)}\n"
                            for o in good)
            _replace_file(target, lines.encode("utf-8"))
        return {"done": len(good), "failed": len(bad),
                "chars": sum(len(o.item.text) for o in good if isinstance(o.item, Document))}

    def _table(self, table: Any, outcomes: list[Outcome]) -> Any:
        """The row group's rows that succeeded, every column as it was, results appended."""
        import pyarrow as pa

        titles = self.title_name if self.job.translates_titles else ""
        schema = result_schema(table.schema, self.text_name, titles)
        keep = pa.array([o.ok for o in outcomes], pa.bool_())
        kept = table.filter(keep)
        for name in (self.text_name, titles):
            if name and name in kept.column_names:
                kept = kept.drop_columns([name])
        ok = [o for o in outcomes if o.ok]
        kept = kept.append_column(self.text_name, pa.array([o.text for o in ok], pa.string()))
        if titles:
            kept = kept.append_column(titles, pa.array([o.title for o in ok], pa.string()))
        return kept.select(schema.names).cast(schema)


# -- the driver ----------------------------------------------------------------------------


def _actor_config(spec: RaySpec) -> ServerConfig:
    """The model settings each actor uses: --models/env, threads sized to the actor's CPUs."""
    config = load_config({"models": spec.models})
    changes: dict[str, Any] = {}
    if not os.environ.get(env_name("intra_threads")):
        changes["intra_threads"] = max(1, int(spec.options.actor_cpus))
    if not os.environ.get(env_name("inter_threads")):
        changes["inter_threads"] = 1
    if spec.models is None and not os.environ.get(env_name("models")):
        changes["models"] = str(config.models_dir)
    return replace(config, **changes)


def _write_json(path: Path, data: Any) -> None:
    _replace_file(path, json.dumps(data, sort_keys=True).encode("utf-8"))
    fsync_dir(path.parent)


class Manifest:
    """``OUTPUT/_MANIFEST.jsonl``: one line per committed block, appended and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.blocks: dict[int, dict[str, Any]] = {}
        good = 0
        if path.exists():
            data = path.read_bytes()
            for line in data.split(b"\n"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    break  # a torn last line: the block is redone
                self.blocks[int(entry["block"])] = entry
                good += len(line) + 1
            if good < len(data):
                with open(path, "r+b") as handle:
                    handle.truncate(good)
        self._handle = open(path, "ab")  # closed by close()

    def add(self, entry: dict[str, Any]) -> None:
        self._handle.write(json.dumps(entry).encode("utf-8") + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.blocks[int(entry["block"])] = entry

    def close(self) -> None:
        self._handle.close()


def _prepare_output(spec: RaySpec, out: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """Make room for the job; returns the totals of an already finished identical job."""
    errors_file = Path(spec.output + ".errors.jsonl")
    if out.exists():
        marker = out / JOB_MARKER
        if marker.is_file() and not spec.restart:
            if json.loads(marker.read_text(encoding="utf-8")) != fingerprint:
                raise InvalidInput(f"{spec.output} holds the output of a different job; use "
                                   "--restart to replace it, or choose another output")
            if (out / SUCCESS_MARKER).is_file():
                return dict(json.loads((out / SUCCESS_MARKER).read_text(encoding="utf-8")))
            return None  # resume
        if not spec.restart:
            raise InvalidInput(f"{spec.output} exists and is not the output of this job; use "
                               "--restart to replace it, or choose another output")
        if out.is_dir() and not out.is_symlink():
            shutil.rmtree(out)
        else:
            out.unlink()
    errors_file.unlink(missing_ok=True)
    out.mkdir(parents=True)
    _write_json(out / JOB_MARKER, fingerprint)
    return None


def _drop_uncommitted(out: Path, committed: set[int]) -> int:
    """Delete part files of blocks the manifest does not list; returns how many."""
    dropped = 0
    for folder in (out, out / ERRORS_DIR):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            name = path.name
            stray_temp = name.startswith(".part-") and name.endswith(".tmp")
            if name.startswith("part-"):
                try:
                    block = int(name[5:11])
                except ValueError:
                    continue
                if block in committed:
                    continue
            elif not stray_temp:
                continue
            path.unlink(missing_ok=True)
            dropped += 1
    return dropped


def _failed_block_errors(block: dict[str, Any], reason: str, options: ReaderOptions) -> bytes:
    """Error records for every document of a block that kept failing."""
    try:
        items, _ = read_block(block, options)
    except Exception as exc:  # the block itself is unreadable
        items = []
        reason = f"{reason}; the block cannot be read either: {exc}"
    where = f"block {block['id']} ({block.get('source') or block['path']})"
    if not items and block["kind"] == "parquet":  # one record per row of the row group
        items = [Rejected(n, f"row {block['row'] + n}", None, BLOCK_FAILED, reason)
                 for n in range(int(block["docs"]))]
    if not items:
        items = [Rejected(0, where, None, BLOCK_FAILED, reason)]
    lines = []
    for item in items:
        record = {"id": item.id, "location": item.key, "code": BLOCK_FAILED,
                  "reason": f"{where} kept failing: {reason}"}
        lines.append(json.dumps(record) + "\n")
    return "".join(lines).encode("utf-8")


def _finish(spec: RaySpec, out: Path, plan: list[dict[str, Any]], manifest: Manifest) -> dict[str, Any]:
    """Join the error parts into OUTPUT.errors.jsonl and mark the job done."""
    errors_file = Path(spec.output + ".errors.jsonl")
    parts = [out / ERRORS_DIR / part_name(b, False) for b in plan]
    parts = [p for p in parts if p.exists()]
    if parts:
        temp = errors_file.with_name(f".{errors_file.name}.tmp")
        with open(temp, "wb") as target:
            for part in parts:
                target.write(part.read_bytes())
            target.flush()
            os.fsync(target.fileno())
        os.replace(temp, errors_file)
    else:
        errors_file.unlink(missing_ok=True)
    entries = manifest.blocks.values()
    totals = {key: sum(int(e.get(key, 0)) for e in entries)
              for key in ("done", "failed", "chars")}
    totals["blocks"] = len(plan)
    totals["failed_blocks"] = sum(1 for e in entries if e.get("block_failed"))
    _write_json(out / SUCCESS_MARKER, totals)
    shutil.rmtree(out / ERRORS_DIR, ignore_errors=True)
    shutil.rmtree(out / INPUT_DIR, ignore_errors=True)
    return totals


def connect(options: RayOptions) -> bool:
    """Join the cluster (or start a local instance); True when we must shut it down."""
    import ray

    if ray.is_initialized():
        return False
    if options.address:
        ray.init(address=options.address, log_to_driver=False)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
    else:
        ray.init(num_cpus=options.local_cpus, include_dashboard=False, log_to_driver=False)
    return True


def _check_cpus(options: RayOptions, strict: bool) -> None:
    """Actors that hold every CPU starve Ray Data's own tasks: the job would hang."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 0))
    reserved = options.actors * options.actor_cpus
    if reserved <= total - 0.5:
        return
    message = (f"{options.actors} actor(s) x {options.actor_cpus:g} CPUs leave "
               f"{max(total - reserved, 0):g} of the cluster's {total:g} CPUs for Ray Data's "
               "own tasks, which need at least 0.5; use fewer --actors or a smaller --actor-cpus")
    if strict:
        raise InvalidInput(message)
    logger.warning("%s (unless the cluster scales up)", message)


def _note_failed_blocks(progress: Any, count: int) -> None:
    note = getattr(progress, "failed_blocks", None)
    if callable(note):
        note(count)


def _run_blocks(spec: RaySpec, out: Path, todo: list[dict[str, Any]], manifest: Manifest,
                parquet: bool, progress: Any) -> tuple[int, int]:
    """Run ``todo`` on the actors, committing each block as it finishes; returns (blocks
    committed, blocks failed) of this run."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.max_errored_blocks = len(todo)  # a block that keeps failing never ends the job
    options = spec.options
    # One Ray Data block per job block, so each task commits exactly one.
    dataset = ray.data.from_items([{"block": json.dumps(b)} for b in todo],
                                  override_num_blocks=len(todo))
    processed = dataset.map_batches(
        BlockActor,
        fn_constructor_kwargs={
            "config": _actor_config(spec), "job": spec.job, "reader": spec.reader_options,
            "window": options.window, "output": str(out), "parquet": parquet,
            "attempts": options.attempts,
        },
        batch_size=1,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=options.actors),
        num_cpus=options.actor_cpus,
        max_restarts=-1,  # an actor on a lost node comes back elsewhere ...
        max_task_retries=options.attempts - 1,  # ... and its block is retried, boundedly
        scheduling_strategy="SPREAD",
    )
    by_id = {b["id"]: b for b in todo}
    committed = 0
    failures: dict[int, str] = {}
    for row in processed.iter_rows():
        block = by_id[int(row["block"])]
        if row["error"] is not None:
            failures[block["id"]] = row["error"]
            _note_failed_blocks(progress, len(failures))
            continue
        manifest.add({"block": block["id"], "done": row["done"], "failed": row["failed"],
                      "chars": row["chars"]})
        committed += 1
        progress.advance(int(row["done"]), int(row["failed"]), int(row["chars"]))
    # Blocks Ray gave up on (their actor died on every attempt) never came back.
    for block in todo:
        if block["id"] not in manifest.blocks and block["id"] not in failures:
            failures[block["id"]] = (f"its worker died on each of {options.attempts} attempts "
                                     "(see the Ray logs)")
    if failures and not committed and len(todo) > 1:
        # Nothing works (a model missing on the nodes, say): stop, leaving the blocks unlisted
        # so that a rerun tries them again, rather than failing every document.
        last = failures[max(failures)]
        raise ModelFailed(f"all {len(failures)} blocks of this run failed, the last with: "
                          f"{last}; fix the cause (models, Ray logs) and rerun to resume")
    for block_id, reason in sorted(failures.items()):
        _commit_failed(spec, out, by_id[block_id], reason, manifest)
        progress.advance(0, int(manifest.blocks[block_id]["failed"]), 0)
    _note_failed_blocks(progress, len(failures))
    failed = len(failures)
    return committed, failed


def _commit_failed(spec: RaySpec, out: Path, block: dict[str, Any], reason: str,
                   manifest: Manifest) -> None:
    logger.warning("block %d failed: %s; its documents go to the errors file", block["id"],
                   reason)
    data = _failed_block_errors(block, reason, spec.reader_options)
    (out / ERRORS_DIR).mkdir(parents=True, exist_ok=True)
    (out / part_name(block, spec_parquet(block))).unlink(missing_ok=True)
    _replace_file(out / ERRORS_DIR / part_name(block, False), data)
    manifest.add({"block": block["id"], "done": 0, "failed": data.count(b"\n"), "chars": 0,
                  "block_failed": True, "reason": reason})


def spec_parquet(block: dict[str, Any]) -> bool:
    return block["kind"] == "parquet"


def run_ray_job(spec: RaySpec, progress: ProgressReporter | None = None) -> RunReport:
    """Run (or resume) the job on Ray Data; see the module docstring."""
    started = time.monotonic()
    progress = progress or NoProgress()
    out = Path(spec.output)
    files = input_files(spec)
    parquet = files[0][0] == "parquet"
    fingerprint = _fingerprint(spec, files)
    finished = _prepare_output(spec, out, fingerprint)
    errors_file = spec.output + ".errors.jsonl"
    if finished is not None:
        logger.info("%s is complete; nothing to do", spec.output)
        return RunReport(0, 0, finished["done"] + finished["failed"], finished["done"],
                         finished["failed"], 0, 0, time.monotonic() - started, spec.output,
                         errors_file if finished["failed"] else None,
                         total_blocks=finished.get("blocks", 0),
                         total_failed_blocks=finished.get("failed_blocks", 0))
    if (out / PLAN_FILE).is_file():
        plan = json.loads((out / PLAN_FILE).read_text(encoding="utf-8"))
    else:
        plan = plan_blocks(spec, files, out)
        _write_json(out / PLAN_FILE, plan)
    manifest = Manifest(out / MANIFEST_FILE)
    try:
        earlier = dict(manifest.blocks)
        dropped = _drop_uncommitted(out, set(earlier))
        todo = [b for b in plan if b["id"] not in earlier]
        skipped_docs = sum(int(e["done"]) + int(e["failed"]) for e in earlier.values())
        logger.info("%d blocks, %d committed by earlier runs, %d to do%s", len(plan),
                    len(earlier), len(todo),
                    f" ({dropped} uncommitted part files dropped)" if dropped else "")
        committed = failed_blocks = 0
        if todo:
            known = [b["docs"] for b in plan]
            total = sum(known) if all(d is not None for d in known) else None
            progress.start(total if progress.wants_total else None, skipped_docs)
            owns_ray = False
            try:
                try:
                    import ray
                    import ray.data
                except ImportError:
                    raise InvalidInput("--engine ray needs Ray: pip install "
                                       "'dragoman[cluster]'") from None
                owns_ray = connect(spec.options)
                _check_cpus(spec.options, strict=owns_ray)
                committed, failed_blocks = _run_blocks(spec, out, todo, manifest, parquet,
                                                       progress)
            finally:
                progress.close()
                if owns_ray:
                    import ray

                    ray.shutdown()
        totals = _finish(spec, out, plan, manifest)
    finally:
        manifest.close()
    now = [e for b, e in manifest.blocks.items() if b not in earlier]
    return RunReport(
        done=sum(int(e["done"]) for e in now), failed=sum(int(e["failed"]) for e in now),
        skipped=skipped_docs, total_done=totals["done"], total_failed=totals["failed"],
        ignored=0, chars=sum(int(e["chars"]) for e in now),
        seconds=time.monotonic() - started, output=spec.output,
        errors=errors_file if totals["failed"] else None,
        blocks=committed + failed_blocks, failed_blocks=failed_blocks,
        total_blocks=totals["blocks"], total_failed_blocks=totals["failed_blocks"],
    )
