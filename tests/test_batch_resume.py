"""Kill -9 a real `dragoman batch` process mid-run, rerun the same command, and check that
every input document is in the output exactly once, in input order, correctly translated."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.sentences import NEWS_LINES
from tests.test_batch import translated

ROOT = Path(__file__).resolve().parent.parent
WORDS = sorted({w.strip('.,;:?!"') for line in NEWS_LINES[:60] if line.isascii()
                for w in line.split()} - {""})


def unique_articles(count: int, seed: int = 3) -> list[dict[str, object]]:
    """Articles of distinct sentences, so no sentence cache can make the run quick."""
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 10))).capitalize() + "."

    return [
        {"id": f"n{i}", "rank": i * 1.25, "title": sentence(),
         "text": "\n\n".join(" ".join(sentence() for _ in range(2)) for _ in range(2))}
        for i in range(count)
    ]


def batch_process(source: Path, out: Path, store: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "client"), str(ROOT / "server")]),
        "DRAGOMAN_MODELS": str(store),
        "DRAGOMAN_INTRA_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "dragoman.client.cli", "batch", "translate", "--to", "de",
         "--from", "en", "--local", "--in-flight", "4", "--commit-interval", "0.05",
         "--progress", "none", str(source), "-o", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def committed(state: Path) -> int:
    try:
        return int(json.loads(state.read_text())["committed"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def test_kill_9_then_rerun_gives_every_document_exactly_once(
    tmp_path: Path, copy_store: Path, swapcase: Callable[[str], str]
) -> None:
    articles = unique_articles(240)
    source = tmp_path / "articles.jsonl"
    source.write_text("".join(json.dumps(a) + "\n" for a in articles))
    out = tmp_path / "out.jsonl"
    state = tmp_path / "out.jsonl.state.json"

    first = batch_process(source, out, copy_store)
    deadline = time.monotonic() + 60
    while committed(state) < 25:
        assert first.poll() is None, f"the run ended before it could be killed: {first.stderr.read()}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "no progress was committed"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert first.returncode == -signal.SIGKILL
    done_before = committed(state)
    assert 25 <= done_before < len(articles)
    # What the killed run left: whole lines for at least the committed documents, plus a
    # torn line as if the kill had hit in the middle of a write.
    before = out.read_text().splitlines()
    assert len(before) >= done_before
    with open(out, "a") as handle:
        handle.write('{"id": "n99999", "text": "tor')

    second = batch_process(source, out, copy_store)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "skipped (done by an earlier run)" in err
    skipped = int(err.split(" failed, ")[1].split(" skipped")[0])
    assert skipped >= done_before

    lines = out.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [a["id"] for a in articles]
    for record, article, line in zip(records, articles, lines):
        assert line.startswith(json.dumps(article)[:-1] + ", ")
        assert record["text_de"] == translated(str(article["text"]), swapcase)
        assert record["title_de"] == translated(str(article["title"]), swapcase)
    assert not (tmp_path / "out.jsonl.errors.jsonl").exists()
    assert json.loads(state.read_text())["complete"] is True
