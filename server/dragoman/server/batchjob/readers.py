"""Inputs of a batch job, each read as a deterministic sequence of documents.

Every reader yields the same items in the same order on every run, which is what lets a
resumed job skip exactly the documents its last run committed: ``scan(start)`` yields cheap
``Skipped`` markers (no parsing, no HTML extraction) for the first ``start`` items. Input
problems never raise: a malformed line, a binary file or a damaged archive becomes a
``Rejected`` item, and the job goes on. Entries that are not documents at all (directories,
links, hidden files, WARC requests and non-HTML responses) are counted in ``ignored``.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol

from dragoman.server.batchjob.htmltext import decode_html, extract_text
from dragoman.server.batchjob.job import (
    BINARY_FILE,
    MALFORMED_INPUT,
    MALFORMED_RECORD,
    NOT_UTF8,
    TOO_LARGE,
    UNSAFE_PATH,
    Document,
    FieldOptions,
    Item,
    Rejected,
    Skipped,
)
from dragoman.server.errors import InvalidInput

logger = logging.getLogger(__name__)

DEFAULT_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
INPUT_FORMATS = ("jsonl", "folder", "tar", "zip", "warc", "parquet")
FORMAT_BY_SUFFIX = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown"}
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# How a damaged compressed stream shows itself.
_DAMAGED = (EOFError, gzip.BadGzipFile, zlib.error, tarfile.ReadError, zipfile.BadZipFile)
_COUNT_GZIP_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class ReaderOptions:
    fields: FieldOptions = field(default_factory=FieldOptions)
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    # WARC documents are identified by "record" (WARC-Record-ID) or "uri" (WARC-Target-URI).
    warc_id: str = "record"

    def __post_init__(self) -> None:
        if self.max_document_bytes < 1:
            raise InvalidInput("the document size limit must be at least 1 byte")
        if self.warc_id not in ("record", "uri"):
            raise InvalidInput("warc id must be 'record' or 'uri'")


class Reader(Protocol):
    path: Path
    kind: str  # "jsonl", "warc" (record outputs only) or "tree" (files with paths)
    ignored: int

    def scan(self, start: int = 0) -> Iterator[Item | Skipped]: ...

    def count(self) -> int | None: ...

    def fingerprint(self) -> dict[str, Any]: ...


def detect_input_format(path: Path) -> str:
    """The input format implied by a path: a folder, or the file's suffixes."""
    if path.is_dir():
        return "folder"
    name = path.name.lower()
    for suffixes, fmt in (
        ((".warc", ".warc.gz", ".arc", ".arc.gz"), "warc"),
        ((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json.gz"), "jsonl"),
        ((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"), "tar"),
        ((".zip",), "zip"),
        ((".parquet",), "parquet"),
    ):
        if name.endswith(suffixes):
            return fmt
    raise InvalidInput(
        f"cannot tell the format of {path} from its name; say it with --input-format "
        f"({', '.join(INPUT_FORMATS)})"
    )


def open_reader(path: Path, fmt: str, options: ReaderOptions) -> Reader:
    """A reader for ``path`` in format ``fmt`` (see ``detect_input_format``)."""
    if not path.exists():
        raise InvalidInput(f"{path} does not exist")
    if fmt == "folder" and not path.is_dir():
        raise InvalidInput(f"{path} is not a folder")
    if fmt != "folder" and not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    readers: dict[str, Callable[[Path, ReaderOptions], Reader]] = {
        "jsonl": JsonlReader,
        "folder": FolderReader,
        "tar": TarReader,
        "zip": ZipReader,
        "warc": WarcReader,
    }
    if fmt == "parquet":
        return ParquetReader(path, options)
    if fmt not in readers:
        raise InvalidInput(f"input format must be one of {', '.join(INPUT_FORMATS)}")
    return readers[fmt](path, options)


def _file_fingerprint(path: Path, kind: str) -> dict[str, Any]:
    info = path.stat()
    return {"format": kind, "path": str(path.resolve()), "size": info.st_size,
            "mtime_ns": info.st_mtime_ns}


def _identifier(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# -- JSONL ---------------------------------------------------------------------------------


def json_problem(exc: json.JSONDecodeError, key: str) -> str:
    """``Expecting value at line 3 column 1``: the record's line (``key``, "line N") where
    there is one, and json's message without its own trailing "at"."""
    where = f"{key} column {exc.colno}" if key.startswith("line ") else f"column {exc.colno}"
    return f"{exc.msg.removesuffix(' at')} at {where}"


def parse_jsonl_line(line: str, ordinal: int, key: str, fields: FieldOptions) -> Item:
    """One JSONL line as a document; the raw line is kept so other fields pass unchanged."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return Rejected(ordinal, key, None, MALFORMED_RECORD,
                        f"not valid JSON ({json_problem(exc, key)})")
    if not isinstance(record, dict):
        return Rejected(ordinal, key, None, MALFORMED_RECORD,
                        f"a JSON {type(record).__name__}, not an object")
    doc_id = _identifier(record.get(fields.id_field))
    text = record.get(fields.text_field)
    if not isinstance(text, str):
        what = "missing" if text is None else f"a {type(text).__name__}, not a string"
        return Rejected(ordinal, key, doc_id, MALFORMED_RECORD,
                        f"field {fields.text_field!r} is {what}")
    title = record.get(fields.title_field)
    title = title if isinstance(title, str) and title.strip() else None
    return Document(ordinal, key, doc_id, text, fields.text_format, title,
                    record=line.rstrip("\r\n"))


def _open_binary(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


class _SourceReader:
    """What every reader holds: its input, the options and a count of entries it ignored."""

    def __init__(self, path: Path, options: ReaderOptions) -> None:
        self.path = path
        self.options = options
        self.ignored = 0


class JsonlReader(_SourceReader):
    """One JSON object per line, optionally gzip-compressed; blank lines are not documents."""

    kind = "jsonl"


    def fingerprint(self) -> dict[str, Any]:
        return _file_fingerprint(self.path, self.kind)

    def count(self) -> int | None:
        compressed = self.path.name.lower().endswith(".gz")
        if compressed and self.path.stat().st_size > _COUNT_GZIP_LIMIT:
            return None
        total = 0
        try:
            with _open_binary(self.path) as f:
                for line in f:
                    if line.strip():
                        total += 1
        except _DAMAGED:
            return None
        return total

    def scan(self, start: int = 0) -> Iterator[Item | Skipped]:
        limit = self.options.max_document_bytes
        ordinal = 0
        line_no = 0
        with _open_binary(self.path) as f:
            try:
                while True:
                    raw = f.readline(limit + 1)
                    if not raw:
                        return
                    line_no += 1
                    too_long = len(raw) > limit and not raw.endswith(b"\n")
                    if too_long:
                        while (rest := f.readline(1 << 20)) and not rest.endswith(b"\n"):
                            pass
                    elif not raw.strip():
                        continue
                    key = f"line {line_no}"
                    if ordinal < start:
                        yield Skipped(ordinal, key)
                    elif too_long:
                        yield Rejected(ordinal, key, None, TOO_LARGE,
                                       f"the line is longer than {limit} bytes")
                    else:
                        yield self._parse(raw, ordinal, key, first=line_no == 1)
                    ordinal += 1
            except _DAMAGED as exc:
                key = f"line {line_no + 1}"
                if ordinal < start:
                    yield Skipped(ordinal, key)
                else:
                    yield Rejected(ordinal, key, None, MALFORMED_INPUT,
                                   f"the compressed input is damaged after line {line_no}: {exc}")

    def _parse(self, raw: bytes, ordinal: int, key: str, first: bool) -> Item:
        try:
            line = raw.decode("utf-8-sig" if first else "utf-8")
        except UnicodeDecodeError as exc:
            return Rejected(ordinal, key, None, NOT_UTF8, f"not UTF-8 (byte {exc.start})")
        return parse_jsonl_line(line, ordinal, key, self.options.fields)


# -- files: folders and archives -----------------------------------------------------------


def text_format_of(name: str) -> str:
    return FORMAT_BY_SUFFIX.get(PurePosixPath(name).suffix.lower(), "plain")


def safe_relative_path(name: str) -> str | None:
    """A member name as a clean relative POSIX path, or None if it would escape the output."""
    name = name.replace("\\", "/")
    path = PurePosixPath(name)
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or ".." in parts or not parts or ":" in parts[0]:
        return None
    return "/".join(parts)


def _hidden(relpath: str) -> bool:
    """Dotfiles and macOS resource forks are not documents."""
    return any(part.startswith(".") or part == "__MACOSX" for part in relpath.split("/"))


def file_document(ordinal: int, relpath: str, data: bytes) -> Item:
    """A file's bytes as a document; text must be UTF-8 (a BOM is dropped)."""
    if b"\x00" in data:
        return Rejected(ordinal, relpath, relpath, BINARY_FILE, "a binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Rejected(ordinal, relpath, relpath, NOT_UTF8, f"not UTF-8 text (byte {exc.start})")
    return Document(ordinal, relpath, relpath, text, text_format_of(relpath))


def _too_large(ordinal: int, relpath: str, size: int, limit: int) -> Rejected:
    return Rejected(ordinal, relpath, relpath, TOO_LARGE,
                    f"{size} bytes; the limit is {limit} (--max-document-bytes)")


class FolderReader(_SourceReader):
    """Every regular file under a folder, in sorted path order."""

    kind = "tree"


    def fingerprint(self) -> dict[str, Any]:
        return {"format": "folder", "path": str(self.path.resolve())}

    def _entries(self) -> Iterator[tuple[str, Path, int]]:
        self.ignored = 0
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames.sort()
            here = Path(dirpath)
            for name in sorted(filenames):
                full = here / name
                relpath = full.relative_to(self.path).as_posix()
                info = full.lstat()
                if _hidden(relpath) or not stat.S_ISREG(info.st_mode):
                    self.ignored += 1
                    continue
                yield relpath, full, info.st_size

    def count(self) -> int:
        return sum(1 for _ in self._entries())

    def scan(self, start: int = 0) -> Iterator[Item | Skipped]:
        limit = self.options.max_document_bytes
        for ordinal, (relpath, full, size) in enumerate(self._entries()):
            if ordinal < start:
                yield Skipped(ordinal, relpath)
            elif size > limit:
                yield _too_large(ordinal, relpath, size, limit)
            else:
                yield file_document(ordinal, relpath, full.read_bytes())


class TarReader(_SourceReader):
    """Regular files of a tar archive (any compression tarfile knows), in archive order."""

    kind = "tree"


    def fingerprint(self) -> dict[str, Any]:
        return _file_fingerprint(self.path, "tar")

    def count(self) -> int | None:
        if self.path.name.lower().endswith(".tar"):
            return sum(1 for item in self.scan(start=1 << 62) if isinstance(item, Skipped))
        return None

    def scan(self, start: int = 0) -> Iterator[Item | Skipped]:
        limit = self.options.max_document_bytes
        self.ignored = 0
        ordinal = 0
        # Streaming mode reads a compressed tar once, front to back, without seeking.
        try:
            with tarfile.open(self.path, mode="r|*") as archive:
                for member in archive:
                    relpath = safe_relative_path(member.name)
                    if not member.isfile() or (relpath is not None and _hidden(relpath)):
                        self.ignored += 1
                        continue
                    key = relpath or member.name
                    if ordinal < start:
                        yield Skipped(ordinal, key)
                    elif relpath is None:
                        yield Rejected(ordinal, key, member.name, UNSAFE_PATH,
                                       "the member path leaves the archive (absolute or '..')")
                    elif member.size > limit:
                        yield _too_large(ordinal, relpath, member.size, limit)
                    else:
                        handle = archive.extractfile(member)
                        data = handle.read() if handle is not None else b""
                        yield file_document(ordinal, relpath, data)
                    ordinal += 1
        except _DAMAGED as exc:
            key = f"after {ordinal} members"
            if ordinal >= start:
                yield Rejected(ordinal, key, None, MALFORMED_INPUT, f"the archive is damaged: {exc}")
            else:
                yield Skipped(ordinal, key)


class ZipReader(_SourceReader):
    """Regular files of a zip archive, in central-directory order."""

    kind = "tree"

    def __init__(self, path: Path, options: ReaderOptions) -> None:
        super().__init__(path, options)
        try:
            with zipfile.ZipFile(path):
                pass
        except zipfile.BadZipFile as exc:
            raise InvalidInput(f"{path} is not a readable zip archive: {exc}") from None

    def fingerprint(self) -> dict[str, Any]:
        return _file_fingerprint(self.path, "zip")

    def _members(self, archive: zipfile.ZipFile) -> Iterator[zipfile.ZipInfo]:
        self.ignored = 0
        for info in archive.infolist():
            is_link = stat.S_ISLNK(info.external_attr >> 16)
            relpath = safe_relative_path(info.filename)
            if info.is_dir() or is_link or (relpath is not None and _hidden(relpath)):
                self.ignored += 1
                continue
            yield info

    def count(self) -> int:
        with zipfile.ZipFile(self.path) as archive:
            return sum(1 for _ in self._members(archive))

    def scan(self, start: int = 0) -> Iterator[Item | Skipped]:
        limit = self.options.max_document_bytes
        with zipfile.ZipFile(self.path) as archive:
            for ordinal, info in enumerate(self._members(archive)):
                relpath = safe_relative_path(info.filename)
                key = relpath or info.filename
                if ordinal < start:
                    yield Skipped(ordinal, key)
                elif relpath is None:
                    yield Rejected(ordinal, key, info.filename, UNSAFE_PATH,
                                   "the member path leaves the archive (absolute or '..')")
                elif info.file_size > limit:
                    yield _too_large(ordinal, relpath, info.file_size, limit)
                elif info.flag_bits & 0x1:
                    yield Rejected(ordinal, relpath, relpath, MALFORMED_INPUT,
                                   "the member is encrypted")
                else:
                    try:
                        data = archive.read(info)
                    except (*_DAMAGED, NotImplementedError) as exc:
                        yield Rejected(ordinal, relpath, relpath, MALFORMED_INPUT,
                                       f"cannot unpack the member: {exc}")
                        continue
                    yield file_document(ordinal, relpath, data)


# -- WARC ----------------------------------------------------------------------------------


class WarcReader(_SourceReader):
    """HTML responses (2xx) of a WARC file, as page text; other records are ignored."""

    kind = "warc"

    def __init__(self, path: Path, options: ReaderOptions) -> None:
        try:
            import warcio  # noqa: F401  (optional extra)
        except ImportError:
            raise InvalidInput(
                "reading WARC files needs warcio: pip install 'dragoman[warc]'") from None
        super().__init__(path, options)

    def fingerprint(self) -> dict[str, Any]:
        return _file_fingerprint(self.path, self.kind)

    def count(self) -> None:
        return None

    def scan(self, start: int = 0) -> Iterator[Item | Skipped]:
        from warcio.archiveiterator import ArchiveIterator
        from warcio.exceptions import ArchiveLoadFailed

        self.ignored = 0
        ordinal = 0
        with open(self.path, "rb") as stream:
            try:
                for record in ArchiveIterator(stream, arc2warc=True):
                    content_type = _html_response_type(record)
                    if content_type is None:
                        self.ignored += 1
                        continue
                    headers = record.rec_headers
                    record_id = headers.get_header("WARC-Record-ID") or ""
                    uri = headers.get_header("WARC-Target-URI") or ""
                    key = record_id or uri or f"record {ordinal}"
                    if ordinal < start:
                        yield Skipped(ordinal, key)
                    else:
                        yield self._page(record, ordinal, key, record_id, uri, content_type)
                    ordinal += 1
            except (ArchiveLoadFailed, *_DAMAGED) as exc:
                key = f"after {ordinal} pages"
                if ordinal >= start:
                    yield Rejected(ordinal, key, None, MALFORMED_INPUT,
                                   f"the WARC file is damaged: {exc}")
                else:
                    yield Skipped(ordinal, key)

    def _page(
        self, record: Any, ordinal: int, key: str, record_id: str, uri: str, content_type: str
    ) -> Item:
        fields = self.options.fields
        doc_id = (uri or record_id) if self.options.warc_id == "uri" else (record_id or uri)
        limit = self.options.max_document_bytes
        body = record.content_stream().read(limit + 1)
        if len(body) > limit:
            return Rejected(ordinal, key, doc_id, TOO_LARGE,
                            f"the page is larger than {limit} bytes (--max-document-bytes)")
        page = extract_text(decode_html(body, _charset(content_type)))
        out: dict[str, Any] = {fields.id_field: doc_id, "url": uri,
                               "date": record.rec_headers.get_header("WARC-Date") or ""}
        if page.title:
            out[fields.title_field] = page.title
        out[fields.text_field] = page.text
        return Document(ordinal, key, doc_id, page.text, "plain", page.title or None, record=out)


def _html_response_type(record: Any) -> str | None:
    """The Content-Type of a successful HTML response record, else None."""
    if record.rec_type != "response" or record.http_headers is None:
        return None
    status = record.http_headers.get_statuscode() or ""
    if not status.startswith("2"):
        return None
    content_type = record.http_headers.get_header("Content-Type") or ""
    if content_type.split(";")[0].strip().lower() not in _HTML_TYPES:
        return None
    return content_type


def _charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


# -- Parquet -------------------------------------------------------------------------------


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInput("Parquet input needs pyarrow: pip install 'dragoman[parquet]'") from None
    return pq


def parquet_row_item(row: dict[str, Any], ordinal: int, key: str, fields: FieldOptions) -> Item:
    """One Parquet row as a document; the row (every column) is the record carried through."""
    doc_id = _identifier(row.get(fields.id_field))
    text = row.get(fields.text_field)
    if not isinstance(text, str):
        what = "missing" if text is None else f"a {type(text).__name__}, not a string"
        return Rejected(ordinal, key, doc_id, MALFORMED_RECORD,
                        f"column {fields.text_field!r} is {what}")
    title = row.get(fields.title_field)
    title = title if isinstance(title, str) and title.strip() else None
    return Document(ordinal, key, doc_id, text, fields.text_format, title, record=row)


class ParquetReader(_SourceReader):
    """Rows of a Parquet file, one row group at a time; earlier row groups are skipped unread."""

    kind = "parquet"

    def __init__(self, path: Path, options: ReaderOptions) -> None:
        pq = _pyarrow_parquet()
        super().__init__(path, options)
        try:
            self.schema = pq.read_schema(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise InvalidInput(f"{path} is not a readable Parquet file: {exc}") from None

    def fingerprint(self) -> dict[str, Any]:
        return _file_fingerprint(self.path, self.kind)

    def count(self) -> int:
        return int(_pyarrow_parquet().ParquetFile(self.path).metadata.num_rows)

    def scan(self, start: int = 0) -> Iterator[Item | Skipped]:
        pq = _pyarrow_parquet()
        fields = self.options.fields
        ordinal = 0
        source = pq.ParquetFile(self.path)
        for group in range(source.num_row_groups):
            rows = source.metadata.row_group(group).num_rows
            if ordinal + rows <= start:
                for _ in range(rows):
                    yield Skipped(ordinal, f"row {ordinal}")
                    ordinal += 1
                continue
            try:
                records = source.read_row_group(group).to_pylist()
            except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                # A damaged row group fails its rows; the other row groups are read.
                for _ in range(rows):
                    key = f"row {ordinal}"
                    yield (Skipped(ordinal, key) if ordinal < start else
                           Rejected(ordinal, key, None, MALFORMED_INPUT,
                                    f"row group {group} is damaged: {exc}"))
                    ordinal += 1
                continue
            for row in records:
                key = f"row {ordinal}"
                yield (Skipped(ordinal, key) if ordinal < start
                       else parquet_row_item(row, ordinal, key, fields))
                ordinal += 1


# -- blocks: pieces of an input read on their own (the Ray engine's unit of work) ----------


def jsonl_block_items(data: bytes, first_line: int, location: str, options: ReaderOptions,
                      at_start: bool) -> list[Item]:
    """The documents of a run of JSONL lines: ``data`` split at ``\\n`` only (a raw U+2028
    or U+0085 inside a JSON string belongs to its line), numbered from 0 within the block."""
    items: list[Item] = []
    limit = options.max_document_bytes
    for offset, raw in enumerate(data.split(b"\n")):
        if not raw.strip():
            continue
        line_no = first_line + offset
        key = f"{location}line {line_no}"
        ordinal = len(items)
        if len(raw) > limit:
            items.append(Rejected(ordinal, key, None, TOO_LARGE,
                                  f"the line is longer than {limit} bytes"))
            continue
        try:
            line = raw.decode("utf-8-sig" if at_start and offset == 0 else "utf-8")
        except UnicodeDecodeError as exc:
            items.append(Rejected(ordinal, key, None, NOT_UTF8, f"not UTF-8 (byte {exc.start})"))
            continue
        items.append(parse_jsonl_line(line, ordinal, key, options.fields))
    return items


def item_to_json(item: Item) -> str:
    """An item as one JSON line (lone surrogates escaped), for inputs expanded into blocks."""
    if isinstance(item, Document):
        return json.dumps({"d": [item.key, item.id, item.text, item.format, item.title,
                                 item.record]})
    return json.dumps({"r": [item.key, item.id, item.code, item.reason]})


def item_from_json(line: str, ordinal: int) -> Item:
    data = json.loads(line)
    if "d" in data:
        key, doc_id, text, fmt, title, record = data["d"]
        return Document(ordinal, key, doc_id, text, fmt, title, record)
    key, doc_id, code, reason = data["r"]
    return Rejected(ordinal, key, doc_id, code, reason)
