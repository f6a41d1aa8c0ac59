"""Shared fixtures: a SentencePiece vocabulary and tiny copy models built offline once per
session, a model store holding them, and a running server over a real channel."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def sp_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.sentences import COPY_CORPUS
    from tests.support.spmodels import train_sentencepiece

    return train_sentencepiece(COPY_CORPUS, tmp_path_factory.mktemp("sp") / "copy", vocab_size=400)


@pytest.fixture(scope="session")
def swapcase(sp_model: Path) -> Callable[[str], str]:
    """The exact output of the swapcase copy model for one sentence (an independent oracle)."""
    import sentencepiece as spm

    from tests.support.copymodel import swapcase_mapping

    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    mapping = swapcase_mapping(sp_model)

    def translate(sentence: str) -> str:
        return sp.decode_pieces([mapping(p) for p in sp.encode(sentence, out_type=str)])

    return translate


def install_copy_model(
    store: Path, sp_model: Path, name: str, source: str, target: str, *,
    swap: bool = True, max_input_tokens: int = 64, task: str = "translate",
    max_decoding_length: int = 0,
) -> Path:
    """Build a copy model and install it through the real store path with a manifest."""
    import shutil

    from dragoman.server.manifest import Generation, Manifest, Tokenizer, write_manifest
    from dragoman.server.store import ModelStore
    from tests.support.copymodel import build_copy_model, swapcase_mapping

    work = store.parent / f"build-{name}"
    build_copy_model(work, sp_model, mapping=swapcase_mapping(sp_model) if swap else None,
                     quantization="int8", max_positions=256)
    shutil.copy2(sp_model, work / "sentencepiece.model")
    write_manifest(work, Manifest(
        name=name, task=task,  # type: ignore[arg-type]
        source_languages=(source,), target_languages=(target,), family="test-copy",
        tokenizer=Tokenizer("sentencepiece", "sentencepiece.model", "sentencepiece.model"),
        max_input_tokens=max_input_tokens,
        generation=Generation(beam_size=2, max_decoding_length=max_decoding_length),
    ))
    installed = ModelStore(store).install(work)
    shutil.rmtree(work)
    return installed.path


@pytest.fixture(scope="session")
def copy_store(tmp_path_factory: pytest.TempPathFactory, sp_model: Path) -> Path:
    """A store with `copy-en-de` (swapcase: visibly not an echo) and `copy-de-en` (identity)."""
    store = tmp_path_factory.mktemp("store") / "models"
    install_copy_model(store, sp_model, "copy-en-de", "en", "de", swap=True)
    install_copy_model(store, sp_model, "copy-de-en", "de", "en", swap=False)
    return store


def server_config(store: Path, **overrides: object):  # type: ignore[no-untyped-def]
    from dragoman.server.config import load_config

    # intra_threads=1: thread start-up dominates decoding with models this small.
    # HTTP off unless a test asks for it (http_address="127.0.0.1:0"): no server binds 5000.
    flags = {"models": str(store), "address": "127.0.0.1:0", "grace": 5.0, "intra_threads": 1,
             "http_address": "off", **overrides}
    return load_config(flags, env={})


@pytest.fixture(scope="session")
def server(copy_store: Path) -> Iterator[object]:
    """A running server on port 0 over the copy store."""
    from dragoman.server.rpc.app import ServerThread, build_service

    config = server_config(copy_store)
    with ServerThread(build_service(config), config) as running:
        yield running
