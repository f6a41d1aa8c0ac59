"""Issue 10, defect 1: one bad document must never stop a batch job, on either engine.

A JSONL record may hold text that is not valid Unicode (a lone surrogate written as the JSON
escape ``\\ud800``). Protobuf cannot encode it, so before the fix the client raised while
building the request and the ``--server`` job stopped at that record on every rerun. Every
per-document failure must become an error record (INVALID_ARGUMENT with the reason) while the
job goes on, and the engines themselves must turn such a document into a failed reply.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from dragoman.client import Client
from dragoman.server.batchjob.job import JobOptions, Reply, Request
from dragoman.server.batchjob.local import open_local_engine
from dragoman.server.batchjob.remote import RemoteEngine
from tests.conftest import server_config
from tests.test_batch import (
    ENGLISH,
    article,
    local_env,
    read_jsonl,
    run_cli,
    translated,
)

__all__ = ["local_env"]  # a fixture, used by name

# Raw JSONL lines: the escapes stay escapes in the file, json.loads turns them into lone
# surrogates (exactly what the probe sent).
LINES = [
    json.dumps({"id": 0, "text": article(0)}),
    '{"id": "s", "text": "abc \\ud800 def."}',
    json.dumps({"id": 2, "text": article(2)}),
    '{"id": "t", "title": "Bad \\udfff title.", "text": "' + ENGLISH[3] + '"}',
    '{"id": "\\ud800x", "text": " "}',  # an empty text whose id is not valid Unicode
    json.dumps({"id": 5, "text": article(5)}),
]
GOOD = {0: 0, 2: 2, 5: 5}


def write_input(path: Path) -> None:
    path.write_text("".join(line + "\n" for line in LINES), encoding="utf-8")


def check_output(out: Path, swapcase: Callable[[str], str]) -> None:
    records = read_jsonl(out)
    assert [r["id"] for r in records] == [0, 2, 5]
    for record in records:
        assert record["text_de"] == translated(article(GOOD[record["id"]]), swapcase)
    errors = read_jsonl(out.parent / (out.name + ".errors.jsonl"))
    assert [(e["id"], e["location"], e["code"]) for e in errors] == [
        ("s", "line 2", "INVALID_ARGUMENT"),
        ("t", "line 4", "INVALID_ARGUMENT"),
        ("\ud800x", "line 5", "EMPTY_TEXT"),
    ]
    assert "not valid Unicode" in errors[0]["reason"] and "\\ud800" in errors[0]["reason"]
    assert "title is not valid Unicode" in errors[1]["reason"] and "\\udfff" in errors[1]["reason"]


def test_server_job_turns_invalid_unicode_into_error_records_and_goes_on(
    tmp_path: Path, server, swapcase: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in.jsonl"
    write_input(source)
    out = tmp_path / "out.jsonl"
    args = ("translate", "--to", "de", "--from", "en", "--server", server.address,
            "--in-flight", "2", str(source), "-o", str(out))
    assert run_cli(*args) == 1
    assert "3 done, 3 failed" in capsys.readouterr().err
    check_output(out, swapcase)
    # A rerun finds the job finished; it does not stop at the bad record again.
    assert run_cli(*args) == 1
    check_output(out, swapcase)


def test_local_job_gives_the_same_records(
    tmp_path: Path, local_env: Path, swapcase: Callable[[str], str],
) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source)
    out = tmp_path / "out.jsonl"
    assert run_cli("translate", "--to", "de", "--from", "en", "--local", str(source),
                   "-o", str(out)) == 1
    check_output(out, swapcase)


def _requests() -> list[Request]:
    return [
        Request(0, "text", ENGLISH[0]),
        Request(1, "text", "abc \ud800 def."),  # past any precheck: the engine must cope
        Request(2, "text", ENGLISH[2]),
    ]


def _check_replies(replies: list[Reply], swapcase: Callable[[str], str]) -> None:
    by = {r.ordinal: r for r in replies}
    assert sorted(by) == [0, 1, 2]
    assert by[0].text == swapcase(ENGLISH[0]) and by[2].text == swapcase(ENGLISH[2])
    failure = by[1].failure
    assert failure is not None and failure.code == "INVALID_ARGUMENT"
    assert "not valid Unicode" in failure.reason


def test_remote_engine_answers_an_unencodable_document_with_a_failure(
    server, swapcase: Callable[[str], str],
) -> None:  # type: ignore[no-untyped-def]
    job = JobOptions("translate", target_language="de", source_language="en")
    with Client(server.address, timeout=30) as client:
        engine = RemoteEngine(client, job, window=2)
        try:
            replies = list(engine.process(iter(_requests())))
        finally:
            engine.close()
    _check_replies(replies, swapcase)


def test_local_engine_answers_an_unencodable_document_with_invalid_argument(
    copy_store: Path, swapcase: Callable[[str], str],
) -> None:
    job = JobOptions("translate", target_language="de", source_language="en")
    engine = open_local_engine(server_config(copy_store), job, window=2)
    try:
        replies = list(engine.process(iter(_requests())))
    finally:
        engine.close()
    _check_replies(replies, swapcase)
