"""`dragoman serve --http HOST:PORT` / DRAGOMAN_HTTP_ADDRESS: parsing, the default, turning it
off, and a taken address chosen by the user being a clear error."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from dragoman.server.config import add_arguments, load_config
from dragoman.server.errors import DragomanError
from dragoman.server.http.app import parse_address
from dragoman.server.rpc.app import ServerThread, build_service
from tests.conftest import server_config


def _flags(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(argv))


def test_http_flag_alias_env_and_default() -> None:
    assert load_config({}, env={}).http_address == "localhost:5000"
    assert load_config({}, env={}).http_enabled
    assert load_config(_flags(["--http", "0.0.0.0:8080"]), env={}).http_address == "0.0.0.0:8080"
    assert load_config(_flags(["--http-address", "[::1]:8081"]), env={}).http_address == "[::1]:8081"
    env = {"DRAGOMAN_HTTP_ADDRESS": "127.0.0.1:9000"}
    assert load_config({}, env=env).http_address == "127.0.0.1:9000"
    assert load_config(_flags(["--http", "127.0.0.1:9001"]), env=env).http_address == "127.0.0.1:9001"
    assert not load_config({}, env={"DRAGOMAN_HTTP_ADDRESS": "off"}).http_enabled


def test_parse_address() -> None:
    assert parse_address("localhost:5000") == ("localhost", 5000)
    assert parse_address("[::1]:80") == ("::1", 80)
    assert parse_address(":5000") == ("0.0.0.0", 5000)
    with pytest.raises(DragomanError, match="is not HOST:PORT"):
        parse_address("localhost")


def test_http_off_serves_grpc_only(copy_store: Path) -> None:
    config = server_config(copy_store, http_address="off")
    with ServerThread(build_service(config), config) as running:
        assert running.handle is not None and running.handle.http is None


def test_a_taken_address_the_user_chose_is_a_clear_error(copy_store: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = server_config(copy_store, http_address=f"127.0.0.1:{port}")
        server = ServerThread(build_service(config), config)
        with pytest.raises(DragomanError, match=f"cannot listen for HTTP on 127.0.0.1:{port}"):
            server.start()


def test_the_http_adapter_never_imports_ctranslate2_or_grpc() -> None:
    """As thin as rpc/: it maps requests onto the service facade and nothing else."""
    package = Path(__file__).resolve().parent.parent / "server" / "dragoman" / "server" / "http"
    for path in package.rglob("*.py"):
        text = path.read_text()
        for banned in ("import ctranslate2", "from ctranslate2", "import grpc", "from grpc"):
            assert banned not in text, (path.name, banned)
