"""Conversion edges found by installing checkpoints as users bring them: each one either
converts to exactly what transformers ``generate`` gives, or is refused at install with the
reason. Every case is a tiny checkpoint built here with the real transformers classes and
installed through the real store path (CTranslate2's converters)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="converting checkpoints needs torch (the convert extra)")
transformers = pytest.importorskip("transformers", reason="converting checkpoints needs transformers")

from dragoman.server.batcher import BatchingOptions
from dragoman.server.config import load_config
from dragoman.server.errors import ModelNotFound, StoreError
from dragoman.server.registry import ModelRegistry
from dragoman.server.seq2seq import RuntimeOptions, Seq2SeqModel
from dragoman.server.service import Dragoman, SummariseInput
from dragoman.server.store import InstallOptions, ModelStore
from tests.conftest import install_copy_model
from tests.test_families import (
    TEXTS,
    Checkpoint,
    _train_sentencepiece,
    assert_not_degenerate,
    build_m2m100,
    build_marian,
    build_nllb,
    hf_greedy,
)
from tests.test_summarise_convert import (
    INPUTS,
    _strip_specials,
    build_bart,
    build_pegasus,
    build_t5,
)

FLOAT32 = InstallOptions(quantization="")  # what `models install --quantization float32` passes


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edges")


@pytest.fixture(scope="module")
def unigram_sp(work: Path) -> Path:
    return _train_sentencepiece(work / "unigram", "unigram")


@pytest.fixture(scope="module")
def tuned_marian(work: Path, unigram_sp: Path) -> Checkpoint:
    """Fine-tuned in transformers with tied embeddings: the <pad> row trained away from zero."""
    ckpt = build_marian(work / "opus-mt-en-de-tuned", unigram_sp, None, zero_pad_row=False)
    pad = ckpt.model.config.pad_token_id
    assert float(ckpt.model.model.shared.weight[pad].detach().abs().sum()) > 0.1
    return ckpt


def _store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


# -- 1. Marian with a trained <pad> row (the decoder start embedding) -----------------------------


def test_marian_with_a_trained_pad_row_matches_transformers(
    tuned_marian: Checkpoint, tmp_path: Path
) -> None:
    installed = _store(tmp_path).install(tuned_marian.path, FLOAT32)
    model = Seq2SeqModel(installed.path, installed.manifest, RuntimeOptions(compute_type="float32"))
    refs = [hf_greedy(tuned_marian, text, "en", "de") for text in TEXTS]
    assert_not_degenerate(refs)
    encoded = [model.encode(text, "en", "de") for text in TEXTS]
    outputs = model.generate(encoded, model.default_options(beam_size=1))
    got = [tuned_marian.tokenizer.convert_tokens_to_ids(list(out)) for out in outputs]
    assert got == [ref.output_ids for ref in refs]
    # The start token is <pad> itself, which the checkpoint never lets the decoder emit.
    config = json.loads((installed.path / "config.json").read_text())
    assert config["decoder_start_token"] == "<pad>"
    assert all("<pad>" not in out for out in outputs)


# -- 2. checkpoints without tokenizer files are refused at install --------------------------------

WEIGHTS_AND_CONFIG = ("config.json", "generation_config.json", "model.safetensors")


def _without_tokenizer(checkpoint: Path, out: Path) -> Path:
    out.mkdir(parents=True)
    for name in WEIGHTS_AND_CONFIG:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, out / name)
    return out


@pytest.mark.parametrize(
    ("family", "build", "files"),
    [
        ("t5", lambda work, sp: build_t5(work / "t5"), "spiece.model"),
        ("pegasus", lambda work, sp: build_pegasus(work / "pegasus"), "spiece.model"),
        ("bart", lambda work, sp: build_bart(work / "bart"), "vocab.json and merges.txt"),
        ("nllb", lambda work, sp: build_nllb(work / "nllb", sp).path, "sentencepiece.bpe.model"),
        ("m2m_100", lambda work, sp: build_m2m100(work / "m2m", sp).path,
         "vocab.json and sentencepiece.bpe.model"),
        ("marian", lambda work, sp: build_marian(work / "opus-mt-en-de", sp, None).path,
         "source.spm, target.spm and vocab.json"),
    ],
)
def test_checkpoint_without_tokenizer_files_is_refused_naming_them(
    family: str, build: Callable[[Path, Path], Path], files: str, tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    sp = _train_sentencepiece(tmp_path_factory.mktemp("sp") / "bpe", "bpe")
    checkpoint = build(tmp_path_factory.mktemp(f"ckpt-{family}"), sp)
    bare = _without_tokenizer(checkpoint, tmp_path / f"{family}-weights-only")
    store = _store(tmp_path)
    with pytest.raises(
        StoreError, match=rf"has no tokenizer files: a {family} checkpoint needs {files}"
    ):
        store.install(bare, InstallOptions(name="bare"))
    assert store.list() == []
    with pytest.raises(ModelNotFound):
        store.get("bare")


# -- 3. the installed precision is the precision served -------------------------------------------


@pytest.fixture(scope="module")
def pegasus(work: Path) -> Path:
    return build_pegasus(work / "pegasus")


def test_float32_install_is_served_as_float32_unless_overridden(
    pegasus: Path, sp_model: Path, tmp_path: Path
) -> None:
    store = _store(tmp_path)
    full = store.install(pegasus, InstallOptions(name="full", quantization=""))
    small = store.install(pegasus, InstallOptions(name="small"))
    install_copy_model(store.root, sp_model, "plain-ct2", "en", "de")
    assert (full.manifest.quantization, small.manifest.quantization) == ("float32", "int8")
    assert store.get("plain-ct2").manifest.quantization == ""

    def served(**flags: Any) -> dict[str, str]:
        config = load_config({"models": str(store.root), **flags}, env={})
        registry = ModelRegistry(store, config.runtime(), BatchingOptions(wait_ms=0))
        try:
            return {name: registry.acquire(name).model._translator.compute_type
                    for name in ("full", "small", "plain-ct2")}
        finally:
            registry.close(5)

    int8 = "int8_float32"  # what CTranslate2 reports for int8 weights on a CPU
    assert served() == {"full": "float32", "small": int8, "plain-ct2": int8}
    assert served(compute_type="int8") == {"full": int8, "small": int8, "plain-ct2": int8}
    assert served(compute_type="float32")["plain-ct2"] == "float32"


# -- 4. a summariser follows its checkpoint's decoding (greedy when num_beams is absent) ----------


def test_summariser_without_num_beams_decodes_greedily_like_transformers(
    work: Path, tmp_path: Path
) -> None:
    checkpoint = build_bart(work / "bart-no-beams")
    generation = json.loads((checkpoint / "generation_config.json").read_text())
    generation.pop("num_beams", None)
    (checkpoint / "generation_config.json").write_text(json.dumps(generation))
    config = json.loads((checkpoint / "config.json").read_text())
    assert "num_beams" not in config
    store = _store(tmp_path)
    installed = store.install(checkpoint, InstallOptions(name="bart-no-beams", quantization=""))
    assert installed.manifest.generation.beam_size == 1

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    hf_model = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(checkpoint)).eval()
    assert hf_model.generation_config.num_beams in (None, 1)  # unset: generate() is greedy
    registry = ModelRegistry(store, load_config({"models": str(store.root)}, env={}).runtime(),
                             BatchingOptions(wait_ms=0))
    service = Dragoman(registry)
    try:
        for text in INPUTS:
            with torch.no_grad():  # the checkpoint's own generation settings, nothing passed
                reference = hf_model.generate(tokenizer(text, return_tensors="pt").input_ids)[0]
            ids = _strip_specials(reference.tolist(), tokenizer, hf_model)
            expected = tokenizer.decode(ids, skip_special_tokens=True,
                                        clean_up_tokenization_spaces=False).strip()
            out = service.summarise(SummariseInput(
                text, language="en", method="abstractive", max_words=1000)).result(60)
            assert out.summary == expected
    finally:
        registry.close(5)


def test_marian_with_a_trained_pad_row_also_converts_quantised(
    tuned_marian: Checkpoint, tmp_path: Path
) -> None:
    """int8 weights keep the float bias that bans <pad>: the start row survives quantisation."""
    installed = _store(tmp_path).install(tuned_marian.path, InstallOptions(name="tuned-int8"))
    assert installed.manifest.quantization == "int8"
    model = Seq2SeqModel(installed.path, installed.manifest, RuntimeOptions())
    outputs = model.generate([model.encode(t, "en", "de") for t in TEXTS], model.default_options())
    assert all(out and "<pad>" not in out for out in outputs)
