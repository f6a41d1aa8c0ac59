"""The `dragoman` remote commands, run as a real process against the fake server of test_client.

Every run goes through `python -m dragoman.client.cli`, the same `main` as the console script,
so exit codes, stdout/stderr and the absence of tracebacks are what a user would see.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_client import FakeServer, running_fake_server, unused_address

from dragoman.client.cli.remote import render_languages
from dragoman.client.results import Languages
from dragoman.v1 import summarisation_pb2, translation_pb2
from tests.support.signals import default_sigint

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with running_fake_server() as server:
        yield server


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGOMAN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "client"), str(ROOT / "server")])
    env.update(extra)
    return env


def dragoman(
    *args: str, stdin: str | bytes = b"", cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    done = subprocess.run(
        [sys.executable, "-m", "dragoman.client.cli", *args],
        input=data,
        capture_output=True,
        env=cli_env(**env),
        cwd=cwd,
        timeout=60,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    )


def assert_one_error_line(done: subprocess.CompletedProcess[str], code: int, pattern: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("dragoman: error: ")
    assert re.search(pattern, lines[0]), lines[0]


def test_translate_file_to_stdout(fake: FakeServer, tmp_path: Path) -> None:
    article = tmp_path / "artikel.md"
    article.write_text("# Überschrift\n\nErster Absatz.\n", encoding="utf-8")
    # Global flags work after the command, too.
    done = dragoman(
        "translate", "--to", "en", "--from", "de", str(article), "--server", fake.address
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "# ÜBERSCHRIFT\n\nERSTER ABSATZ.\n"
    assert done.stderr == ""
    sent = fake.translation.requests[-1]
    assert (sent.source_language, sent.target_language) == ("de", "en")
    assert sent.format == translation_pb2.TEXT_FORMAT_MARKDOWN


def test_translate_stdin_with_server_from_environment(fake: FakeServer) -> None:
    done = dragoman("translate", "--to", "fr", stdin="hello there", DRAGOMAN_SERVER=fake.address)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "HELLO THERE\n"  # a newline is added on a terminal-bound stream
    sent = fake.translation.requests[-1]
    assert sent.text == "hello there" and sent.source_language == ""
    assert sent.format == translation_pb2.TEXT_FORMAT_PLAIN


def test_server_flag_beats_environment(fake: FakeServer) -> None:
    done = dragoman(
        "--server",
        fake.address,
        "translate",
        "--to",
        "fr",
        "-",
        stdin="x",
        DRAGOMAN_SERVER=unused_address(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "X\n"


def test_translate_format_from_suffix_and_flag(fake: FakeServer, tmp_path: Path) -> None:
    page = tmp_path / "page.HTM"
    page.write_text("<p>hallo</p>", encoding="utf-8")
    assert dragoman("--server", fake.address, "translate", "--to", "en", str(page)).returncode == 0
    assert fake.translation.requests[-1].format == translation_pb2.TEXT_FORMAT_HTML
    done = dragoman(
        "--server", fake.address, "translate", "--to", "en", "--format", "plain", str(page)
    )
    assert done.returncode == 0, done.stderr
    assert fake.translation.requests[-1].format == translation_pb2.TEXT_FORMAT_PLAIN


def test_translate_output_file_is_replaced_atomically(fake: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("old", encoding="utf-8")
    out.chmod(0o640)
    done = dragoman(
        "--server", fake.address, "translate", "--to", "de", "-o", str(out), stdin="no newline"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert out.read_text(encoding="utf-8") == "NO NEWLINE"  # files get the text exactly
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temp file left


def test_translate_json_prints_the_full_result(fake: FakeServer) -> None:
    done = dragoman(
        "--server", fake.address, "translate", "--to", "de", "--from", "fr", "--json", stdin="ça va"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "id": "",
        "text": "ÇA VA",
        "source_language": "fr",
        "target_language": "de",
        "model": "fake-fr-en+fake-en-de",
        "models": ["fake-fr-en", "fake-en-de"],
        "pivot_language": "en",
        "detected": False,
        "sentences": 1,
        "cached_sentences": 0,
        "error": None,
    }


def test_bad_flag_is_one_line_and_exit_2(fake: FakeServer) -> None:
    done = dragoman("--server", fake.address, "translate", "--to", "de", "--shout", stdin="x")
    assert_one_error_line(done, 2, r"unrecognized arguments: --shout")
    assert done.stdout == ""
    missing = dragoman("translate", stdin="x")
    assert_one_error_line(missing, 2, r"translate: the following arguments are required: --to")
    both = dragoman("summarise", "--sentences", "2", "--words", "9", stdin="x")
    assert_one_error_line(both, 2, r"--words: not allowed with argument --sentences")
    bad_timeout = dragoman("--timeout", "-1", "health")
    assert_one_error_line(bad_timeout, 2, r"--timeout: must be a positive number")


def test_unreadable_inputs_and_outputs_are_usage_errors(fake: FakeServer, tmp_path: Path) -> None:
    missing = dragoman(
        "--server", fake.address, "translate", "--to", "de", str(tmp_path / "nope.txt")
    )
    assert_one_error_line(missing, 2, r"cannot read .*nope\.txt: No such file or directory")
    binary = tmp_path / "latin1.txt"
    binary.write_bytes("café".encode("latin-1"))
    not_utf8 = dragoman("--server", fake.address, "translate", "--to", "de", str(binary))
    assert_one_error_line(not_utf8, 2, r"latin1\.txt is not UTF-8 text \(byte 3\)")
    unwritable = dragoman(
        "--server",
        fake.address,
        "translate",
        "--to",
        "de",
        "-o",
        str(tmp_path / "no" / "out.txt"),
        stdin="x",
    )
    assert_one_error_line(unwritable, 2, r"cannot write .*out\.txt: No such file or directory")


def test_no_file_and_a_terminal_on_stdin_is_a_usage_error(fake: FakeServer) -> None:
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "dragoman.client.cli",
                "--server",
                fake.address,
                "translate",
                "--to",
                "de",
            ],
            stdin=terminal,
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=60,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert_one_error_line(done, 2, r"no input: give a FILE, or '-' to type the text")


def test_server_down_is_exit_1_with_a_clear_message() -> None:
    address = unused_address()
    done = dragoman("--server", address, "translate", "--to", "de", stdin="x")
    assert_one_error_line(done, 1, rf"server {address} unavailable: failed to connect")
    assert done.stdout == ""


def test_server_errors_map_to_exit_codes(fake: FakeServer) -> None:
    not_found = dragoman(
        "--server",
        fake.address,
        "translate",
        "--to",
        "xx",
        stdin="ABORT:NOT_FOUND:no model for en->xx",
    )
    assert_one_error_line(not_found, 2, r"^dragoman: error: no model for en->xx$")
    invalid = dragoman(
        "--server", fake.address, "summarise", stdin="ABORT:INVALID_ARGUMENT:text is empty\nreally"
    )
    assert_one_error_line(invalid, 2, r"^dragoman: error: text is empty really$")
    internal = dragoman("--server", fake.address, "detect", stdin="ABORT:INTERNAL:model crashed")
    assert_one_error_line(internal, 1, r"^dragoman: error: model crashed \(INTERNAL\)$")


def test_timeout_flag_sets_the_deadline(fake: FakeServer) -> None:
    done = dragoman(
        "--server", fake.address, "--timeout", "0.3", "translate", "--to", "de", stdin="SLOW"
    )
    assert_one_error_line(done, 1, rf"no answer from {fake.address} within 0.3 s \(see --timeout\)")
    from_env = dragoman(
        "--server", fake.address, "translate", "--to", "de", stdin="SLOW", DRAGOMAN_TIMEOUT="0.3"
    )
    assert_one_error_line(from_env, 1, r"within 0.3 s")


def test_ctrl_c_exits_130_quietly(fake: FakeServer, tmp_path: Path) -> None:
    slow = tmp_path / "slow.txt"
    slow.write_text("SLOW", encoding="utf-8")
    fake.translation.slow_started.clear()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dragoman.client.cli",
            "--server",
            fake.address,
            "translate",
            "--to",
            "de",
            str(slow),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        preexec_fn=default_sigint,  # as at a terminal, even when the suite runs in background
    )
    try:
        assert fake.translation.slow_started.wait(30), "the call never reached the server"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert (stdout, stderr) == (b"", b"")


def test_a_reader_that_leaves_early_is_exit_1_not_success(fake: FakeServer, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("x. " * 3_000_000, encoding="utf-8")  # far more than a pipe buffers
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dragoman.client.cli",
            "--server",
            fake.address,
            "translate",
            "--to",
            "de",
            str(big),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        assert os.read(process.stdout.fileno(), 10).startswith(b"X. ")
        process.stdout.close()
        stderr = process.stderr.read()
        assert process.wait(timeout=60) == 1
    finally:
        process.kill()
    assert stderr == b""


def test_summarise_passes_every_option(fake: FakeServer, tmp_path: Path) -> None:
    article = tmp_path / "artikel.txt"
    article.write_text("Erster Satz. Zweiter Satz.", encoding="utf-8")
    done = dragoman(
        "--server",
        fake.address,
        "summarize",
        "--to",
        "en",
        "--language",
        "de",
        "--method",
        "abstractive",
        "--words",
        "40",
        str(article),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ERSTER SATZ\n"
    sent = fake.summarisation.requests[-1]
    assert (sent.target_language, sent.language, sent.max_words, sent.max_sentences) == (
        "en",
        "de",
        40,
        0,
    )
    assert sent.method == summarisation_pb2.SUMMARY_METHOD_ABSTRACTIVE
    as_json = dragoman(
        "--server", fake.address, "summarise", "--sentences", "3", "--json", stdin="Eins. Zwei."
    )
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert (result["method"], result["language"], result["sentences"]) == ("extractive", "de", 3)
    assert fake.summarisation.requests[-1].method == summarisation_pb2.SUMMARY_METHOD_UNSPECIFIED


def test_detect(fake: FakeServer) -> None:
    done = dragoman("--server", fake.address, "detect", "-", stdin="NL dit is een zin")
    assert (done.returncode, done.stdout) == (0, "nl\t0.750\n")
    every = dragoman("--server", fake.address, "detect", "--all", stdin="NL dit")
    assert every.stdout == "nl\t0.750\nen\t0.250\n"
    as_json = dragoman("--server", fake.address, "detect", "--json", stdin="NL dit")
    assert json.loads(as_json.stdout)["candidates"] == [
        {"language": "nl", "confidence": 0.75},
        {"language": "en", "confidence": 0.25},
    ]


def test_languages_table_and_json(fake: FakeServer) -> None:
    done = dragoman("--server", fake.address, "languages")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "Translation pairs (2):\n"
        "  FROM  TO  MODELS                   PIVOT\n"
        "  de    en  opus-de-en\n"
        "  de    fr  opus-de-en + opus-en-fr  en\n"
        "\n"
        "Summaries:\n"
        "  abstractive: en\n"
        "  extractive: every language\n"
        "\n"
        "Models (2):\n"
        "  MODEL       TASK       FROM  TO  LOADED\n"
        "  opus-de-en  translate  de    en  yes\n"
        "  bart-en     summarise  en    en  no\n"
    )
    as_json = json.loads(dragoman("--server", fake.address, "languages", "--json").stdout)
    assert as_json["pairs"][1] == {
        "source_language": "de",
        "target_language": "fr",
        "models": ["opus-de-en", "opus-en-fr"],
        "pivot_language": "en",
    }
    assert as_json["extractive_summaries"] is True


def test_languages_listing_says_none_when_nothing_is_installed() -> None:
    empty = Languages(pairs=(), summarisation_languages=(), models=(), extractive_summaries=False)
    assert render_languages(empty) == (
        "Translation pairs (0):\n  none\n\n"
        "Summaries:\n  abstractive: none\n  extractive: none\n\n"
        "Models (0):\n  none"
    )


def test_health(fake: FakeServer) -> None:
    done = dragoman("--server", fake.address, "health")
    assert (done.returncode, done.stdout, done.stderr) == (0, "SERVING\n", "")
    down = dragoman(
        "--server", fake.address, "health", "--service", "dragoman.v1.SummarisationService"
    )
    assert (down.returncode, down.stdout) == (1, "NOT_SERVING\n")
    waited = dragoman("--server", unused_address(), "health", "--wait", "0.3")
    assert_one_error_line(waited, 1, r"unavailable: .* not serving after 0.3 s")


def test_version_and_help_exit_0() -> None:
    version = dragoman("--version")
    assert version.returncode == 0 and version.stdout.startswith("dragoman ")
    helped = dragoman("translate", "--help")
    assert helped.returncode == 0 and "--to LANG" in helped.stdout
