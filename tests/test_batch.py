"""`dragoman batch` end to end with the in-process engine over the swapcase copy model.

Every document's expected translation is computed independently (the sentence oracle of
conftest), so each test checks every document of its input, and that the fields and bytes
that are not translated come through untouched.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from dragoman.client.cli import main
from dragoman.server.batchjob.command import BatchSpec, build_job
from dragoman.server.batchjob.htmltext import extract_text
from dragoman.server.batchjob.job import (
    Failure,
    FieldOptions,
    JobOptions,
    Reply,
    Request,
)
from dragoman.server.batchjob.progress import LogProgress
from dragoman.server.batchjob.readers import JsonlReader, ReaderOptions
from dragoman.server.batchjob.runner import RunOptions
from dragoman.server.batchjob.writers import AppendLog, extend_json_line
from dragoman.server.text.segment import TextFormat, split_document
from tests.support.sentences import NEWS_LINES

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = [line for line in NEWS_LINES[:60] if line.isascii()]


def article(i: int, paragraphs: int = 2) -> str:
    """A deterministic English article of corpus sentences."""
    n = len(ENGLISH)
    return "\n\n".join(
        " ".join(ENGLISH[(i * 7 + p * 3 + k) % n] for k in range(2)) for p in range(paragraphs)
    )


def translated(text: str, swapcase: Callable[[str], str], fmt: str = "plain") -> str:
    """What the swapcase model must make of ``text``: each sentence mapped, the rest kept."""
    doc = split_document(text, "en", TextFormat(fmt))
    return doc.rebuild([swapcase(s) for s in doc.sentences])


def run_cli(*args: str) -> int:
    return main(["batch", *args, "--progress", "none"])


@pytest.fixture()
def local_env(monkeypatch: pytest.MonkeyPatch, copy_store: Path) -> Path:
    monkeypatch.setenv("DRAGOMAN_MODELS", str(copy_store))
    monkeypatch.setenv("DRAGOMAN_INTRA_THREADS", "1")
    return copy_store


def read_jsonl(path: Path) -> list[dict[str, object]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        return [json.loads(line) for line in handle]


# -- JSONL ---------------------------------------------------------------------------------


def write_articles(path: Path, count: int) -> list[str]:
    """JSONL articles with extra fields in odd formats; returns the raw lines."""
    lines = []
    for i in range(count):
        extra = '"score": 1.50, "tags": ["a", {"k": null}], "note": "caf\\u00e9 ü"'
        title = f', "title": {json.dumps(ENGLISH[i % len(ENGLISH)])}' if i % 3 else ""
        lines.append(f'{{"id": "doc-{i}", {extra}{title}, "text": {json.dumps(article(i))}}}')
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:  # type: ignore[operator]
        handle.write("\n".join(lines) + "\n")
    return lines


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_jsonl_every_record_translated_and_other_fields_untouched(
    tmp_path: Path, local_env: Path, swapcase, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / f"in{suffix}"
    raw = write_articles(source, 25)
    out = tmp_path / f"out{suffix}"
    code = run_cli("translate", "--to", "de", "--from", "en", "--local", str(source), "-o", str(out))
    assert code == 0, capsys.readouterr().err
    assert "25 done, 0 failed, 0 skipped" in capsys.readouterr().err
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(out, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        lines = handle.read().splitlines()
    assert len(lines) == 25
    for i, (line, original) in enumerate(zip(lines, raw)):
        # The input record's bytes come first, unchanged; the results are appended.
        assert line.startswith(original[:-1] + ", "), line
        record = json.loads(line)
        source_record = json.loads(original)
        assert record["id"] == f"doc-{i}"
        assert record["text_de"] == translated(source_record["text"], swapcase)
        assert record["text_de"] != source_record["text"]
        if "title" in source_record:
            assert record["title_de"] == translated(source_record["title"], swapcase)
        else:
            assert "title_de" not in record
        assert {k: v for k, v in record.items() if not k.endswith("_de")} == source_record
    assert not (tmp_path / f"out{suffix}.errors.jsonl").exists()
    assert json.loads((tmp_path / f"out{suffix}.state.json").read_text())["complete"] is True


def test_jsonl_wrapped_text_is_translated_by_paragraph(
    tmp_path: Path, local_env: Path, swapcase
) -> None:  # type: ignore[no-untyped-def]
    body = "The bridge will reopen\nnext week.\n\nCracks were found\nin May.\n"
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "w", "text": body}) + "\n")
    out = tmp_path / "out.jsonl"
    assert run_cli("translate", "--to", "de", "--from", "en", "--local", "--format", "wrapped",
                   str(source), "-o", str(out)) == 0
    [record] = read_jsonl(out)
    assert record["text_de"] == translated(body, swapcase, "wrapped")
    assert record["text_de"] == (f"{swapcase('The bridge will reopen next week.')}\n\n"
                                 f"{swapcase('Cracks were found in May.')}\n")


def test_jsonl_custom_fields_and_markdown_text(
    tmp_path: Path, local_env: Path, swapcase
) -> None:  # type: ignore[no-untyped-def]
    body = f"# {ENGLISH[0]}\n\n{ENGLISH[1]} *{ENGLISH[2]}*\n\n```\nKeep This Code\n```\n"
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"key": 7, "headline": ENGLISH[3], "body": body}) + "\n")
    out = tmp_path / "out.jsonl"
    code = run_cli("translate", "--to", "de", "--from", "en", "--local", "--id-field", "key",
                   "--text-field", "body", "--title-field", "headline", "--format", "markdown",
                   "--output-field", "body_german", "--title-output-field", "headline_german",
                   str(source), "-o", str(out))
    assert code == 0
    [record] = read_jsonl(out)
    assert record["body_german"] == translated(body, swapcase, "markdown")
    assert "```\nKeep This Code\n```" in str(record["body_german"])
    assert record["headline_german"] == translated(ENGLISH[3], swapcase)
    assert record["key"] == 7 and record["body"] == body


def test_summarise_jsonl_adds_summary_field(
    tmp_path: Path, local_env: Path, swapcase
) -> None:  # type: ignore[no-untyped-def]
    from dragoman.server.summarise.extractive import summarise_extractive

    texts = [article(i, paragraphs=3) for i in range(6)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "sum.jsonl"
    assert run_cli("summarise", "--local", "--language", "en", "--method", "extractive",
                   "--sentences", "2", str(source), "-o", str(out)) == 0
    records = read_jsonl(out)
    assert [r["id"] for r in records] == list(range(6))
    for record, text in zip(records, texts):
        assert record["summary"] == summarise_extractive(text, "en", 2, None).text
    # Cross-lingual: summarise, then translate the summary.
    out_de = tmp_path / "sum_de.jsonl"
    assert run_cli("summarise", "--local", "--language", "en", "--to", "de", "--sentences", "2",
                   str(source), "-o", str(out_de)) == 0
    for record, text in zip(read_jsonl(out_de), texts):
        summary = summarise_extractive(text, "en", 2, None).text
        assert record["summary_de"] == translated(summary, swapcase)


# -- folders and archives ------------------------------------------------------------------


def tree_files() -> dict[str, str]:
    markdown = f"# {ENGLISH[4]}\n\n{ENGLISH[5]} {ENGLISH[6]}\n\n```\nKeep This Code\n```\n"
    html = (f"<html><head><title>{ENGLISH[7]}</title><style>p {{ Color: Red }}</style></head>"
            f"<body><h1>{ENGLISH[8]}</h1>\n<p>{ENGLISH[9]} <b>{ENGLISH[10]}</b></p>"
            "<script>var X = 'Keep';</script></body></html>")
    return {
        "a.txt": article(1),
        "news/b.md": markdown,
        "news/deep/c.html": html,
        "z/last.txt": article(2, paragraphs=1),
    }


def expected_tree(swapcase: Callable[[str], str]) -> dict[str, str]:
    formats = {".md": "markdown", ".html": "html"}
    return {
        name: translated(text, swapcase, formats.get(Path(name).suffix, "plain"))
        for name, text in tree_files().items()
    }


def test_folder_mirrored_with_formats_kept(
    tmp_path: Path, local_env: Path, swapcase
) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "articles"
    for name, text in tree_files().items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text, encoding="utf-8")
    (source / ".hidden").write_text("not a document")
    out = tmp_path / "translated"
    assert run_cli("translate", "--to", "de", "--from", "en", "--local", str(source),
                   "-o", str(out)) == 0
    produced = {p.relative_to(out).as_posix(): p.read_text(encoding="utf-8")
                for p in out.rglob("*") if p.is_file()}
    assert produced == expected_tree(swapcase)
    assert "<script>var X = 'Keep';</script>" in produced["news/deep/c.html"]
    assert not (tmp_path / "translated.partial").exists()


def _make_archive(path: Path, files: dict[str, str]) -> None:
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as archive:
            for name, text in files.items():
                archive.writestr(name, text)
        return
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as archive:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _archive_contents(path: Path) -> list[tuple[str, str]]:
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            return [(n, archive.read(n).decode("utf-8")) for n in archive.namelist()]
    with tarfile.open(path) as archive:
        return [(m.name, archive.extractfile(m).read().decode("utf-8"))  # type: ignore[union-attr]
                for m in archive.getmembers()]


@pytest.mark.parametrize("name", ["in.tar.gz", "in.zip", "in.tar"])
def test_archive_mirrored_in_member_order(
    tmp_path: Path, local_env: Path, swapcase, name: str
) -> None:  # type: ignore[no-untyped-def]
    files = dict(reversed(list(tree_files().items())))  # not sorted: order must be kept
    source = tmp_path / name
    _make_archive(source, files)
    out = tmp_path / name.replace("in", "out")
    assert run_cli("translate", "--to", "de", "--from", "en", "--local", str(source),
                   "-o", str(out)) == 0
    expected = expected_tree(swapcase)
    assert _archive_contents(out) == [(n, expected[n]) for n in files]


# -- WARC ----------------------------------------------------------------------------------


def _write_warc(path: Path) -> list[dict[str, str]]:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    pages = [
        ("http://example.com/one", ENGLISH[11], [ENGLISH[12], f"{ENGLISH[13]} {ENGLISH[14]}"]),
        ("http://example.com/two", ENGLISH[15], [ENGLISH[16]]),
    ]
    expected = []
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=path.name.endswith(".gz"))

        def response(uri: str, status: str, ctype: str, body: bytes) -> str:
            headers = StatusAndHeaders(status, [("Content-Type", ctype)], protocol="HTTP/1.1")
            record = writer.create_warc_record(uri, "response", payload=io.BytesIO(body),
                                               http_headers=headers)
            writer.write_record(record)
            return str(record.rec_headers.get_header("WARC-Record-ID"))

        request = writer.create_warc_record(
            "http://example.com/one", "request", payload=io.BytesIO(b""),
            http_headers=StatusAndHeaders("GET /one HTTP/1.1", [], is_http_request=True))
        writer.write_record(request)
        for uri, title, paragraphs in pages:
            html = (f"<html><head><title>{title}</title><script>var A = 1;</script></head><body>"
                    f"<nav>Home | News</nav><article>"
                    + "".join(f"<p>{p}</p>" for p in paragraphs)
                    + "</article><footer>Imprint</footer></body></html>")
            record_id = response(uri, "200 OK", "text/html; charset=utf-8", html.encode("utf-8"))
            expected.append({"id": record_id, "url": uri, "title": title,
                             "text": "\n\n".join(paragraphs)})
            response(uri + ".png", "200 OK", "image/png", b"\x89PNG\r\n\x1a\n\x00")
        response("http://example.com/missing", "404 Not Found", "text/html", b"<p>Gone</p>")
    return expected


@pytest.mark.parametrize("name", ["crawl.warc.gz", "crawl.warc"])
def test_warc_html_pages_become_records(
    tmp_path: Path, local_env: Path, swapcase, name: str
) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / name
    pages = _write_warc(source)
    out = tmp_path / "pages.jsonl"
    assert run_cli("translate", "--to", "de", "--from", "en", "--local", str(source),
                   "-o", str(out)) == 0
    records = read_jsonl(out)
    assert len(records) == len(pages)
    for record, page in zip(records, pages):
        assert {k: record[k] for k in ("id", "url", "title", "text")} == page
        assert record["text_de"] == translated(page["text"], swapcase)
        assert record["title_de"] == translated(page["title"], swapcase)
        assert str(record["date"]).startswith("20")


def test_html_extraction_keeps_article_text_only() -> None:
    page = extract_text(
        "<html><head><title> The  Title </title></head><body><nav>Menu</nav>"
        "<article><h1>Head line</h1><p>First <b>bold</b>\n para.</p><script>x()</script>"
        "<p>Second&nbsp;one.</p></article><aside>Ads</aside></body></html>"
    )
    assert page.title == "The Title"
    assert page.text == "Head line\n\nFirst bold para.\n\nSecond\xa0one."


# -- bad input -----------------------------------------------------------------------------


def test_bad_input_becomes_error_records_and_exit_1(
    tmp_path: Path, local_env: Path, monkeypatch: pytest.MonkeyPatch, swapcase,
    capsys: pytest.CaptureFixture[str],
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DRAGOMAN_MAX_CHARS", "2000")
    good = [json.dumps({"id": f"ok{i}", "text": article(i)}) for i in range(3)]
    lines = [
        good[0].encode(),
        b'{"id": "broken", "text": ',
        b'["not", "an", "object"]',
        b'{"id": "notext", "body": "x"}',
        b'{"id": "empty", "text": "  \\n "}',
        json.dumps({"id": "huge", "text": ENGLISH[0] * 60}).encode(),
        good[1].encode(),
        json.dumps({"id": "french", "text": "Le pr\u00e9sident a annonc\u00e9 une r\u00e9forme "
                    "des retraites et le gouvernement a pr\u00e9sent\u00e9 un nouveau plan."}).encode(),
        b'{"id": "latin1", "text": "caf\xe9"}',
        b"",
        json.dumps({"id": "long", "text": "x" * 5000}).encode(),
        good[2].encode(),
    ]
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    code = run_cli("translate", "--to", "de", "--local", "--max-document-bytes", "4000",
                   str(source), "-o", str(out))
    err = capsys.readouterr().err
    assert code == 1
    assert "3 done, 8 failed, 0 skipped" in err
    assert [r["id"] for r in read_jsonl(out)] == ["ok0", "ok1", "ok2"]
    errors = read_jsonl(tmp_path / "out.jsonl.errors.jsonl")
    assert [(e["id"], e["location"], e["code"]) for e in errors] == [
        (None, "line 2", "MALFORMED_RECORD"),
        (None, "line 3", "MALFORMED_RECORD"),
        ("notext", "line 4", "MALFORMED_RECORD"),
        ("empty", "line 5", "EMPTY_TEXT"),
        ("huge", "line 6", "INVALID_ARGUMENT"),
        ("french", "line 8", "NOT_FOUND"),
        (None, "line 9", "NOT_UTF8"),
        (None, "line 11", "TOO_LARGE"),
    ]
    assert "limit is 2000" in str(errors[4]["reason"])
    assert "fr->de" in str(errors[5]["reason"])
    assert all(e["reason"] for e in errors)


def test_binary_and_undecodable_files_in_a_folder(tmp_path: Path, local_env: Path, swapcase) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in"
    source.mkdir()
    (source / "good.txt").write_text(ENGLISH[0])
    (source / "image.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    (source / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    (source / "empty.md").write_text("")
    out = tmp_path / "out.zip"
    assert run_cli("translate", "--to", "de", "--from", "en", "--local", str(source),
                   "-o", str(out)) == 1
    assert _archive_contents(out) == [("good.txt", translated(ENGLISH[0], swapcase))]
    errors = read_jsonl(tmp_path / "out.zip.errors.jsonl")
    assert [(e["id"], e["code"]) for e in errors] == [
        ("empty.md", "EMPTY_TEXT"), ("image.jpg", "BINARY_FILE"), ("latin1.txt", "NOT_UTF8")]


# -- reruns --------------------------------------------------------------------------------


def test_rerun_of_a_finished_job_skips_everything(
    tmp_path: Path, local_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    write_articles(source, 4)
    out = tmp_path / "out.jsonl"
    args = ["translate", "--to", "de", "--from", "en", "--local", str(source), "-o", str(out)]
    assert run_cli(*args) == 0
    first = out.read_bytes()
    capsys.readouterr()
    assert run_cli(*args) == 0
    assert "0 done, 0 failed, 4 skipped" in capsys.readouterr().err
    assert out.read_bytes() == first
    # Another job must not append to this output...
    assert run_cli("translate", "--to", "en", "--local", str(source), "-o", str(out)) == 2
    assert "belongs to a different job (changed: job)" in capsys.readouterr().err
    # ... nor overwrite a file it did not write; --restart does.
    other = tmp_path / "other.jsonl"
    other.write_text("mine\n")
    assert run_cli(*args[:-1], str(other)) == 2
    assert "exists and has no progress file" in capsys.readouterr().err
    assert other.read_text() == "mine\n"
    assert run_cli(*args[:-1], str(other), "--restart") == 0
    assert other.read_bytes() == first


def test_changed_input_is_not_resumed(tmp_path: Path, local_env: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from dragoman.server.batchjob.state import StateFile, state_path

    source = tmp_path / "in.jsonl"
    write_articles(source, 4)
    out = tmp_path / "out.jsonl"
    args = ["translate", "--to", "de", "--from", "en", "--local", str(source), "-o", str(out)]
    assert run_cli(*args) == 0
    # Pretend the run stopped after two documents, and the input then changed under it.
    state = StateFile(state_path(out))
    checkpoint = state.load()
    assert checkpoint is not None
    state.save(checkpoint.advance(committed=2, last_key="line 1", finished=False, complete=False))
    capsys.readouterr()
    assert run_cli(*args) == 2
    assert "the input changed since the interrupted run" in capsys.readouterr().err


# -- retries -------------------------------------------------------------------------------


class BusyEngine:
    """Refuses every request its first ``refusals`` times as overloaded, then upper-cases it."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.seen: Counter[str] = Counter()

    def process(self, requests: Iterable[Request]) -> Iterator[Reply]:
        for request in requests:
            self.seen[request.tag] += 1
            if self.seen[request.tag] <= self.refusals:
                yield Reply(request.ordinal, request.part,
                            failure=Failure("RESOURCE_EXHAUSTED", "busy, retry later"))
            else:
                yield Reply(request.ordinal, request.part, request.text.upper())

    def close(self) -> None:
        pass


@pytest.mark.parametrize("refusals", [2, 3])
def test_overloaded_documents_are_retried_then_recorded(tmp_path: Path, refusals: int) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "title": f"t{i}", "text": f"text {i}"}) + "\n"
                              for i in range(10)))
    out = tmp_path / "out.jsonl"
    engine = BusyEngine(refusals)
    spec = BatchSpec(source, out, JobOptions("translate", "de"),
                     run=RunOptions(window=3, retries=2, retry_delay=0.001))
    summary = build_job(spec, engine).run()
    assert set(engine.seen.values()) == {3}  # one try and two retries for every request
    if refusals == 2:
        assert (summary.done, summary.failed, summary.exit_status) == (10, 0, 0)
        assert [(r["text_de"], r["title_de"]) for r in read_jsonl(out)] == [
            (f"TEXT {i}", f"T{i}") for i in range(10)]
    else:
        assert (summary.done, summary.failed, summary.exit_status) == (0, 10, 1)
        errors = read_jsonl(tmp_path / "out.jsonl.errors.jsonl")
        assert [(e["id"], e["code"]) for e in errors] == [
            (str(i), "RESOURCE_EXHAUSTED") for i in range(10)]


class ScriptedEngine:
    """Upper-cases texts; dies before request number ``die_at``; fails the texts in ``bad``."""

    def __init__(self, die_at: int | None = None, bad: tuple[str, ...] = ()) -> None:
        self.die_at = die_at
        self.bad = bad

    def process(self, requests: Iterable[Request]) -> Iterator[Reply]:
        for number, request in enumerate(requests):
            if number == self.die_at:
                raise RuntimeError("the engine died")
            if request.text in self.bad:
                yield Reply(request.ordinal, request.part,
                            failure=Failure("INVALID_ARGUMENT", "refused"))
            else:
                yield Reply(request.ordinal, request.part, request.text.upper())

    def close(self) -> None:
        pass


def test_resumed_folder_job_drops_files_written_after_the_last_commit(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for name in ("a", "b", "c"):
        (source / f"{name}.txt").write_text(f"text {name}")
    out = tmp_path / "out"
    spec = BatchSpec(source, out, JobOptions("translate", "de"), run=RunOptions(window=1))
    with pytest.raises(RuntimeError, match="the engine died"):
        build_job(spec, ScriptedEngine(die_at=1)).run()
    assert json.loads((tmp_path / "out.state.json").read_text())["committed"] == 1
    # As if b.txt had been written just before the kill, after the last commit.
    (tmp_path / "out.partial" / "files" / "b.txt").write_text("STALE")
    summary = build_job(spec, ScriptedEngine(bad=("text b",))).run()
    assert (summary.done, summary.failed, summary.skipped) == (1, 1, 1)
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.txt": "TEXT A",
                                                              "c.txt": "TEXT C"}
    assert [e["id"] for e in read_jsonl(tmp_path / "out.errors.jsonl")] == ["b.txt"]


# -- building blocks -----------------------------------------------------------------------


def test_extend_json_line_keeps_bytes_and_replaces_existing_keys() -> None:
    raw = '{"a": 1.50, "b": "\\u00e9"}  '
    assert extend_json_line(raw, {"t": "ü"}) == '{"a": 1.50, "b": "\\u00e9", "t": "ü"}'
    assert extend_json_line("{}", {"t": "x"}) == '{"t": "x"}'
    assert json.loads(extend_json_line('{"t": "old", "n": 1}', {"t": "new"})) == {"t": "new", "n": 1}


@pytest.mark.parametrize("compress", [False, True])
def test_append_log_drops_a_torn_tail(tmp_path: Path, compress: bool) -> None:
    path = tmp_path / ("log.gz" if compress else "log")
    log = AppendLog(path, compress=compress)
    log.open(0)
    log.append("one")
    log.append("two")
    size = log.commit()
    log.append("three")
    log.commit()
    log.close()
    with open(path, "ab") as handle:
        handle.write(b'{"torn": ')
    resumed = AppendLog(path, compress=compress)
    resumed.open(size)
    resumed.append("four")
    resumed.commit()
    resumed.close()
    data = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
    assert data == b"one\ntwo\nfour\n"
    with pytest.raises(Exception, match="was changed or damaged"):
        AppendLog(path, compress=compress).open(10_000)


def test_resumed_scan_yields_the_same_items(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a"}\n\n{"text": "b"}\nnot json\n{"text": "c"}\n')
    reader = JsonlReader(source, ReaderOptions())
    full = list(reader.scan())
    assert [i.key for i in full] == ["line 1", "line 3", "line 4", "line 5"]
    resumed = list(reader.scan(start=2))
    assert [type(i).__name__ for i in resumed] == ["Skipped", "Skipped", "Rejected", "Document"]
    assert [i.key for i in resumed] == [i.key for i in full]


def test_output_field_names() -> None:
    fields = FieldOptions()
    assert fields.output_names(JobOptions("translate", "de")) == ("text_de", "title_de")
    assert fields.output_names(JobOptions("summarise")) == ("summary", "")
    assert fields.output_names(JobOptions("summarise", "fr")) == ("summary_fr", "")
    with pytest.raises(Exception, match="both go to field"):
        FieldOptions(output_field="x", title_output_field="x").output_names(
            JobOptions("translate", "de"))
    assert Request.parse_tag(Request(12, "title", "t").tag) == (12, "title")


def test_log_progress_lines() -> None:
    stream = io.StringIO()
    now = [0.0]
    progress = LogProgress(stream, interval=10, wants_total=True, clock=lambda: now[0])
    progress.start(total=100, skipped=20)
    now[0] = 5.0
    progress.advance(10, 0, 5000)
    assert stream.getvalue() == ""
    now[0] = 10.0
    progress.advance(9, 1, 4000)
    assert stream.getvalue() == (
        "progress: 19 done, 1 failed, 20 skipped; 2.0 docs/s, 900 chars/s; 40/100, ETA 0:30\n")


def test_batchjob_does_not_import_grpc() -> None:
    code = ("import sys; import dragoman.server.batchjob.command, dragoman.server.batchjob.local, "
            "dragoman.server.batchjob.ray_engine, dragoman.server.batchjob.progress; "
            "print('grpc' in sys.modules)")
    env = {"PYTHONPATH": f"{ROOT / 'client'}:{ROOT / 'server'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.strip() == "False"
