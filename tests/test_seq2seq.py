"""Engine details that protect whole batches: output length capped by the decoder's position
table, CTranslate2's own input truncation switched off."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import sentencepiece as spm

from dragoman.server.manifest import Manifest, Tokenizer, write_manifest
from dragoman.server.seq2seq import CAP_STEP, MIN_CAP, RuntimeOptions, Seq2SeqModel
from tests.support.copymodel import build_copy_model


def _model(tmp: Path, sp_model: Path, positions: int, manifest_positions: int) -> Seq2SeqModel:
    folder = build_copy_model(tmp / "m", sp_model, quantization=None, max_positions=positions)
    shutil.copy2(sp_model, folder / "sentencepiece.model")
    manifest = Manifest(
        "cap", "translate", ("en",), ("de",),
        tokenizer=Tokenizer("sentencepiece", "sentencepiece.model", "sentencepiece.model"),
        max_input_tokens=positions - 2, max_output_tokens=manifest_positions,
    )
    write_manifest(folder, manifest)
    return Seq2SeqModel(folder, manifest, RuntimeOptions(compute_type="float32", intra_threads=1))


def _sentence(sp_model: Path, tokens: int) -> str:
    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    words = "the council approved the budget and the minister said prices rose".split()
    text = ""
    i = 0
    while len(sp.encode(text + " " + words[i % len(words)])) < tokens:
        text = (text + " " + words[i % len(words)]).strip()
        i += 1
    return text


def test_output_length_is_capped_by_decoder_positions(tmp_path: Path, sp_model: Path) -> None:
    model = _model(tmp_path, sp_model, positions=64, manifest_positions=64)
    text = _sentence(sp_model, 56)
    encoded = model.encode(text, "en", "de")
    assert model.fits(text) and 2 * len(encoded.source) + 16 > 64
    out = model.generate([encoded], model.default_options(beam_size=1))
    assert model.decode(out[0]) == text


class _Spy:
    """Records the keyword arguments of translate_batch calls."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls: list[dict[str, object]] = []

    def translate_batch(self, *args: object, **kwargs: object) -> object:
        self.calls.append(kwargs)
        return self.inner.translate_batch(*args, **kwargs)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.mark.parametrize(("positions", "expected"), [(64, 63), (0, None)])
def test_decoding_length_passed_to_ctranslate2(
    tmp_path: Path, sp_model: Path, positions: int, expected: int | None
) -> None:
    model = _model(tmp_path, sp_model, positions=64, manifest_positions=positions)
    spy = _Spy(model._translator)
    model._translator = spy  # type: ignore[assignment]
    encoded = model.encode(_sentence(sp_model, 56), "en", "de")
    model.generate([encoded], model.default_options(beam_size=1))
    derived = max(MIN_CAP, -(-(2 * len(encoded.source) + 16) // CAP_STEP) * CAP_STEP)
    assert spy.calls[0]["max_decoding_length"] == (expected or derived)
    assert spy.calls[0]["max_input_length"] == 0


def test_article_length_mix_is_one_beam_search_call(tmp_path: Path, sp_model: Path) -> None:
    """Sentences of 4 to 110 tokens share one cap, so beam search decodes them in one
    CTranslate2 call (it was one call per 32-token length class: 2-3 smaller calls per batch)."""
    model = _model(tmp_path, sp_model, positions=512, manifest_positions=512)
    spy = _Spy(model._translator)
    model._translator = spy  # type: ignore[assignment]
    texts = [_sentence(sp_model, n) for n in (4, 12, 25, 40, 60, 85, 110)]
    batch = [model.encode(text, "en", "de") for text in texts]
    assert len({2 * len(e.source) // CAP_STEP for e in batch}) > 3  # several length classes
    out = model.generate(batch, model.default_options(beam_size=4))
    assert [model.decode(o) for o in out] == texts
    assert len(spy.calls) == 1
    assert spy.calls[0]["max_decoding_length"] == MIN_CAP


def test_no_input_truncation(tmp_path: Path, sp_model: Path) -> None:
    """CTranslate2 would cut inputs at 1024 tokens by default; the engine turns that off."""
    folder = build_copy_model(tmp_path / "m", sp_model, quantization=None, max_positions=1100)
    shutil.copy2(sp_model, folder / "sentencepiece.model")
    manifest = Manifest(
        "long", "translate", ("en",), ("de",),
        tokenizer=Tokenizer("sentencepiece", "sentencepiece.model", "sentencepiece.model"),
        max_input_tokens=1100, max_output_tokens=0,
    )
    model = Seq2SeqModel(folder, replace(manifest), RuntimeOptions(compute_type="float32", intra_threads=1))
    text = _sentence(sp_model, 1050)
    encoded = model.encode(text, "en", "de")
    assert len(encoded.source) > 1024
    out = model.generate([encoded], replace(model.default_options(beam_size=1), max_decoding_length=1100))
    assert model.decode(out[0]) == text
