"""Build (once, then reuse) the benchmark's model store: a SentencePiece vocabulary trained
on stdlib docstrings and an OPUS-MT-sized random-weight model that emits ``</s>`` exactly
when its source ends (``tests/support/randommodel.py``), installed with a manifest."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import corpus
import reporoot

reporoot.put_on_path()

from dragoman.server.manifest import Generation, Manifest, Tokenizer, write_manifest
from tests.support.randommodel import build_random_model
from tests.support.spmodels import train_sentencepiece

logger = logging.getLogger(__name__)

MODEL_NAME = "bench-en-de"


@dataclass(frozen=True)
class ModelRecipe:
    """Everything that decides the built files; a change rebuilds them."""

    layers: int = 6
    d_model: int = 512
    heads: int = 8
    ffn: int = 2048
    # opus-mt-en-de's vocabulary size; the docstring corpus yields ~13k SentencePiece pieces
    # and the rest are never-emitted padding pieces, so the output projection costs the same.
    vocab_size: int | None = 58101  # None: the SentencePiece model's own size
    sentencepiece_pieces: int = 32000  # upper bound; a small corpus yields fewer
    quantization: str = "int8"
    max_input_tokens: int = 256  # Argos/OPUS-MT-like input window (longer sentences are split)
    beam_size: int = 4  # the model's default decoding (OPUS-MT and Argos use beam search)
    seed: int = 0


def prepare(workdir: Path, recipe: ModelRecipe = ModelRecipe()) -> Path:
    """Return a model store folder holding ``MODEL_NAME``, building it if needed."""
    store = workdir / "store"
    model_dir = store / MODEL_NAME
    stamp = workdir / "recipe.json"
    wanted = json.dumps(asdict(recipe), sort_keys=True)
    if (model_dir / "dragoman.json").is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return store
    workdir.mkdir(parents=True, exist_ok=True)
    logger.info("training SentencePiece on stdlib docstrings")
    sp_model = train_sentencepiece(
        corpus.training_text(), workdir / "sp" / "docstrings", vocab_size=recipe.sentencepiece_pieces
    )
    logger.info("building the random-weight model (vocabulary %s)", recipe.vocab_size)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    build_random_model(
        model_dir, sp_model, layers=recipe.layers, d_model=recipe.d_model, heads=recipe.heads,
        ffn=recipe.ffn, quantization=recipe.quantization, seed=recipe.seed,
        vocab_size=recipe.vocab_size,
    )
    (model_dir / "sentencepiece.model").write_bytes(sp_model.read_bytes())
    write_manifest(model_dir, Manifest(
        name=MODEL_NAME, task="translate", source_languages=("en",), target_languages=("de",),
        family="bench-random",
        tokenizer=Tokenizer("sentencepiece", "sentencepiece.model", "sentencepiece.model"),
        max_input_tokens=recipe.max_input_tokens,
        generation=Generation(beam_size=recipe.beam_size),
        description="random weights, OPUS-MT shape; output length = input length (benchmarks only)",
    ))
    stamp.write_text(wanted)
    return store
