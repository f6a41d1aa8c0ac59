from __future__ import annotations

from pathlib import Path

import pytest

from dragoman.server.errors import StoreError
from dragoman.server.tokenizer import SentencePieceTokenizer


@pytest.fixture(scope="module")
def tok(sp_model: Path) -> SentencePieceTokenizer:
    return SentencePieceTokenizer(sp_model)


def test_round_trip(tok: SentencePieceTokenizer) -> None:
    text = "The city council approved the new budget on Tuesday evening."
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("marker", ["__de__", ">>deu<<", "deu_Latn", "<unk_64>", "<pad>"])
def test_model_only_markers_are_dropped(tok: SentencePieceTokenizer, marker: str) -> None:
    pieces = [marker, *tok.encode("The city council"), marker, *tok.encode(" approved it.")]
    assert tok.decode(pieces) == "The city council approved it."


def test_unknown_subwords_are_spelled_out_not_lost(tok: SentencePieceTokenizer) -> None:
    pieces = [*tok.encode("The city"), "\u2581zzqx", *tok.encode(" approved it.")]
    assert tok.decode(pieces) == "The city zzqx approved it."
    assert tok.decode(["\u2581zzqx", *tok.encode(" The city")]) == "zzqx The city"


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="SentencePiece model .* is missing"):
        SentencePieceTokenizer(tmp_path / "nope.model")
