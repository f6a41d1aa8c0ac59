"""The offline-built test models behave as the rest of the suite relies on."""

from __future__ import annotations

import json
import random
import zipfile
from collections.abc import Callable
from pathlib import Path

import ctranslate2
import pytest
import sentencepiece as spm

from tests.support.argospackage import build_argos_package
from tests.support.copymodel import build_copy_model, swapcase_mapping
from tests.support.randommodel import build_random_model
from tests.support.sentences import COPY_CORPUS
from tests.support.spmodels import sentencepiece_pieces, train_sentencepiece

PREFIXES = ["__de__", "__en__"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tinymodels")


@pytest.fixture(scope="module")
def sp_model(workdir: Path) -> Path:
    return train_sentencepiece(COPY_CORPUS, workdir / "sp" / "spm")


@pytest.fixture(scope="module")
def sp(sp_model: Path) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(sp_model))


@pytest.fixture(scope="module")
def sources(sp: spm.SentencePieceProcessor) -> list[list[str]]:
    return [sp.encode(line, out_type=str) for line in COPY_CORPUS[::3]]


@pytest.fixture(scope="module")
def copy_models(workdir: Path, sp_model: Path) -> dict[str, Path]:
    return {q: build_copy_model(workdir / f"copy-{q}", sp_model, quantization=q) for q in ("int8", "float32")}


@pytest.fixture(scope="module")
def swapcase_model(workdir: Path, sp_model: Path) -> Path:
    return build_copy_model(workdir / "swapcase", sp_model, mapping=swapcase_mapping(sp_model))


@pytest.fixture(scope="module")
def prefix_model(workdir: Path, sp_model: Path) -> Path:
    return build_copy_model(workdir / "prefix", sp_model, target_prefix_tokens=PREFIXES)


@pytest.fixture(scope="module")
def random_model(workdir: Path, sp_model: Path) -> Path:
    return build_random_model(workdir / "random", sp_model)


def _translator(model: Path, **options: object) -> ctranslate2.Translator:
    """One thread: these tiny models gain nothing from more, and the test machine is shared."""
    return ctranslate2.Translator(str(model), intra_threads=1, **options)


def _random_pieces(sp_model: Path, count: int, seed: int) -> list[str]:
    pieces = [p for p in sentencepiece_pieces(sp_model) if p not in ("<unk>", "<s>", "</s>")]
    rng = random.Random(seed)
    return [rng.choice(pieces) for _ in range(count)]


def _scored_pieces(sp_model: Path) -> list[tuple[str, float]]:
    processor = spm.SentencePieceProcessor(model_file=str(sp_model))
    return [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]


def test_sentencepiece_training_is_deterministic_and_case_symmetric(workdir: Path, sp_model: Path) -> None:
    again = train_sentencepiece(COPY_CORPUS, workdir / "sp-again" / "spm")
    assert _scored_pieces(again) == _scored_pieces(sp_model)
    pieces = sentencepiece_pieces(sp_model)
    assert len(pieces) == 300
    assert pieces[:3] == ["<unk>", "<s>", "</s>"]
    mapping = swapcase_mapping(sp_model)
    moved = [p for p in pieces if mapping(p) != p]
    assert len(moved) > len(pieces) // 2
    assert all(mapping(mapping(p)) == p for p in pieces)


def test_sentencepiece_training_needs_text(workdir: Path) -> None:
    with pytest.raises(ValueError, match="non-empty line"):
        train_sentencepiece(["", "  "], workdir / "empty" / "spm")


@pytest.mark.parametrize("quantization", ["int8", "float32"])
@pytest.mark.parametrize("compute_type", ["int8", "float32"])
@pytest.mark.parametrize("beam_size", [1, 2, 4])
def test_copy_model_echoes_mixed_batches(
    copy_models: dict[str, Path], sources: list[list[str]], quantization: str, compute_type: str, beam_size: int
) -> None:
    translator = _translator(copy_models[quantization], compute_type=compute_type)
    results = translator.translate_batch(sources, beam_size=beam_size, max_batch_size=7)
    assert [r.hypotheses[0] for r in results] == sources


@pytest.mark.parametrize("beam_size", [1, 4])
def test_copy_model_echoes_long_inputs_up_to_max_positions(
    copy_models: dict[str, Path], sp_model: Path, sources: list[list[str]], beam_size: int
) -> None:
    long, longest = _random_pieces(sp_model, 400, seed=1), _random_pieces(sp_model, 512, seed=2)
    translator = _translator(copy_models["int8"])
    batch = [long, sources[0], longest]
    results = translator.translate_batch(batch, beam_size=beam_size, max_decoding_length=600)
    assert [r.hypotheses[0] for r in results] == batch


def test_copy_model_rejects_inputs_beyond_max_positions(copy_models: dict[str, Path], sp_model: Path) -> None:
    translator = _translator(copy_models["int8"])
    with pytest.raises(RuntimeError, match="position encodings"):
        translator.translate_batch([_random_pieces(sp_model, 513, seed=3)], max_decoding_length=600)


def test_copy_model_output_is_capped_by_default_max_decoding_length(
    copy_models: dict[str, Path], sp_model: Path
) -> None:
    pieces = _random_pieces(sp_model, 300, seed=4)
    result = _translator(copy_models["int8"]).translate_batch([pieces])[0]
    assert result.hypotheses[0] == pieces[:256]


def test_copy_model_returns_unknown_pieces_as_unk_or_replaced(
    copy_models: dict[str, Path], sp: spm.SentencePieceProcessor
) -> None:
    pieces = sp.encode("Hallo 你好 world", out_type=str)
    translator = _translator(copy_models["int8"])
    result = translator.translate_batch([pieces])[0]
    assert result.hypotheses[0] == ["<unk>" if sp.piece_to_id(p) == sp.unk_id() else p for p in pieces]
    assert "<unk>" in result.hypotheses[0]
    replaced = translator.translate_batch([pieces], replace_unknowns=True, beam_size=2)[0]
    assert replaced.hypotheses[0] == pieces


@pytest.mark.parametrize("beam_size", [1, 3])
def test_swapcase_model_maps_every_piece(
    swapcase_model: Path, sp_model: Path, sources: list[list[str]], beam_size: int
) -> None:
    mapping = swapcase_mapping(sp_model)
    results = _translator(swapcase_model).translate_batch(sources, beam_size=beam_size)
    assert [r.hypotheses[0] for r in results] == [[mapping(p) for p in s] for s in sources]


def test_swapcase_model_swaps_the_case_of_fully_paired_text(
    swapcase_model: Path, sp_model: Path, sp: spm.SentencePieceProcessor
) -> None:
    mapping = swapcase_mapping(sp_model)
    text = "The weather today is sunny with a light wind from the west."
    pieces = sp.encode(text, out_type=str)
    assert all(mapping(p) != p or p.swapcase() == p for p in pieces)
    result = _translator(swapcase_model).translate_batch([pieces])[0]
    assert sp.decode(result.hypotheses[0]) == text.swapcase()


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (lambda p: p if p in ("<unk>", "<s>", "</s>") else "▁the", "bijection"),
        (lambda p: "</s>" if p == "<unk>" else ("<unk>" if p == "</s>" else p), "special token"),
        (lambda p: p + "#", "not in the vocabulary"),
    ],
)
def test_copy_model_rejects_bad_mappings(
    workdir: Path, sp_model: Path, mapping: Callable[[str], str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_copy_model(workdir / "bad-mapping", sp_model, mapping=mapping)


def test_copy_model_refuses_a_non_empty_directory(copy_models: dict[str, Path], sp_model: Path) -> None:
    with pytest.raises(FileExistsError, match="not empty"):
        build_copy_model(copy_models["int8"], sp_model)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_prefix_model_copies_after_the_prefix(prefix_model: Path, sources: list[list[str]], beam_size: int) -> None:
    # Prefix tokens inside the source, even as its last piece, are copied like any other.
    batch = sources + [sources[0] + ["__de__"], ["__en__"] + sources[1], ["__de__"]]
    prefixes = [[PREFIXES[i % 2]] for i in range(len(batch))]
    results = _translator(prefix_model).translate_batch(
        batch, target_prefix=prefixes, beam_size=beam_size, max_batch_size=5
    )
    assert [r.hypotheses[0] for r in results] == [p + s for p, s in zip(prefixes, batch, strict=True)]


def test_prefix_model_without_prefix_gives_no_translation(prefix_model: Path, sources: list[list[str]]) -> None:
    translator = _translator(prefix_model)
    assert [r.hypotheses[0] for r in translator.translate_batch(sources[:4])] == [["<unk>"]] * 4
    results = translator.translate_batch(sources[:4], min_decoding_length=0)
    assert [r.hypotheses[0] for r in results] == [[]] * 4


def test_small_vocabulary_with_prefix_tokens_from_sentencepiece(workdir: Path) -> None:
    lines = [line.lower() for line in COPY_CORPUS[:60]]
    sp_model = train_sentencepiece(lines, workdir / "sp-small" / "spm", vocab_size=100, user_defined_symbols=["__fr__"])
    model = build_copy_model(workdir / "prefix-small", sp_model, target_prefix_tokens=["__fr__"])
    vocabulary = json.loads((model / "shared_vocabulary.json").read_text(encoding="utf-8"))
    assert vocabulary == sentencepiece_pieces(sp_model)
    assert len(vocabulary) <= 100  # the one-hot token code path
    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    batch = [sp.encode(line, out_type=str) for line in lines[::5]]
    results = _translator(model).translate_batch(batch, target_prefix=[["__fr__"]] * len(batch), beam_size=2)
    assert [r.hypotheses[0] for r in results] == [["__fr__"] + pieces for pieces in batch]


def test_copy_model_with_large_vocabulary_uses_dense_codes(
    workdir: Path, sp_model: Path, sources: list[list[str]]
) -> None:
    languages = [f"__l{i}__" for i in range(1500)]
    mapping = swapcase_mapping(sp_model)
    model = build_copy_model(workdir / "dense", sp_model, mapping=mapping, target_prefix_tokens=languages)
    batch = sources + [sources[2] + [languages[5]]]
    prefixes = [[languages[i * 13]] for i in range(len(batch))]
    results = _translator(model).translate_batch(batch, target_prefix=prefixes, beam_size=2)
    expected = [p + [mapping(x) for x in s] for p, s in zip(prefixes, batch, strict=True)]
    assert [r.hypotheses[0] for r in results] == expected
    missing = _translator(model).translate_batch(sources[:3], min_decoding_length=0)
    assert [r.hypotheses[0] for r in missing] == [[]] * 3


@pytest.mark.parametrize("beam_size", [1, 2])
def test_random_model_ends_with_the_source(
    random_model: Path, sp_model: Path, sources: list[list[str]], beam_size: int
) -> None:
    batch = sources[:6] + [_random_pieces(sp_model, 1, seed=5), _random_pieces(sp_model, 70, seed=6)]
    results = _translator(random_model).translate_batch(batch, beam_size=beam_size)
    outputs = [r.hypotheses[0] for r in results]
    assert [len(o) for o in outputs] == [len(s) for s in batch]
    assert outputs != batch
    vocabulary = set(sentencepiece_pieces(sp_model)) - {"<unk>", "<s>", "</s>"}
    assert all(set(o) <= vocabulary for o in outputs)


def test_random_model_has_opus_mt_shape(random_model: Path, sp_model: Path) -> None:
    config = json.loads((random_model / "config.json").read_text(encoding="utf-8"))
    assert config["add_source_eos"] is True
    # 6+6 layers at d_model 512 / FFN 2048 hold ~44M weights: ~44 MB in int8.
    assert 40e6 < (random_model / "model.bin").stat().st_size < 60e6


def test_random_model_is_reproducible_and_pads_vocabulary(workdir: Path, sp_model: Path) -> None:
    def small(name: str, seed: int) -> Path:
        return build_random_model(
            workdir / name, sp_model, layers=1, d_model=128, heads=2, ffn=256, max_positions=256,
            vocab_size=2000, seed=seed,
        )

    first, second, other = small("rnd-a", 7), small("rnd-b", 7), small("rnd-c", 8)
    assert (first / "model.bin").read_bytes() == (second / "model.bin").read_bytes()
    assert (first / "model.bin").read_bytes() != (other / "model.bin").read_bytes()
    vocabulary = json.loads((first / "shared_vocabulary.json").read_text(encoding="utf-8"))
    assert len(vocabulary) == 2000 and vocabulary[:300] == sentencepiece_pieces(sp_model)
    pieces = _random_pieces(sp_model, 40, seed=9)
    output = _translator(first).translate_batch([pieces], beam_size=3)[0].hypotheses[0]
    assert len(output) == 40 and not any(p.startswith("<extra_") for p in output)


def test_random_model_rejects_too_many_positions_for_its_heads(workdir: Path, sp_model: Path) -> None:
    with pytest.raises(ValueError, match="head_dim"):
        build_random_model(workdir / "rnd-bad", sp_model, d_model=128, heads=4, max_positions=1024)


def test_argos_package_layout_and_model(
    workdir: Path, sp_model: Path, copy_models: dict[str, Path], sources: list[list[str]]
) -> None:
    package = build_argos_package(
        workdir / "pkg" / "en_de.argosmodel", sp_model, copy_models["int8"], "en", "de", target_prefix="__de__"
    )
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        model_files = sorted(p.name for p in copy_models["int8"].iterdir())
        assert {n.split("/")[0] for n in names} == {"translate-en_de-1_0"}
        assert set(names) == {
            "translate-en_de-1_0/",
            "translate-en_de-1_0/metadata.json",
            "translate-en_de-1_0/README.md",
            "translate-en_de-1_0/sentencepiece.model",
            "translate-en_de-1_0/model/",
            *(f"translate-en_de-1_0/model/{f}" for f in model_files),
        }
        metadata = json.loads(archive.read("translate-en_de-1_0/metadata.json"))
        archive.extractall(workdir / "installed")
    assert metadata == {
        "package_version": "1.0",
        "argos_version": "1.0",
        "from_code": "en",
        "from_name": "English",
        "to_code": "de",
        "to_name": "German",
        "type": "translate",
        "links": [],
        "target_prefix": "__de__",
    }
    root = workdir / "installed" / "translate-en_de-1_0"
    assert (root / "sentencepiece.model").read_bytes() == sp_model.read_bytes()
    results = _translator(root / "model").translate_batch(sources[:3])
    assert [r.hypotheses[0] for r in results] == sources[:3]


def test_argos_package_needs_a_ctranslate2_folder(workdir: Path, sp_model: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model.bin"):
        build_argos_package(workdir / "pkg" / "bad.argosmodel", sp_model, workdir, "en", "de", name="bad")
