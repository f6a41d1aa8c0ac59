from __future__ import annotations

import argparse

import pytest

from dragoman.server.config import ServerConfig, add_arguments, env_name, load_config
from dragoman.server.errors import InvalidInput


def _flags(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(argv))


def test_defaults() -> None:
    config = load_config({}, env={})
    assert config.address == "localhost:50051"
    assert config.compute_type == "auto"  # each model's installed precision
    assert config.batching == "dynamic"


def test_precedence_flag_over_env_over_default() -> None:
    env = {"DRAGOMAN_ADDRESS": "0.0.0.0:6000", "DRAGOMAN_MAX_CHARS": "1000"}
    assert load_config({}, env=env).address == "0.0.0.0:6000"
    config = load_config(_flags(["--address", "127.0.0.1:7000"]), env=env)
    assert config.address == "127.0.0.1:7000"
    assert config.max_chars == 1000


def test_every_field_has_an_env_variable_and_flag() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    help_text = parser.format_help()
    for name in ServerConfig.__dataclass_fields__:
        assert env_name(name) in help_text
        assert "--" + name.replace("_", "-") in help_text


def test_models_env_feeds_the_store_dir(tmp_path) -> None:
    assert load_config({}, env={"DRAGOMAN_MODELS": str(tmp_path)}).models_dir == tmp_path


def test_typed_values_from_env() -> None:
    env = {"DRAGOMAN_BATCHING": "paragraph", "DRAGOMAN_PRELOAD": "a, b", "DRAGOMAN_BATCH_WAIT_MS": "0.5"}
    config = load_config({}, env=env)
    assert config.batching == "paragraph"
    assert config.preload == ("a", "b")
    assert config.batch_wait_ms == 0.5


def test_bad_env_value_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="DRAGOMAN_MAX_CHARS='lots'"):
        load_config({}, env={"DRAGOMAN_MAX_CHARS": "lots"})


def test_bad_values_rejected() -> None:
    with pytest.raises(InvalidInput, match="max_chars must be at least 1"):
        load_config({"max_chars": 0}, env={})
    with pytest.raises(InvalidInput, match="prefer"):
        load_config({"prefer": "cheapest"}, env={})


def test_unknown_batching_mode_is_refused() -> None:
    with pytest.raises(InvalidInput, match="batching must be one of dynamic, request, paragraph"):
        load_config({}, env={"DRAGOMAN_BATCHING": "off"})


def test_readme_configuration_table_lists_every_setting() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme[readme.index("## Configuration"):]
    table = table[: table.index("\n## ")]
    missing = [name for name in ServerConfig.__dataclass_fields__
               if f"`--{name.replace('_', '-')}`" not in table or env_name(name).split("_", 1)[1] not in table]
    assert not missing, f"README's configuration table lacks {missing}"
