"""The real console script against a real `dragoman serve` subprocess: model install from an
Argos package built here, translate/summarise from files and stdin, a bad flag, and SIGTERM
draining an in-flight call."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT = (
    "The city council approved the new budget on Tuesday evening. Heavy rain is expected.\n\n"
    "The museum will reopen its doors after two years of renovation.\n"
)


def dragoman() -> list[str]:
    script = shutil.which("dragoman", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "dragoman.client.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGOMAN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "client"), str(ROOT / "server"), str(ROOT)])
    env.update(extra)
    return env


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*dragoman(), *args], input=input, capture_output=True, text=True,
                          env=env or _env(), timeout=timeout)


@pytest.fixture(scope="module")
def argos_store(tmp_path_factory: pytest.TempPathFactory, sp_model: Path) -> Path:
    """An Argos package built here, installed through `dragoman models install`."""
    from tests.support.argospackage import build_argos_package
    from tests.support.copymodel import build_copy_model, swapcase_mapping

    work = tmp_path_factory.mktemp("argos")
    model = build_copy_model(work / "ct2", sp_model, mapping=swapcase_mapping(sp_model),
                             quantization="int8", max_positions=256)
    package = build_argos_package(work / "translate-en_fr-1_0.argosmodel", sp_model, model, "en", "fr")
    store = work / "store"
    proc = run("models", "install", str(package), "--models", str(store))
    assert proc.returncode == 0, proc.stderr
    assert "installed argos-en-fr" in proc.stdout
    return store


class Server:
    """`dragoman serve` in a subprocess; its log is read on a thread so a test can wait for a
    line (``wait_for``) instead of sleeping."""

    def __init__(self, store: Path, *args: str, **env: str) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*dragoman(), "serve", "--address", "127.0.0.1:0", "--models", str(store), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(**env),
        )
        self.log: list[str] = []
        self._eof = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = int(self.wait_for(r"\(port (\d+)[,)]").group(1))
        self.wait_for(r"loaded \d+ model\(s\)")
        self.address = f"127.0.0.1:{self.port}"
        self.ready_after = self.wait_ready()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.log.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first log line matching ``pattern``, waiting for it to be written."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.log[seen:]:
                    if match := regex.search(line):
                        return match
                seen = len(self.log)
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise AssertionError(f"no log line matches {pattern!r}:\n{''.join(self.log)}")
                self._changed.wait(left)

    def metric(self, name: str) -> float:
        """The sum of a metric's samples on the server's /metrics (serve it with
        DRAGOMAN_METRICS_ADDRESS=127.0.0.1:0)."""
        import urllib.request

        url = self.wait_for(r"Prometheus metrics on (http://\S+/metrics)").group(1)
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((name + " ", name + "{")))

    def wait_ready(self) -> float:
        from dragoman.client import Client

        with Client(self.address, timeout=5) as client:
            client.wait_ready(30)
        return time.monotonic() - self.started

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self._reader.join(60)
        return "".join(self.log)


@pytest.fixture(scope="module")
def served(argos_store: Path) -> Iterator[Server]:
    server = Server(argos_store)
    yield server
    server.stop()


def test_models_list_shows_the_argos_model(argos_store: Path) -> None:
    proc = run("models", "list", "--models", str(argos_store))
    assert proc.returncode == 0
    assert re.search(r"argos-en-fr\s+translate\s+argos\s+en\s+fr", proc.stdout)
    env = _env(DRAGOMAN_MODELS=str(argos_store))
    assert "argos-en-fr" in run("models", "list", "--json", env=env).stdout


def test_translate_file_and_stdin(served: Server, tmp_path: Path, swapcase) -> None:  # type: ignore[no-untyped-def]
    from dragoman.server.text.segment import split_document

    doc = split_document(TEXT, "en")
    expected = doc.rebuild([swapcase(s) for s in doc.sentences])
    article = tmp_path / "article.txt"
    article.write_text(TEXT)
    proc = run("--server", served.address, "translate", "--to", "fr", str(article))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected
    out = tmp_path / "out.txt"
    proc = run("translate", "--to", "fr", "-", "-o", str(out), input=TEXT,
               env=_env(DRAGOMAN_SERVER=served.address))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == expected


def test_summarise_stdin(served: Server) -> None:
    proc = run("--server", served.address, "summarise", "--sentences", "1", input=TEXT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in {
        "The city council approved the new budget on Tuesday evening.",
        "Heavy rain is expected.",
        "The museum will reopen its doors after two years of renovation.",
    }


def test_missing_pair_and_bad_flag(served: Server) -> None:
    proc = run("--server", served.address, "translate", "--to", "ja", input=TEXT)
    assert proc.returncode == 2
    assert "no model translates en->ja" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("translate", "--frobnicate", input=TEXT)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = run("models", "install", "/nonexistent/model", "--models", "/tmp/x")
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_serve_bad_config_is_one_line(tmp_path: Path) -> None:
    proc = run("serve", "--models", str(tmp_path), env=_env(DRAGOMAN_MAX_CHARS="lots"))
    assert proc.returncode == 2
    assert "DRAGOMAN_MAX_CHARS" in proc.stderr and "Traceback" not in proc.stderr


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_sigterm_drains_in_flight_call(argos_store: Path, swapcase) -> None:  # type: ignore[no-untyped-def]
    """The batcher would wait a minute for company (set through the environment), so the call
    is still in flight when SIGTERM arrives (the test waits until the server holds it). The
    drain sends the queued batch at once: the call completes and the server exits cleanly."""
    server = Server(argos_store, DRAGOMAN_BATCH_WAIT_MS="60000",
                    DRAGOMAN_MAX_BATCH_TOKENS="100000", DRAGOMAN_METRICS_ADDRESS="127.0.0.1:0")
    sentence = "The bridge was closed to traffic after engineers found cracks."
    client = subprocess.Popen([*dragoman(), "--server", server.address, "translate", "--to", "fr"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env())
    assert client.stdin is not None
    client.stdin.write(sentence)
    client.stdin.close()
    wait_until(lambda: server.metric("dragoman_documents_in_flight") == 1)
    assert client.poll() is None, "the call finished before SIGTERM; the test proves nothing"
    log = server.stop()
    client.stdin = None  # already closed: communicate() must not flush it
    out, err = client.communicate(timeout=60)
    assert client.returncode == 0, err
    assert out == swapcase(sentence) + "\n"  # the CLI ends terminal output with a newline
    assert server.proc.returncode == 0
    assert "shutting down" in log and "stopped" in log
    # the effective decoding set-up at start, and what the batcher did, at exit
    assert "batches of up to 100000 tokens, batching dynamic, memory cap none" in log
    assert re.search(r"model argos-en-fr: 1 generate calls, 1 sentences", log), log
