"""`dragoman batch --server`: the same job through TranslateStream against a real server
(ServerThread on port 0), including per-document stream errors and a server that is down."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_batch import ENGLISH, article, read_jsonl, run_cli, translated


def write_input(path: Path) -> None:
    records = [{"id": i, "title": ENGLISH[i], "text": article(i)} for i in range(30)]
    records.insert(7, {"id": "french", "text": "Le pr\u00e9sident a annonc\u00e9 une r\u00e9forme des "
                       "retraites et le gouvernement a pr\u00e9sent\u00e9 un nouveau plan."})
    records.insert(12, {"id": "blank", "text": " "})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_server_engine_matches_local_engine(
    tmp_path: Path, server, copy_store: Path, monkeypatch: pytest.MonkeyPatch,
    swapcase: Callable[[str], str], capsys: pytest.CaptureFixture[str],
) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in.jsonl"
    write_input(source)
    remote = tmp_path / "remote.jsonl"
    code = run_cli("translate", "--to", "de", "--server", server.address, "--in-flight", "8",
                   str(source), "-o", str(remote))
    assert code == 1, capsys.readouterr().err
    assert "30 done, 2 failed" in capsys.readouterr().err
    records = read_jsonl(remote)
    assert [r["id"] for r in records] == list(range(30))
    for i, record in enumerate(records):
        assert record["text_de"] == translated(article(i), swapcase)
        assert record["title_de"] == translated(ENGLISH[i], swapcase)
    errors = read_jsonl(tmp_path / "remote.jsonl.errors.jsonl")
    assert [(e["id"], e["location"], e["code"]) for e in errors] == [
        ("french", "line 8", "NOT_FOUND"), ("blank", "line 13", "EMPTY_TEXT")]

    monkeypatch.setenv("DRAGOMAN_MODELS", str(copy_store))
    local = tmp_path / "local.jsonl"
    assert run_cli("translate", "--to", "de", "--local", str(source), "-o", str(local)) == 1
    assert local.read_bytes() == remote.read_bytes()
    assert (tmp_path / "local.jsonl.errors.jsonl").read_bytes() == \
        (tmp_path / "remote.jsonl.errors.jsonl").read_bytes()


def test_server_summaries(tmp_path: Path, server, swapcase: Callable[[str], str]) -> None:  # type: ignore[no-untyped-def]
    from dragoman.server.summarise.extractive import summarise_extractive

    source = tmp_path / "in.jsonl"
    texts = [article(i, paragraphs=3) for i in range(5)]
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out.jsonl"
    assert run_cli("summarise", "--server", server.address, "--language", "en", "--to", "de",
                   "--words", "25", str(source), "-o", str(out)) == 0
    for record, text in zip(read_jsonl(out), texts):
        summary = summarise_extractive(text, "en", None, 25).text
        assert record["summary_de"] == translated(summary, swapcase)


def test_server_down_stops_the_job_resumably(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = tmp_path / "in.jsonl"
    write_input(source)
    out = tmp_path / "out.jsonl"
    assert run_cli("translate", "--to", "de", "--server", f"127.0.0.1:{port}",
                   str(source), "-o", str(out)) == 1
    err = capsys.readouterr().err
    assert f"server 127.0.0.1:{port} unavailable" in err
    assert "rerun the same command to resume" in err
    # The job asks the server for its models before reading any input, so nothing was begun.
    state = tmp_path / "out.jsonl.state.json"
    assert not state.exists() or json.loads(state.read_text())["committed"] == 0
