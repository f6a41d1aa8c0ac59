"""Outputs of a batch job, written so that a killed run can be resumed exactly.

Results are appended in input order and made durable in commits: buffered lines are written
and fsynced, then the caller records the new file sizes in the state file. A resumed run
truncates each file back to its recorded size, which drops both a torn last line and any
lines written after the last commit, and redoes those documents: every document ends up in
the output exactly once. Folder and archive outputs are built in a staging folder
(``OUTPUT.partial``) and moved into place only when the job has finished.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Protocol

from dragoman.server.atomicfile import commit, fsync_dir
from dragoman.server.batchjob.job import Document, FieldOptions, JobOptions, Outcome
from dragoman.server.errors import InvalidInput
from dragoman.server.text.unicode import unicode_problem

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("jsonl", "folder", "tar", "zip", "parquet")
_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json.gz")
_TAR_MODES = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.bz2": "w:bz2",
              ".tar.xz": "w:xz"}


def errors_path(output: Path) -> Path:
    return output.with_name(output.name + ".errors.jsonl")


def output_format(output: Path, input_kind: str) -> str:
    """jsonl, folder, tar, zip or parquet, from the output's suffix; a bare name mirrors the
    input."""
    name = output.name.lower()
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet") or input_kind == "parquet":
        return "parquet"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(tuple(_TAR_MODES)):
        return "tar"
    return "folder" if input_kind == "tree" else "jsonl"


class AppendLog:
    """An append-only file of lines whose committed length is known at every moment.

    Lines are buffered until ``commit``, so the file only ever holds committed lines plus,
    after a crash in the middle of a commit, a torn tail that ``open`` cuts off. With
    ``compress`` each commit appends one gzip member; concatenated members are a valid gzip
    file that every reader decompresses as one stream.
    """

    def __init__(self, path: Path, compress: bool = False) -> None:
        self.path = path
        self.compress = compress
        self._buffer: list[bytes] = []
        self._pending = 0
        self._file: Any = None
        self.size = 0

    def open(self, committed: int = 0) -> None:
        """Open for appending after ``committed`` bytes (0: start a new, empty file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # held open until close()
        handle.seek(0, os.SEEK_END)
        actual = handle.tell()
        if actual < committed:
            handle.close()
            raise InvalidInput(
                f"{self.path} has {actual} bytes but {committed} were committed: it was "
                "changed or damaged since the last run; start over with --restart"
            )
        if actual > committed:
            logger.info("dropping %d uncommitted bytes at the end of %s", actual - committed,
                        self.path)
            handle.truncate(committed)
            handle.flush()
            os.fsync(handle.fileno())
        self._file = handle
        self.size = committed

    @property
    def pending(self) -> int:
        """Bytes buffered since the last commit."""
        return self._pending

    def append(self, line: str) -> None:
        data = line.encode("utf-8") + b"\n"
        self._buffer.append(data)
        self._pending += len(data)

    def commit(self) -> int:
        """Write and fsync what is buffered; returns the committed size."""
        if self._buffer:
            data = b"".join(self._buffer)
            if self.compress:
                data = gzip.compress(data, compresslevel=6, mtime=0)
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
            self.size += len(data)
            self._buffer.clear()
            self._pending = 0
        return self.size

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def extend_json_line(raw: str, additions: dict[str, str]) -> str:
    """The JSON object ``raw`` with ``additions`` as extra members, every other byte kept.

    Appending to the text rather than re-serialising keeps the other fields exactly as they
    came (number formats, key order, escapes). A key that is already there is replaced
    instead, by re-serialising, since a JSON object must not hold it twice.
    """
    body = raw.rstrip()
    if any(json.dumps(k) in body for k in additions):
        record = json.loads(body)
        if any(k in record for k in additions):
            record.update(additions)
            return json.dumps(record, ensure_ascii=False)
    inner = body[:-1].rstrip()
    members = ", ".join(
        f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}"
        for k, v in additions.items()
    )
    separator = "" if inner.endswith("{") else ", "
    return f"{inner}{separator}{members}}}"


def record_line(outcome: Outcome, fields: FieldOptions, text_name: str, title_name: str) -> str:
    """The output record of a successful document: its input record plus the results."""
    doc = outcome.item
    if not isinstance(doc, Document):
        raise TypeError("only documents have output records")
    additions = {text_name: outcome.text or ""}
    if outcome.title is not None and title_name:
        additions[title_name] = outcome.title
    if isinstance(doc.record, str):
        return extend_json_line(doc.record, additions)
    if isinstance(doc.record, dict):  # WARC fields, or a Parquet row (dates etc. as strings)
        return json.dumps({**doc.record, **additions}, ensure_ascii=False, default=str)
    # A file from a folder or archive: its path is its id.
    base = {fields.id_field: doc.id, fields.text_field: doc.text}
    return json.dumps({**base, **additions}, ensure_ascii=False)


def error_record(outcome: Outcome) -> str:
    """The errors-file line of a failed document: id, location, code, reason."""
    if outcome.failure is None:
        raise ValueError("the outcome did not fail")
    item = outcome.item
    record = {
        "id": item.id,
        "location": item.key,
        "code": outcome.failure.code,
        "reason": outcome.failure.reason,
    }
    line = json.dumps(record, ensure_ascii=False)
    if unicode_problem(line):  # e.g. an id with a lone surrogate: escape it, same JSON value
        line = json.dumps(record)
    return line


class Sink(Protocol):
    path: Path

    def exists(self) -> bool: ...

    def discard(self) -> None: ...

    def open(self, position: dict[str, Any] | None) -> None: ...

    def add(self, outcome: Outcome) -> None: ...

    @property
    def pending(self) -> int: ...

    def commit(self) -> dict[str, Any]: ...

    def finalise(self) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """One record per document, in input order, with the result fields added."""

    def __init__(self, path: Path, fields: FieldOptions, job: JobOptions) -> None:
        self.path = path
        self.fields = fields
        self.text_name, self.title_name = fields.output_names(job)
        self._log = AppendLog(path, compress=path.name.lower().endswith(".gz"))

    def exists(self) -> bool:
        return self.path.exists()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def open(self, position: dict[str, Any] | None) -> None:
        self._log.open(int(position["bytes"]) if position else 0)

    def record_line(self, outcome: Outcome) -> str:
        return record_line(outcome, self.fields, self.text_name, self.title_name)

    def add(self, outcome: Outcome) -> None:
        self._log.append(self.record_line(outcome))

    @property
    def pending(self) -> int:
        return self._log.pending

    def commit(self) -> dict[str, Any]:
        return {"bytes": self._log.commit()}

    def finalise(self) -> None:
        self._log.close()

    def close(self) -> None:
        self._log.close()


class TreeSink:
    """The input's layout with each file replaced by its result, as a folder, tar or zip.

    Files go to ``OUTPUT.partial/files`` as they are committed and ``OUTPUT.partial/index``
    lists them in input order; ``finalise`` moves the folder into place or packs the archive
    (members in input order) and renames it over ``OUTPUT``.
    """

    def __init__(self, path: Path, fmt: str) -> None:
        if fmt not in ("folder", "tar", "zip"):
            raise ValueError(f"not a tree format: {fmt}")
        self.path = path
        self.fmt = fmt
        self.staging = path.with_name(path.name + ".partial")
        self.files = self.staging / "files"
        self._index = AppendLog(self.staging / "index.jsonl")
        self._unsynced: list[Path] = []

    def exists(self) -> bool:
        return self.path.exists() or self.path.is_symlink()

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path)
        else:
            self.path.unlink(missing_ok=True)

    def open(self, position: dict[str, Any] | None) -> None:
        if position is None:
            shutil.rmtree(self.staging, ignore_errors=True)
        self.files.mkdir(parents=True, exist_ok=True)
        self._index.open(int(position["index"]) if position else 0)
        if position is not None:
            self._drop_uncommitted()

    def _drop_uncommitted(self) -> None:
        """Delete files written after the last commit: their documents are redone, and one
        that fails this time must not also be left in the output."""
        committed = set(self._members())
        for path in list(self.files.rglob("*")):
            if path.is_file() and path.relative_to(self.files).as_posix() not in committed:
                logger.info("dropping uncommitted %s", path)
                path.unlink()

    def add(self, outcome: Outcome) -> None:
        relpath = outcome.item.key
        target = self.files / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((outcome.text or "").encode("utf-8"))
        self._unsynced.append(target)
        self._index.append(json.dumps(relpath, ensure_ascii=False))

    @property
    def pending(self) -> int:
        return self._index.pending

    def commit(self) -> dict[str, Any]:
        folders = set()
        for path in self._unsynced:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            folders.add(path.parent)
        for folder in folders:
            fsync_dir(folder)
        self._unsynced.clear()
        return {"index": self._index.commit()}

    def _members(self) -> list[str]:
        seen: dict[str, None] = {}
        with open(self._index.path, encoding="utf-8") as index:
            for line in index:
                seen.setdefault(json.loads(line), None)
        return list(seen)

    def finalise(self) -> None:
        """Move the folder into place or pack the archive; safe to repeat after a crash."""
        self._index.close()
        if self.fmt == "folder":
            if self.files.exists():
                if self.exists():
                    raise InvalidInput(f"{self.path} appeared while the job ran; it was not "
                                       f"replaced (the result is in {self.files})")
                os.replace(self.files, self.path)
        elif self.staging.exists():
            temp = self.path.with_name(f".{self.path.name}.tmp")
            if self.fmt == "zip":
                self._write_zip(temp)
            else:
                self._write_tar(temp)
            commit(temp, self.path)
        fsync_dir(self.path.parent)
        shutil.rmtree(self.staging, ignore_errors=True)

    def _write_zip(self, temp: Path) -> None:
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relpath in self._members():
                archive.write(self.files / relpath, arcname=relpath)

    def _write_tar(self, temp: Path) -> None:
        name = self.path.name.lower()
        mode = next(m for suffix, m in _TAR_MODES.items() if name.endswith(suffix))
        with tarfile.open(temp, mode) as archive:  # type: ignore[call-overload]
            for relpath in self._members():
                archive.add(self.files / relpath, arcname=relpath, recursive=False)

    def close(self) -> None:
        self._index.close()


def result_schema(schema: Any, text_name: str, title_name: str) -> Any:
    """The input's Arrow schema plus the (string) result columns; a result column that is
    already there is replaced."""
    import pyarrow as pa

    for name in (text_name, title_name):
        if name:
            if schema.get_field_index(name) >= 0:
                schema = schema.remove(schema.get_field_index(name))
            schema = schema.append(pa.field(name, pa.string()))
    return schema


def write_parquet_atomically(table: Any, path: Path) -> None:
    """Write a Parquet file under a temporary name, fsync it and rename it into place."""
    import pyarrow.parquet as pq

    temp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temp)
    commit(temp, path)


class ParquetSink:
    """Parquet in, Parquet out: every input column unchanged (same types), result columns
    added. Each commit writes one part file to ``OUTPUT.partial/``; ``finalise`` streams the
    parts into ``OUTPUT`` in order (one row group per part) and renames it into place."""

    def __init__(self, path: Path, fields: FieldOptions, job: JobOptions, schema: Any) -> None:
        self.path = path
        self.text_name, self.title_name = fields.output_names(job)
        self.translates_titles = job.translates_titles
        self.schema = result_schema(schema, self.text_name,
                                    self.title_name if job.translates_titles else "")
        self.staging = path.with_name(path.name + ".partial")
        self._rows: list[dict[str, Any]] = []
        self._pending = 0
        self.parts = 0

    def exists(self) -> bool:
        return self.path.exists()

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.path.unlink(missing_ok=True)

    def _part(self, number: int) -> Path:
        return self.staging / f"part-{number:06d}.parquet"

    def open(self, position: dict[str, Any] | None) -> None:
        if position is None:
            shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        self.parts = int(position["parts"]) if position else 0
        for path in self.staging.iterdir():  # parts written after the last commit
            if not any(path == self._part(n) for n in range(self.parts)):
                path.unlink()

    def add(self, outcome: Outcome) -> None:
        doc = outcome.item
        if not isinstance(doc, Document) or not isinstance(doc.record, dict):
            raise TypeError("a Parquet output takes rows of a Parquet input")
        row = dict(doc.record)
        row[self.text_name] = outcome.text or ""
        if self.title_name and self.translates_titles:
            row[self.title_name] = outcome.title
        self._rows.append(row)
        self._pending += len(outcome.text or "") + 64

    @property
    def pending(self) -> int:
        return self._pending

    def commit(self) -> dict[str, Any]:
        if self._rows:
            import pyarrow as pa

            table = pa.Table.from_pylist(self._rows, schema=self.schema)
            write_parquet_atomically(table, self._part(self.parts))
            self.parts += 1
            self._rows.clear()
            self._pending = 0
        return {"parts": self.parts}

    def finalise(self) -> None:
        """Join the parts into OUTPUT; safe to repeat after a crash."""
        import pyarrow.parquet as pq

        if self.staging.exists():
            temp = self.path.with_name(f".{self.path.name}.tmp")
            # Every part on disk is committed by now (the last commit preceded this).
            parts = sorted(self.staging.glob("part-*.parquet"))
            with pq.ParquetWriter(temp, self.schema) as writer:
                for part in parts:
                    writer.write_table(pq.read_table(part, schema=self.schema))
            commit(temp, self.path)
            shutil.rmtree(self.staging, ignore_errors=True)

    def close(self) -> None:
        pass


class ErrorLog:
    """``OUTPUT.errors.jsonl``: one record per failed document (id, location, code, reason)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._log = AppendLog(path)

    def open(self, committed: int) -> None:
        self._log.open(committed)

    def add(self, outcome: Outcome) -> None:
        self._log.append(error_record(outcome))

    @property
    def pending(self) -> int:
        return self._log.pending

    def commit(self) -> int:
        return self._log.commit()

    def close(self) -> None:
        self._log.close()


def open_sink(output: Path, fmt: str, input_kind: str, fields: FieldOptions,
              job: JobOptions, schema: Any = None) -> Sink:
    """The writer for ``output`` in format ``fmt`` (see ``output_format``); ``schema`` is the
    input's Arrow schema (Parquet input)."""
    if fmt == "jsonl":
        return JsonlSink(output, fields, job)
    if fmt == "parquet":
        if input_kind != "parquet" or schema is None:
            raise InvalidInput("a Parquet output needs Parquet input; records from other inputs "
                               "go to a .jsonl or .jsonl.gz output")
        return ParquetSink(output, fields, job, schema)
    if fmt in ("folder", "tar", "zip"):
        if input_kind != "tree":
            raise InvalidInput(
                f"a {fmt} output needs files as input (a folder, tar or zip); records from "
                "JSONL or WARC input go to a .jsonl or .jsonl.gz output"
            )
        return TreeSink(output, fmt)
    raise InvalidInput(f"output format must be one of {', '.join(OUTPUT_FORMATS)}")
