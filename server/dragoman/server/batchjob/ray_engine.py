"""The same batch job on Ray Data, for archives that outgrow one machine.

Ray Data reads the input in parallel (JSONL lines verbatim with ``read_text``, Parquet with
``read_parquet``), ``map_batches`` sends each batch to a fixed pool of actors, each of which
builds the model layer once (``LocalEngine``, exactly as ``--local`` does) and translates its
batch with all documents in flight together, and a datasink writes the results: one part
file per write task into the OUTPUT folder, with failed documents collected into
``OUTPUT.errors.jsonl``.

A Ray job is resumed as a whole: the output folder gets a ``_SUCCESS`` marker when the job
has finished; a rerun of a finished job does nothing, and a rerun of an interrupted one
clears its partial output and starts again (split very large archives into several jobs).
Every node needs Dragoman installed (``pip install 'dragoman[cluster]'``) and the model store
at the same path (``--models`` or ``DRAGOMAN_MODELS``, e.g. on a shared volume).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from dragoman.server.batchjob.job import (
    TOO_LARGE,
    Document,
    FieldOptions,
    Item,
    JobOptions,
    Rejected,
)
from dragoman.server.batchjob.readers import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    parse_jsonl_line,
)
from dragoman.server.batchjob.runner import Summary, process_documents
from dragoman.server.batchjob.writers import error_record, record_line
from dragoman.server.config import ServerConfig, env_name, load_config
from dragoman.server.errors import InvalidInput

logger = logging.getLogger(__name__)

SUCCESS_MARKER = "_SUCCESS"
JOB_MARKER = "_DRAGOMAN_JOB"
JSONL_EXTENSIONS = ["jsonl", "jsonl.gz", "ndjson", "ndjson.gz", "json.gz"]
# Columns the actors add: the output line (JSONL) and the error record of a failed document.
LINE_COLUMN = "__dragoman_line"
ERROR_COLUMN = "__dragoman_error"
CHARS_COLUMN = "__dragoman_chars"  # characters of a done document, for the summary


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: $RAY_ADDRESS, else start a local instance
    local_cpus: int | None = None  # CPUs of a local instance (None: all of them)
    actors: int = 1  # model actors; each loads the models once
    actor_cpus: float = 1.0  # CPUs reserved per actor
    batch_size: int = 64  # documents per actor call
    window: int = 32  # documents in flight inside one actor

    def __post_init__(self) -> None:
        if self.actors < 1 or self.batch_size < 1 or self.window < 1:
            raise InvalidInput("actors, batch size and in-flight count must be at least 1")
        if self.actor_cpus <= 0:
            raise InvalidInput("actor CPUs must be positive")


@dataclass(frozen=True)
class RaySpec:
    inputs: tuple[str, ...]
    output: str
    job: JobOptions
    fields: FieldOptions = field(default_factory=FieldOptions)
    input_format: str = "auto"  # jsonl or parquet
    models: str | None = None
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    restart: bool = False
    options: RayOptions = field(default_factory=RayOptions)


# -- the actors ----------------------------------------------------------------------------


class DocumentActor:
    """One model layer per actor; ``__call__`` processes a batch of rows (a pyarrow Table)."""

    def __init__(self, config: ServerConfig, job: JobOptions, fields: FieldOptions,
                 input_format: str, window: int, max_document_bytes: int) -> None:
        from dragoman.server.batchjob.local import LocalEngine
        from dragoman.server.build import build_service

        self.job = job
        self.fields = fields
        self.input_format = input_format
        self.max_document_bytes = max_document_bytes
        self.text_name, self.title_name = fields.output_names(job)
        self.engine = LocalEngine(build_service(config), job, window)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = batch.to_pylist()
        items = [self._item(i, row) for i, row in enumerate(rows)]
        outcomes = process_documents(self.engine, items, self.job)
        errors = pa.array([None if o.ok else error_record(o) for o in outcomes], pa.string())
        chars = pa.array([len(o.item.text) if o.ok and isinstance(o.item, Document) else 0
                          for o in outcomes], pa.int64())
        if self.input_format == "jsonl":
            lines = [record_line(o, self.fields, self.text_name, self.title_name) if o.ok
                     else None for o in outcomes]
            return pa.table({LINE_COLUMN: pa.array(lines, pa.string()),
                             ERROR_COLUMN: errors, CHARS_COLUMN: chars})
        texts = [o.text if o.ok else None for o in outcomes]
        table = batch.append_column(self.text_name, pa.array(texts, pa.string()))
        if self.title_name and self.job.translates_titles and \
                self.fields.title_field in batch.column_names:
            titles = [o.title if o.ok else None for o in outcomes]
            table = table.append_column(self.title_name, pa.array(titles, pa.string()))
        return table.append_column(ERROR_COLUMN, errors).append_column(CHARS_COLUMN, chars)

    def _item(self, index: int, row: dict[str, Any]) -> Item:
        fields = self.fields
        location = str(row.get("path") or "")
        if self.input_format == "jsonl":
            line = row["text"]
            if len(line.encode("utf-8")) > self.max_document_bytes:
                return Rejected(index, location, None, TOO_LARGE,
                                f"the line is longer than {self.max_document_bytes} bytes")
            return parse_jsonl_line(line, index, location, fields)
        raw_id = row.get(fields.id_field)
        doc_id = None if raw_id is None else str(raw_id)
        text = row.get(fields.text_field)
        if not isinstance(text, str):
            return Rejected(index, location, doc_id, "MALFORMED_RECORD",
                            f"column {fields.text_field!r} is missing or not a string")
        title = row.get(fields.title_field)
        title = title if isinstance(title, str) and title.strip() else None
        return Document(index, location, doc_id, text, fields.text_format, title)


# -- the datasink --------------------------------------------------------------------------


def _filesystem(uri: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    if "://" not in uri:
        uri = os.path.abspath(uri)
    return pafs.FileSystem.from_uri(uri)


def _make_datasink(output: str, errors_dir: str, input_format: str, run_id: str) -> Any:
    """A datasink that splits each block into result parts and error parts."""
    from ray.data import Datasink

    class SplitDatasink(Datasink):  # type: ignore[misc,type-arg]
        def __init__(self) -> None:
            self.totals = {"done": 0, "failed": 0, "chars": 0}

        def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, int]:
            import pyarrow as pa
            import pyarrow.parquet as pq
            from ray.data.block import BlockAccessor

            fs, out_path = _filesystem(output)
            _, err_path = _filesystem(errors_dir)
            counts = {"done": 0, "failed": 0, "chars": 0}
            name = f"part-{ctx.task_idx:05d}-{run_id}"
            good_tables: list[Any] = []
            error_lines: list[str] = []
            for block in blocks:
                table = BlockAccessor.for_block(block).to_arrow()
                errors = table.column(ERROR_COLUMN).to_pylist()
                error_lines.extend(e for e in errors if e is not None)
                ok = pa.array([e is None for e in errors], pa.bool_())
                good = table.filter(ok)
                counts["chars"] += sum(good.column(CHARS_COLUMN).to_pylist())
                good_tables.append(good.drop_columns([ERROR_COLUMN, CHARS_COLUMN]))
                counts["done"] += good.num_rows
                counts["failed"] += len(errors) - good.num_rows
            if good_tables and sum(t.num_rows for t in good_tables):
                merged = pa.concat_tables(good_tables)
                if input_format == "jsonl":
                    data = "".join(f"{line}\n" for line in merged.column(LINE_COLUMN).to_pylist())
                    with fs.open_output_stream(f"{out_path}/{name}.jsonl") as stream:
                        stream.write(data.encode("utf-8"))
                else:
                    pq.write_table(merged, f"{out_path}/{name}.parquet", filesystem=fs)
            if error_lines:
                fs.create_dir(err_path, recursive=True)
                with fs.open_output_stream(f"{err_path}/{name}.jsonl") as stream:
                    stream.write("".join(f"{line}\n" for line in error_lines).encode("utf-8"))
            return counts

        def on_write_complete(self, write_result: Any) -> None:
            for counts in write_result.write_returns:
                for key in self.totals:
                    self.totals[key] += counts[key]

    return SplitDatasink()


# -- the driver ----------------------------------------------------------------------------


def _input_format(spec: RaySpec) -> str:
    if spec.input_format != "auto":
        if spec.input_format not in ("jsonl", "parquet"):
            raise InvalidInput("the Ray engine reads JSONL(.gz) or Parquet; run other inputs "
                               "with --local or --engine server")
        return spec.input_format
    kinds = set()
    for path in spec.inputs:
        name = path.lower().rstrip("/")
        if name.endswith(".parquet"):
            kinds.add("parquet")
        elif name.endswith(tuple(f".{e}" for e in JSONL_EXTENSIONS)):
            kinds.add("jsonl")
        else:
            raise InvalidInput(f"cannot tell whether {path} is JSONL or Parquet; say it with "
                               "--input-format jsonl|parquet")
    if len(kinds) != 1:
        raise InvalidInput("give inputs of one format (all JSONL or all Parquet)")
    return kinds.pop()


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


def _prepare_output(spec: RaySpec, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """Make room for the job; returns the totals of an already finished identical job."""
    import pyarrow.fs as pafs

    fs, out_path = _filesystem(spec.output)
    errors_file = spec.output + ".errors.jsonl"
    _, errors_path = _filesystem(errors_file)
    info = fs.get_file_info(out_path)
    if info.type != pafs.FileType.NotFound:
        marker = fs.get_file_info(f"{out_path}/{JOB_MARKER}")
        ours = marker.type == pafs.FileType.File
        if ours and not spec.restart:
            with fs.open_input_stream(f"{out_path}/{JOB_MARKER}") as stream:
                recorded = json.loads(stream.read().decode("utf-8"))
            if recorded != fingerprint:
                raise InvalidInput(f"{spec.output} holds the output of a different job; use "
                                   "--restart to replace it, or choose another output")
            done = fs.get_file_info(f"{out_path}/{SUCCESS_MARKER}")
            if done.type == pafs.FileType.File:
                with fs.open_input_stream(f"{out_path}/{SUCCESS_MARKER}") as stream:
                    return json.loads(stream.read().decode("utf-8"))
            logger.info("clearing the partial output of an interrupted run in %s", spec.output)
        elif not spec.restart:
            raise InvalidInput(f"{spec.output} exists and is not the output of this job; use "
                               "--restart to replace it, or choose another output")
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(out_path)
        else:
            fs.delete_file(out_path)
    if fs.get_file_info(errors_path).type == pafs.FileType.File:
        fs.delete_file(errors_path)
    _, parts_path = _filesystem(spec.output + ".errors.parts")
    if fs.get_file_info(parts_path).type == pafs.FileType.Directory:
        fs.delete_dir(parts_path)
    fs.create_dir(out_path)
    with fs.open_output_stream(f"{out_path}/{JOB_MARKER}") as stream:
        stream.write(json.dumps(fingerprint, sort_keys=True).encode("utf-8"))
    return None


def _merge_errors(spec: RaySpec, errors_dir: str) -> int:
    """Concatenate the error parts into OUTPUT.errors.jsonl; returns the number of records."""
    import pyarrow.fs as pafs

    fs, parts_path = _filesystem(errors_dir)
    _, errors_path = _filesystem(spec.output + ".errors.jsonl")
    if fs.get_file_info(parts_path).type != pafs.FileType.Directory:
        return 0
    parts = sorted(
        (i.path for i in fs.get_file_info(pafs.FileSelector(parts_path))
         if i.type == pafs.FileType.File),
    )
    count = 0
    if parts:
        with fs.open_output_stream(errors_path) as out:
            for part in parts:
                with fs.open_input_stream(part) as stream:
                    data = stream.read()
                count += data.count(b"\n")
                out.write(data)
    fs.delete_dir(parts_path)
    return count


def connect(options: RayOptions) -> bool:
    """Join the cluster (or start a local instance); True when we must shut it down."""
    import ray

    if ray.is_initialized():
        return False
    if options.address:
        ray.init(address=options.address)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        ray.init(num_cpus=options.local_cpus, include_dashboard=False)
    return True


def _check_cpus(options: RayOptions, strict: bool) -> None:
    """Actors that hold every CPU starve the read and write tasks: the job would hang."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 0))
    reserved = options.actors * options.actor_cpus
    if reserved <= total - 1:
        return
    message = (f"{options.actors} actor(s) x {options.actor_cpus:g} CPUs leave "
               f"{max(total - reserved, 0):g} of the cluster's {total:g} CPUs for reading and "
               "writing, which need at least 1; use fewer --actors or a smaller --actor-cpus")
    if strict:
        raise InvalidInput(message)
    logger.warning("%s (unless the cluster scales up)", message)


def run_ray_job(spec: RaySpec) -> Summary:
    """Run the job on Ray Data; the summary counts what the datasink wrote."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise InvalidInput("--engine ray needs Ray: pip install 'dragoman[cluster]'") from None
    started = time.monotonic()
    input_format = _input_format(spec)
    fingerprint = {"inputs": list(spec.inputs), "job": asdict(spec.job),
                   "fields": asdict(spec.fields), "max_document_bytes": spec.max_document_bytes}
    finished = _prepare_output(spec, fingerprint)
    errors_file = spec.output + ".errors.jsonl"
    if finished is not None:
        logger.info("%s is complete; nothing to do", spec.output)
        total = finished["done"] + finished["failed"]
        return Summary(0, 0, total, finished["done"], finished["failed"], 0, 0,
                       time.monotonic() - started, spec.output,
                       errors_file if finished["failed"] else None)
    config = _actor_config(spec)
    owns_ray = connect(spec.options)
    try:
        _check_cpus(spec.options, strict=owns_ray)
        run_id = uuid.uuid4().hex[:12]
        errors_dir = f"{spec.output}.errors.parts"
        if input_format == "jsonl":
            dataset = ray.data.read_text(list(spec.inputs), include_paths=True,
                                         file_extensions=JSONL_EXTENSIONS)
        else:
            dataset = ray.data.read_parquet(list(spec.inputs))
        options = spec.options
        processed = dataset.map_batches(
            DocumentActor,
            fn_constructor_kwargs={
                "config": config, "job": spec.job, "fields": spec.fields,
                "input_format": input_format, "window": options.window,
                "max_document_bytes": spec.max_document_bytes,
            },
            batch_size=options.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=options.actors),
            num_cpus=options.actor_cpus,
        )
        sink = _make_datasink(spec.output, errors_dir, input_format, run_id)
        processed.write_datasink(sink)
        failed = _merge_errors(spec, errors_dir)
        totals = dict(sink.totals)
        if failed != totals["failed"]:
            logger.warning("wrote %d error records for %d failed documents", failed,
                           totals["failed"])
        fs, out_path = _filesystem(spec.output)
        with fs.open_output_stream(f"{out_path}/{SUCCESS_MARKER}") as stream:
            stream.write(json.dumps(totals).encode("utf-8"))
    finally:
        if owns_ray:
            ray.shutdown()
    return Summary(
        done=totals["done"], failed=totals["failed"], skipped=0,
        total_done=totals["done"], total_failed=totals["failed"], ignored=0,
        chars=totals["chars"], seconds=time.monotonic() - started, output=spec.output,
        errors=errors_file if totals["failed"] else None,
    )
