"""The command line as a newcomer first tries it (issue 14): inline text, --local, one-line
errors with a hint at the fix, help that lists only what a command takes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from test_cli_remote import assert_one_error_line, dragoman

from tests.support.signals import default_sigint

ROOT = Path(__file__).resolve().parent.parent


def test_text_is_given_inline_with_dash_t(copy_store: Path) -> None:
    done = dragoman("translate", "--to", "de", "--from", "en", "--local", "--models",
                    str(copy_store), "-t", "Hello world.")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hELLO WORLD.\n"


def test_hello_world_without_from_is_translated(copy_store: Path) -> None:
    """The issue's first command. "Hello world." alone is detected as Fula at 13%; a guess
    that unsure gives way to the likeliest language something here translates."""
    done = dragoman("translate", "--to", "de", "--local", "--models", str(copy_store),
                    "--json", "-t", "Hello world.")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["text"], result["source_language"]) == ("hELLO WORLD.", "en")
    assert result["detected"] is True
    # A confident detection nothing translates fails, and says it was a detection.
    done = dragoman("translate", "--to", "de", "--local", "--models", str(copy_store), "-t",
                    "Le conseil municipal a voté le budget de la ville pour l'année prochaine.")
    assert_one_error_line(done, 2, "fr.*detected as fr.*give the source language")


def test_a_positional_is_a_file_and_the_error_points_at_text() -> None:
    done = dragoman("translate", "--to", "de", "Hello world")
    assert_one_error_line(done, 2, r"cannot read Hello world: No such file.*--text 'Hello world'")


def test_file_and_text_together_are_refused(tmp_path: Path) -> None:
    done = dragoman("translate", "--to", "de", "-t", "x", str(tmp_path / "a.txt"))
    assert_one_error_line(done, 2, "either FILE or --text")


def test_local_translate_summarise_detect_need_no_server(copy_store: Path) -> None:
    local = ("--local", "--models", str(copy_store))
    # --server points nowhere: --local must not use it.
    nowhere = ("--server", "127.0.0.1:9")
    done = dragoman("translate", "--to", "de", "--from", "en", *local, *nowhere, "--json",
                    stdin="Good morning.\n")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["text"] == "gOOD MORNING.\n" and result["models"] == ["copy-en-de"]
    done = dragoman("summarise", *local, "--language", "en", "--method", "extractive",
                    "--sentences", "1", "-t", "One sentence here. Another one there.")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("One sentence here.", "Another one there.")
    done = dragoman("detect", *local, "-t", "Das ist ein ganz normaler deutscher Satz.")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\t")[0] == "de"


def test_local_missing_pair_is_a_usage_error(copy_store: Path) -> None:
    done = dragoman("translate", "--to", "fr", "--from", "en", "--local", "--models",
                    str(copy_store), "-t", "Hello.")
    assert_one_error_line(done, 2, "fr")


def test_no_server_hints_at_serve_and_server_flag() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = dragoman("translate", "--to", "de", "-t", "Hi.", "--server", f"127.0.0.1:{port}",
                    "--timeout", "10")
    assert_one_error_line(done, 1, r"dragoman serve.*--server.*DRAGOMAN_SERVER.*--local\)$")
    # Only commands that can run without a server offer --local.
    done = dragoman("languages", "--server", f"127.0.0.1:{port}", "--timeout", "10")
    assert_one_error_line(done, 1, r"dragoman serve.*--server.*DRAGOMAN_SERVER")
    assert "--local" not in done.stderr


def test_client_flags_are_not_offered_where_they_do_nothing() -> None:
    for command in ("serve", "models", "keys", "glossaries"):
        done = dragoman(command, "--help")
        assert done.returncode == 0, done.stderr
        assert "--server" not in done.stdout and "--timeout" not in done.stdout, command
        assert "--verbose" in done.stdout
    done = dragoman("translate", "--help")
    assert "--server" in done.stdout and "--timeout" in done.stdout


def test_help_states_one_default_and_names_arguments() -> None:
    serve = dragoman("serve", "--help").stdout
    models_help = " ".join(serve.split("\n  --models", 1)[1].split("\n  --device", 1)[0].split())
    assert models_help.count("default") == 1, models_help
    remove = dragoman("models", "remove", "--help").stdout
    assert "name of the installed model" in remove
    summarise = dragoman("batch", "summarise", "--help").stdout
    assert "translated title" not in summarise


def test_serve_preload_of_a_missing_model_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    done = dragoman("serve", "--preload", "xyz", "--address", "127.0.0.1:0", "--http", "off",
                    "--models", str(tmp_path / "models"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "never awaited" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1] == "dragoman: error: model 'xyz' is not installed"


def test_serve_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = dragoman("serve", "--address", f"127.0.0.1:{port}", "--http", "off",
                        "--models", str(tmp_path))
    assert_one_error_line(done, 2, f"cannot listen on 127.0.0.1:{port}.*in use")


def test_serve_refuses_a_store_folder_that_does_not_exist(tmp_path: Path) -> None:
    done = dragoman("serve", "--address", "127.0.0.1:0", "--http", "off",
                    "--models", str(tmp_path / "typo"))
    assert_one_error_line(done, 2, "model store folder .*typo does not exist")


def test_batch_output_in_a_missing_folder_is_a_usage_error(tmp_path: Path,
                                                            copy_store: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "Hi."}\n', encoding="utf-8")
    done = dragoman("batch", "translate", "--to", "de", "--from", "en", "--local", "--models",
                    str(copy_store), str(source), "-o", str(tmp_path / "no" / "such" / "o.jsonl"))
    assert_one_error_line(done, 2, "no/such.*does not exist")


def test_script_above_the_clone_imports_the_installed_client(tmp_path: Path) -> None:
    """Run from the folder holding a clone named dragoman/ (as `git clone` names it), the
    clone's client/ folder must not shadow the installed dragoman.client (tests/run installs
    in editable compat mode for this)."""
    (tmp_path / "dragoman").symlink_to(ROOT, target_is_directory=True)
    script = "from dragoman.client import Client; print(Client.__module__)"
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "dragoman.client.api"


def test_batch_via_server_stops_at_once_without_the_pair(tmp_path: Path, server) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"id": {i}, "text": "Hi."}}\n' for i in range(50)))
    out = tmp_path / "out.jsonl"
    for flags in (("--from", "en", "--to", "fr"), ("--to", "de", "--model", "nope")):
        done = dragoman("batch", "translate", *flags, "--server", server.address, str(source),
                        "-o", str(out))
        assert_one_error_line(done, 2, "no model")
        assert not (tmp_path / "out.jsonl.errors.jsonl").exists()


def test_batch_interrupted_says_how_to_resume(tmp_path: Path) -> None:
    """A server that accepts the connection and never answers holds the job; Ctrl-C then."""
    import os
    import signal

    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "Hi."}\n')
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGOMAN_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "client"), str(ROOT / "server")])
        process = subprocess.Popen(
            [sys.executable, "-m", "dragoman.client.cli", "batch", "translate", "--to", "de",
             "--server", "127.0.0.1:%d" % silent.getsockname()[1], str(source),
             "-o", str(tmp_path / "out.jsonl")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            preexec_fn=default_sigint)  # as at a terminal, even when the suite runs in background
        silent.settimeout(60)
        connection, _ = silent.accept()  # the job is running and waits for the server
        with connection:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "rerun the same command to resume" in err


def test_json_errors_name_the_line_and_say_at_once() -> None:
    from dragoman.server.batchjob.job import FieldOptions
    from dragoman.server.batchjob.readers import parse_jsonl_line

    empty = parse_jsonl_line("{", 2, "line 3", FieldOptions())
    assert "Expecting property name enclosed in double quotes at line 3 column 2" in \
        empty.reason  # type: ignore[union-attr]
    control = parse_jsonl_line('{"text": "a\x01b"}', 0, "line 1", FieldOptions())
    assert "Invalid control character at line 1 column" in control.reason  # type: ignore[union-attr]
    assert "at at" not in control.reason  # type: ignore[union-attr]


def test_a_newly_installed_model_is_logged(tmp_path: Path, sp_model: Path,
                                           caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    from conftest import install_copy_model

    from dragoman.server.registry import ModelRegistry
    from dragoman.server.store import ModelStore

    store = tmp_path / "models"
    install_copy_model(store, sp_model, "first", "en", "de")
    with caplog.at_level(logging.INFO, logger="dragoman.server.registry"):
        registry = ModelRegistry(ModelStore(store))
        assert not [r for r in caplog.records if "was installed" in r.getMessage()]
        install_copy_model(store, sp_model, "second", "de", "en")
        registry.refresh()
    messages = [r.getMessage() for r in caplog.records if "was installed" in r.getMessage()]
    assert messages == ["model second was installed (translate de -> en); serving it"]
    registry.close(timeout=1.0)


def _jsonl(tmp_path: Path, count: int = 30) -> Path:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"id": {i}, "text": "The council met. It voted."}}\n'
                              for i in range(count)), encoding="utf-8")
    return source


def test_batch_stops_at_once_when_nothing_can_serve_the_job(
        tmp_path: Path, copy_store: Path, server) -> None:  # type: ignore[no-untyped-def]
    """Both engines check the job against what is installed before reading the input: no
    model into the target (source detected per document), no abstractive summariser, an
    unknown model. (--local wrote one NOT_FOUND record per document for the last two.)"""
    source = _jsonl(tmp_path)
    jobs = [
        (("translate", "--to", "fr"), "no model .*into fr"),
        (("translate", "--to", "de", "--model", "nope"), "no model named 'nope'"),
        (("summarise", "--method", "abstractive"), "no abstractive summariser"),
        (("summarise", "--method", "abstractive", "--language", "de"),
         "no abstractive summariser"),
        (("summarise", "--model", "nope"), "no model named 'nope'"),
        (("summarise", "--model", "copy-en-de"), "'copy-en-de' is not a summariser"),
        (("summarise", "--language", "en", "--to", "fr"), "no model .*en->fr"),
    ]
    engines = [("--local", "--models", str(copy_store)), ("--server", server.address)]
    for engine in engines:
        for job, pattern in jobs:
            out = tmp_path / "out.jsonl"
            done = dragoman("batch", *job, *engine, str(source), "-o", str(out),
                            "--progress", "none")
            assert_one_error_line(done, 2, pattern)
            assert not (tmp_path / "out.jsonl.errors.jsonl").exists(), (engine, job)


def test_batch_local_refuses_a_store_folder_that_does_not_exist(tmp_path: Path) -> None:
    done = dragoman("batch", "translate", "--from", "en", "--to", "de", "--local", "--models",
                    str(tmp_path / "typo"), str(_jsonl(tmp_path, 1)), "-o",
                    str(tmp_path / "out.jsonl"))
    assert_one_error_line(done, 2, "model store folder .*typo does not exist")


def test_store_commands_refuse_a_store_folder_that_does_not_exist(tmp_path: Path) -> None:
    """A typo in --models (or DRAGOMAN_MODELS) is an error, not an empty store; the default
    folder may be missing (nothing installed yet)."""
    typo = str(tmp_path / "typo")
    for args in (("models", "list", "--models", typo), ("models", "remove", "x", "--models", typo),
                 ("glossaries", "list", "--models", typo),
                 ("glossaries", "add", "news", "--from", "en", "--to", "de", "--term", "a=b",
                  "--models", typo)):
        assert_one_error_line(dragoman(*args), 2, "model store folder .*typo does not exist")
    assert not (tmp_path / "typo").exists()
    done = dragoman("models", "list", DRAGOMAN_MODELS=typo)
    assert_one_error_line(done, 2, "model store folder .*typo does not exist.*DRAGOMAN_MODELS")
    done = dragoman("models", "list", XDG_DATA_HOME=str(tmp_path / "fresh"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no models installed")


def test_batch_summarise_help_does_not_promise_translated_titles() -> None:
    summarise = " ".join(dragoman("batch", "summarise", "--help").stdout.split())
    assert "translated too" not in summarise and "title: kept as it is" in summarise
    assert "--title-output-field NAME" not in summarise
    translate = " ".join(dragoman("batch", "translate", "--help").stdout.split())
    assert "translated too" in translate and "--title-output-field NAME" in translate


def test_a_missing_file_named_like_a_word_points_at_text() -> None:
    done = dragoman("translate", "--to", "de", "Hello")
    assert_one_error_line(done, 2, r"cannot read Hello: No such file.*--text 'Hello'")
    done = dragoman("translate", "--to", "de", "artcle.md")  # a typo'd file name: no hint
    assert_one_error_line(done, 2, r"cannot read artcle.md: No such file or directory$")


def test_serve_on_an_http_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = dragoman("serve", "--address", "127.0.0.1:0", "--http", f"127.0.0.1:{port}",
                        "--models", str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"dragoman: error: cannot listen for HTTP on 127.0.0.1:{port}: port {port} is already "
        "in use")
