"""The client distribution on its own: `pip install ./client` into a fresh venv gives the client
library and the `dragoman` command with grpcio and protobuf, none of CTranslate2, SentencePiece
or numpy, and calls a real server; the commands that need the server distribution exit 2 with
one line saying what to install."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HINT = ("needs the Dragoman server, and only the client is installed here: pip install dragoman "
        "(from a checkout of the repository: pip install ./client .)")
SENTENCE = "The city council approved the new budget on Tuesday evening."
# What `pip install ./client` may bring: the client, gRPC, its health stubs, protobuf, and what
# grpcio itself requires (typing-extensions in recent releases), plus the venv's own pip.
ALLOWED = {"dragoman-client", "grpcio", "grpcio-health-checking", "protobuf",
           "typing-extensions", "typing_extensions", "pip", "setuptools"}

# Runs the CLI in this interpreter as if dragoman.server were not installed, once per argv.
_WITHOUT_SERVER = """
import contextlib, io, json, sys
sys.modules["dragoman.server"] = None  # import fails, find_spec answers None: not installed
from dragoman.client.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def _unused_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _without_server(*argvs: list[str]) -> list[tuple[int, str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGOMAN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "client"), str(ROOT / "server")])
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_SERVER, json.dumps(argvs)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [tuple(r) for r in json.loads(proc.stdout)]


def _path_installs(text: str) -> list[list[str]]:
    """The arguments of every `pip install` in `text` that installs a folder (not a name)."""
    installs = []
    for match in re.finditer(r"pip (?:[\w-]+ )*?install ([^\n`&;|]*)", text):
        words = [w.strip("'\"") for w in match.group(1).split("#")[0].split()]
        if any(w.startswith((".", "/src")) for w in words):
            installs.append(words)
    return installs


def test_every_install_from_the_checkout_names_both_distributions() -> None:
    """The server pins dragoman-client, which no index has: an install of the server project
    that does not name ./client next to it fails (or would take a stranger's package)."""
    files = ["README.md", "bench/README.md", "client/README.md", "deploy/Dockerfile", "tests/run"]
    found = 0
    for name in files:
        for words in _path_installs((ROOT / name).read_text()):
            found += 1
            server = [w for w in words if w in (".", "-e.") or w.startswith((".[", "/src["))]
            client = [w for w in words if w.rstrip("/").endswith(("./client", "/src/client"))]
            assert client, (name, words)
            assert len(server) <= 1 and (server or words == ["./client"]), (name, words)
    assert found >= 8


def test_server_commands_without_the_server_say_what_to_install(tmp_path: Path) -> None:
    commands = {
        "`dragoman serve`": ["serve"],
        "`dragoman serve`, flags of the server": ["serve", "--address", "127.0.0.1:0",
                                                  "--models", str(tmp_path)],
        "`dragoman models`": ["models", "list"],
        "`dragoman keys`": ["keys", "list", "--keys", str(tmp_path / "keys.db")],
        "`dragoman glossaries`": ["glossaries", "list"],
        "`dragoman batch`": ["batch", "translate", "--to", "de", str(tmp_path / "in.jsonl"),
                             "-o", str(tmp_path / "out.jsonl")],
        "`dragoman translate --local`": ["translate", "--local", "--to", "de", "--text", "Hi."],
        "`dragoman summarise --local`": ["summarise", "--local", "--text", "Hi."],
        "`dragoman detect --local`": ["detect", "--local", "--text", "Hi."],
    }
    results = _without_server(*commands.values())
    for (name, argv), (code, out, err) in zip(commands.items(), results, strict=True):
        what = name.split(",")[0]
        assert (code, out) == (2, ""), (argv, code, out, err)
        assert err == f"dragoman: error: {what} {HINT}\n", argv
    assert not list(tmp_path.iterdir())  # nothing was started or written


def test_without_the_server_help_and_remote_commands_still_work() -> None:
    address = _unused_address()
    helped, version, remote, typo = _without_server(
        ["serve", "--help"], ["--version"],
        ["--server", address, "--timeout", "10", "translate", "--to", "de", "--text", "Hi."],
        ["translate", "--to", "de", "--text", "Hi.", "--frobnicate"],
    )
    assert helped[0] == 0 and "pip install ./client ." in " ".join(helped[1].split())
    assert version[0] == 0 and version[1].startswith("dragoman ")
    code, _, err = remote  # reaches for the server: no install hint
    assert code == 1 and f"server {address} unavailable" in err and "pip install" not in err
    code, _, err = typo
    assert code == 2 and "unrecognized arguments: --frobnicate" in err and "pip" not in err


# -- a fresh venv with the client alone --------------------------------------------------------

def _venv_env() -> dict[str, str]:
    """The environment without this checkout on the path, so only the venv's packages count."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DRAGOMAN_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv holding `pip install ./client` and nothing else (PyPI for grpcio and protobuf)."""
    venv = tmp_path_factory.mktemp("client-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300,
                   env=_venv_env())
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT / "client")],
        capture_output=True, text=True, timeout=900, env=_venv_env(), cwd=venv.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield venv


def _in_venv(venv: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(venv / "bin" / argv[0]), *argv[1:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=_venv_env())


@pytest.mark.slow
def test_client_alone_installs_without_the_model_stack(client_venv: Path, tmp_path: Path) -> None:
    listed = _in_venv(client_venv, "python", "-m", "pip", "list", "--format=json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "dragoman-client" in names and "grpcio" in names and "protobuf" in names
    assert names <= ALLOWED, names - ALLOWED
    probe = _in_venv(client_venv, "python", "-c", textwrap.dedent("""
        import importlib.util, dragoman.client, dragoman.client.cli, dragoman.v1.translation_pb2
        print(dragoman.client.__file__)
        print([m for m in ("ctranslate2", "sentencepiece", "numpy", "dragoman.server")
               if importlib.util.find_spec(m)])
    """), cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    where, missing = probe.stdout.splitlines()
    assert where.startswith(str(client_venv)), where  # the installed copy, not the checkout's
    assert missing == "[]"
    serve = _in_venv(client_venv, "dragoman", "serve", "--models", str(tmp_path), cwd=tmp_path)
    assert serve.returncode == 2 and serve.stdout == ""
    assert serve.stderr == f"dragoman: error: `dragoman serve` {HINT}\n"


@pytest.mark.slow
def test_client_alone_calls_a_real_server(client_venv: Path, copy_store: Path, tmp_path: Path,
                                          swapcase: Callable[[str], str]) -> None:
    from tests.test_cli_e2e import Server

    expected = swapcase(SENTENCE)  # copy-en-de swaps the case of every piece: visibly decoded
    assert expected != SENTENCE
    server = Server(copy_store)  # `dragoman serve` from this checkout's environment, port 0
    try:
        cli = _in_venv(client_venv, "dragoman", "--server", server.address, "translate",
                       "--from", "en", "--to", "de", "--text", SENTENCE, cwd=tmp_path)
        assert (cli.returncode, cli.stdout, cli.stderr) == (0, expected + "\n", "")
        script = tmp_path / "call.py"
        script.write_text(textwrap.dedent(f"""
            from dragoman.client import Client

            with Client({server.address!r}, timeout=60) as client:
                result = client.translate({SENTENCE!r}, "de", source="en")
            print(result.text, result.model, sep="\\n")
        """))
        library = _in_venv(client_venv, "python", str(script), cwd=tmp_path)
        assert library.returncode == 0, library.stderr
        assert library.stdout == f"{expected}\ncopy-en-de\n"
    finally:
        server.stop()
