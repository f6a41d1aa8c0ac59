"""Translation families (OPUS-MT/Marian, NLLB-200, M2M100): token-exact parity with transformers.

Each family gets a tiny checkpoint built here with the real transformers classes: a
SentencePiece model trained on a few lines, the family's own tokenizer class built from it and
saved with ``save_pretrained`` (so the files are the real formats), and a 2+2-layer model from
``XConfig`` + ``XForConditionalGeneration``. Purely random weights of that size collapse into
repeating one token, which would make parity nearly vacuous, so each model is first trained for
a few hundred steps (fixed seeds) on a toy task: copy the source for one target language and
copy it through a fixed token permutation for the other. The outputs then depend on the source
and on the target language, stop with ``</s>`` by themselves, and still have the close logit
margins of a half-trained model.

The checkpoints are installed through the real install path (``ModelStore.install``, which runs
CTranslate2's converter) and once through ``dragoman models install``; greedy output ids of the
service path (``Seq2SeqModel``) and of the running gRPC server are compared with
``model.generate(num_beams=1, do_sample=False, ...)`` in transformers, float32 on both sides.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dragoman.server.errors import ModelNotFound, StoreError
from dragoman.server.langcodes import (
    NLLB_CODES,
    match_codes,
    parse_m2m100,
    parse_nllb,
    parse_opus,
    to_iso639_1,
)
from dragoman.server.manifest import read_manifest
from dragoman.server.store import InstallOptions, ModelStore

CORPUS = [
    "the cat sat on the mat",
    "a quick brown fox jumps over the lazy dog",
    "the city council approved the new budget",
    "der Hund lief schnell nach Hause",
    "ein kleines Haus am See",
    "die Kinder spielten im Garten",
    "le chat est sur la table",
    "il fait beau aujourd'hui",
    "la ville a vote le budget",
]
WORDS = sorted({w for line in CORPUS for w in line.split()})
TEXTS = ["the cat sat on the mat", "ein kleines Haus am See", "la ville a vote"]
FLOAT32 = InstallOptions(quantization=None)  # type: ignore[arg-type] - float32 weights
TRAIN_STEPS = 300
LEARNING_RATE = 0.005


# -- building tiny checkpoints -----------------------------------------------------------------


@dataclass
class Checkpoint:
    path: Path
    model: Any
    tokenizer: Any
    family: str
    # ISO 639-1 -> the token transformers uses for that language (source or target side).
    codes: dict[str, str]


def _hf() -> tuple[Any, Any]:
    torch = pytest.importorskip("torch", reason="conversion tests need torch (the convert extra)")
    transformers = pytest.importorskip(
        "transformers", reason="conversion tests need transformers (the convert extra)"
    )
    return torch, transformers


def _train_sentencepiece(prefix: Path, model_type: str) -> Path:
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4), model_prefix=str(prefix), vocab_size=120,
        model_type=model_type, character_coverage=1.0, hard_vocab_limit=False, num_threads=1,
        shuffle_input_sentence=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
    )
    return prefix.with_name(prefix.name + ".model")


def _pieces(sp_model: Path) -> list[str]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


Example = tuple[list[int], list[int]]


def _train(
    model: Any, make_example: Callable[[random.Random], Example], pad_id: int,
    after_step: Callable[[], None] = lambda: None,
) -> None:
    """A few hundred Adam steps on the toy task so greedy outputs are not degenerate."""
    torch, _ = _hf()
    torch.set_num_threads(1)  # small matrices: threads only add contention
    rng = random.Random(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    model.train()
    for _ in range(TRAIN_STEPS):
        batch = [make_example(rng) for _ in range(16)]
        width = max(len(s) for s, _ in batch)
        height = max(len(t) for _, t in batch)
        inputs = torch.tensor([s + [pad_id] * (width - len(s)) for s, _ in batch])
        labels = torch.tensor([t + [-100] * (height - len(t)) for _, t in batch])
        loss = model(input_ids=inputs, attention_mask=(inputs != pad_id).long(), labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        after_step()
    model.eval()


def _permutation(size: int, fixed: set[int], seed: int) -> dict[int, int]:
    movable = [i for i in range(size) if i not in fixed]
    shuffled = movable[:]
    random.Random(seed).shuffle(shuffled)
    return dict(zip(movable, shuffled))


def _sample_text(rng: random.Random) -> str:
    return " ".join(rng.sample(WORDS, rng.randint(2, 5)))


def _small(config_cls: Any, **kwargs: Any) -> Any:
    return config_cls(
        d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_position_embeddings=128, scale_embedding=True, dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, init_std=0.1, **kwargs,
    )


def build_marian(
    folder: Path, sp_model: Path, targets: dict[str, str] | None, *, zero_pad_row: bool = True
) -> Checkpoint:
    """An OPUS-MT style checkpoint; ``targets`` (ISO -> ``>>xxx<<``) makes it multi-target.
    ``zero_pad_row=False`` lets training move the ``<pad>`` row (the decoder start embedding),
    as fine-tuning a tied-embedding Marian model in transformers does."""
    torch, transformers = _hf()
    work = folder.parent / f".{folder.name}-files"
    work.mkdir(parents=True)
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in _pieces(sp_model):
        if piece not in vocab and piece != "<s>":
            vocab[piece] = len(vocab)
    for token in (targets or {}).values():
        vocab[token] = len(vocab)
    vocab["<pad>"] = len(vocab)
    shutil.copy(sp_model, work / "source.spm")
    shutil.copy(sp_model, work / "target.spm")
    (work / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = transformers.MarianTokenizer(
        str(work / "source.spm"), str(work / "target.spm"), str(work / "vocab.json"),
        source_lang="en", target_lang="mul" if targets else "de",
    )
    tokenizer.save_pretrained(str(folder))
    tokenizer = transformers.MarianTokenizer.from_pretrained(str(folder))
    pad = vocab["<pad>"]
    torch.manual_seed(1)
    config = _small(
        transformers.MarianConfig, vocab_size=len(vocab), activation_function="swish",
        pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=0, forced_eos_token_id=0,
    )
    model = transformers.MarianMTModel(config)
    languages = sorted(targets) if targets else ["de"]
    fixed = {0, 1, pad, *(vocab[t] for t in (targets or {}).values())}
    permuted = _permutation(len(vocab), fixed, seed=2)

    def example(rng: random.Random) -> Example:
        language = rng.choice(languages)
        prefix = f"{targets[language]} " if targets else ""
        ids = tokenizer(prefix + _sample_text(rng))["input_ids"]
        body = ids[1:-1] if targets else ids[:-1]
        out = body if language == languages[0] else [permuted.get(i, i) for i in body]
        return ids, out + [0]

    def keep_start_embedding_zero() -> None:
        # Marian decoders start from a zero embedding (CTranslate2's start_from_zero_embedding);
        # converted OPUS-MT checkpoints keep the <pad> row at zero, but the tied output
        # projection would train it.
        with torch.no_grad():
            model.model.shared.weight[pad].zero_()

    _train(model, example, pad, keep_start_embedding_zero if zero_pad_row else lambda: None)
    model.generation_config.bad_words_ids = [[pad]]  # as OPUS-MT checkpoints ship it
    model.generation_config.num_beams = 4
    model.save_pretrained(str(folder))
    return Checkpoint(folder, model, tokenizer, "marian", dict(targets or {}))


def build_nllb(folder: Path, sp_model: Path) -> Checkpoint:
    _, transformers = _hf()
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    work = folder.parent / f".{folder.name}-files"
    work.mkdir(parents=True)
    shutil.copy(sp_model, work / "sentencepiece.bpe.model")
    tokenizer = transformers.NllbTokenizer.from_pretrained(
        str(work), src_lang="eng_Latn", extra_special_tokens=list(FAIRSEQ_LANGUAGE_CODES)
    )
    tokenizer.save_pretrained(str(folder))
    # Hub NLLB checkpoints carry the SentencePiece model next to tokenizer.json.
    shutil.copy(sp_model, folder / "sentencepiece.bpe.model")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    codes = {"en": "eng_Latn", "de": "deu_Latn", "fr": "fra_Latn"}
    text_pieces = len(_pieces(sp_model)) + 1  # <s> <pad> </s> <unk>, then pieces 3.. of the model
    return _build_m2m_like(
        folder, tokenizer, codes, "nllb", len(tokenizer), "NllbTokenizer", text_pieces
    )


def build_m2m100(folder: Path, sp_model: Path) -> Checkpoint:
    _, transformers = _hf()
    work = folder.parent / f".{folder.name}-files"
    work.mkdir(parents=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for piece in _pieces(sp_model):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    (work / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    shutil.copy(sp_model, work / "sentencepiece.bpe.model")
    tokenizer = transformers.M2M100Tokenizer(
        str(work / "vocab.json"), str(work / "sentencepiece.bpe.model"), src_lang="en",
        tgt_lang="de",
    )
    tokenizer.save_pretrained(str(folder))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    codes = {"en": "__en__", "de": "__de__", "fr": "__fr__"}
    # transformers 5 keeps the language tokens out of len(tokenizer); like the released
    # M2M100 models, the embedding also has rows for the made-up words after them.
    size = max(tokenizer.lang_token_to_id.values()) + 1 + tokenizer.num_madeup_words
    return _build_m2m_like(
        folder, tokenizer, codes, "m2m100", size, "M2M100Tokenizer", len(vocab)
    )


def _build_m2m_like(
    folder: Path, tokenizer: Any, codes: dict[str, str], family: str, vocab_size: int,
    tokenizer_class: str, text_pieces: int,
) -> Checkpoint:
    torch, transformers = _hf()
    torch.manual_seed(1)
    config = _small(
        transformers.M2M100Config, vocab_size=vocab_size, activation_function="relu",
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
        forced_eos_token_id=2, tokenizer_class=tokenizer_class,
    )
    model = transformers.M2M100ForConditionalGeneration(config)
    ids = {lang: tokenizer.convert_tokens_to_ids(token) for lang, token in codes.items()}
    # Permute text pieces only: a language token in the middle of an output decodes to
    # different text in transformers 5 (M2M100's are not "special" there any more).
    assert text_pieces <= min(ids.values())
    permuted = _permutation(text_pieces, {0, 1, 2, 3}, seed=2)

    def example(rng: random.Random) -> Example:
        source, target = rng.choice(["en", "fr"]), rng.choice(["de", "fr", "en"])
        tokenizer.src_lang = codes[source] if family == "nllb" else source
        encoded = tokenizer(_sample_text(rng))["input_ids"]
        body = [i for i in encoded if i not in ids.values() and i != 2]
        out = [permuted.get(i, i) for i in body] if target == "fr" else body
        return encoded, [ids[target], *out, 2]

    _train(model, example, 1)
    model.save_pretrained(str(folder))
    return Checkpoint(folder, model, tokenizer, family, codes)


def export_marian_native(ckpt: Checkpoint, folder: Path) -> Path:
    """Write ``ckpt`` the way OPUS-MT releases models for Marian itself: ``model.npz`` (Marian
    parameter names, [in, out] matrices, YAML config inside), ``vocab.yml``, ``decoder.yml``,
    the SentencePiece models and a README naming the languages."""
    import numpy as np

    config = ckpt.model.config
    state = {k: v.detach().numpy() for k, v in ckpt.model.state_dict().items()}
    pad = config.pad_token_id
    assert pad == config.vocab_size - 1  # Marian has no <pad>: it is the extra last row
    weights: dict[str, Any] = {
        "Wemb": state["model.shared.weight"][:pad],
        "decoder_ff_logit_out_b": state["final_logits_bias"][:, :pad],
    }

    def linear(name: str, prefix: str, suffix: str) -> None:
        weights[f"{name}_W{suffix}"] = state[f"{prefix}.weight"].T.copy()
        weights[f"{name}_b{suffix}"] = state[f"{prefix}.bias"][None, :]

    def norm(name: str, prefix: str) -> None:
        weights[f"{name}_ln_scale"] = state[f"{prefix}.weight"][None, :]
        weights[f"{name}_ln_bias"] = state[f"{prefix}.bias"][None, :]

    for side, layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(layers):
            hf, marian = f"model.{side}.layers.{i}", f"{side}_l{i + 1}"
            blocks = [("self", "self_attn", "self_attn_layer_norm")]
            if side == "decoder":
                blocks.append(("context", "encoder_attn", "encoder_attn_layer_norm"))
            for name, attention, layer_norm in blocks:
                for suffix, proj in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"),
                                     ("o", "out_proj")):
                    linear(f"{marian}_{name}", f"{hf}.{attention}.{proj}", suffix)
                norm(f"{marian}_{name}_Wo", f"{hf}.{layer_norm}")
            linear(f"{marian}_ffn", f"{hf}.fc1", "1")
            linear(f"{marian}_ffn", f"{hf}.fc2", "2")
            norm(f"{marian}_ffn_ffn", f"{hf}.final_layer_norm")
    model_yml = "\n".join([
        "type: transformer", f"dim-emb: {config.d_model}", f"enc-depth: {config.encoder_layers}",
        f"dec-depth: {config.decoder_layers}", f"transformer-heads: {config.encoder_attention_heads}",
        "transformer-ffn-activation: swish", "transformer-preprocess: ''",
        "transformer-postprocess: dan", "transformer-postprocess-emb: d",
        "transformer-postprocess-top: ''", "transformer-decoder-autoreg: self-attention",
        "transformer-no-projection: false", "transformer-guided-alignment-layer: last",
        "tied-embeddings-all: true", "",
    ])
    weights["special:model.yml"] = np.frombuffer(model_yml.encode() + b"\0", dtype=np.int8)
    folder.mkdir(parents=True)
    np.savez(folder / "opus.spm.transformer.model1.npz.best-perplexity.npz", **weights)
    vocab = sorted(ckpt.tokenizer.get_vocab().items(), key=lambda item: item[1])
    (folder / "opus.spm.vocab.yml").write_text("".join(
        f"{json.dumps(token, ensure_ascii=False)}: {index}\n" for token, index in vocab
        if index != pad
    ), encoding="utf-8")
    (folder / "decoder.yml").write_text(
        "models:\n  - opus.spm.transformer.model1.npz.best-perplexity.npz\n"
        "vocabs:\n  - opus.spm.vocab.yml\n  - opus.spm.vocab.yml\n"
        "beam-size: 6\nnormalize: 0.6\nword-penalty: 0\nrelative-paths: true\n",
        encoding="utf-8",
    )
    for name in ("source.spm", "target.spm"):
        shutil.copy(ckpt.path / name, folder / name)
    (folder / "README.md").write_text(
        "# opus-2020-01-01.zip\n\n* dataset: opus\n* model: transformer\n"
        "* source language(s): eng\n* target language(s): deu fra\n"
        "* pre-processing: normalization + SentencePiece\n"
        "* a sentence initial language token is required in the form of `>>id<<`\n",
        encoding="utf-8",
    )
    return folder


# -- the transformers reference --------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    input_tokens: list[str]
    output_ids: list[int]  # without the decoder start, target-language token and </s>
    stopped: bool  # ended with </s> before the length limit

    def text(self, tokenizer: Any) -> str:
        return tokenizer.decode(self.output_ids, skip_special_tokens=True)


def hf_greedy(ckpt: Checkpoint, text: str, source: str, target: str) -> Reference:
    torch, _ = _hf()
    tok = ckpt.tokenizer
    kwargs: dict[str, Any] = {}
    if ckpt.family == "marian":
        prompt = f"{ckpt.codes[target]} {text}" if ckpt.codes else text
        input_ids = tok(prompt)["input_ids"]
        kwargs["bad_words_ids"] = [[tok.pad_token_id]]
        skip = 1
    else:
        tok.src_lang = ckpt.codes[source] if ckpt.family == "nllb" else source
        input_ids = tok(text)["input_ids"]
        kwargs["forced_bos_token_id"] = tok.convert_tokens_to_ids(ckpt.codes[target])
        skip = 2
    limit = 2 * len(input_ids) + 16  # what the service allows (Seq2SeqModel._generate)
    with torch.no_grad():
        out = ckpt.model.generate(
            torch.tensor([input_ids]), attention_mask=torch.ones(1, len(input_ids), dtype=torch.long),
            num_beams=1, do_sample=False, max_new_tokens=limit, min_new_tokens=1,
            forced_eos_token_id=None, **kwargs,
        )[0].tolist()
    if ckpt.family != "marian":
        assert out[1] == kwargs["forced_bos_token_id"]
    generated = out[skip:]
    stopped = bool(generated) and generated[-1] == tok.eos_token_id
    return Reference(
        tok.convert_ids_to_tokens(input_ids), generated[:-1] if stopped else generated, stopped
    )


def assert_not_degenerate(refs: list[Reference]) -> None:
    """The parity below would be weak on empty or one-token-repeating outputs."""
    for ref in refs:
        assert ref.stopped, "the reference output hit the length limit"
        assert len(ref.output_ids) >= 3 and len(set(ref.output_ids)) >= 3, ref
    assert len({tuple(r.output_ids) for r in refs}) == len(refs), "outputs should all differ"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("families")


@pytest.fixture(scope="module")
def unigram_sp(work: Path) -> Path:
    return _train_sentencepiece(work / "unigram", "unigram")


@pytest.fixture(scope="module")
def bpe_sp(work: Path) -> Path:
    return _train_sentencepiece(work / "bpe", "bpe")


@pytest.fixture(scope="module")
def marian(work: Path, unigram_sp: Path) -> Checkpoint:
    return build_marian(work / "opus-mt-en-de", unigram_sp, None)


@pytest.fixture(scope="module")
def marian_multi(work: Path, unigram_sp: Path) -> Checkpoint:
    return build_marian(
        work / "opus-mt-en-mul", unigram_sp, {"de": ">>deu<<", "fr": ">>fra<<"}
    )


@pytest.fixture(scope="module")
def nllb(work: Path, bpe_sp: Path) -> Checkpoint:
    return build_nllb(work / "nllb-tiny", bpe_sp)


@pytest.fixture(scope="module")
def m2m100(work: Path, bpe_sp: Path) -> Checkpoint:
    return build_m2m100(work / "m2m100-tiny", bpe_sp)


@pytest.fixture(scope="module")
def store(work: Path) -> ModelStore:
    return ModelStore(work / "store")


def _installed(store: ModelStore, ckpt: Checkpoint, **options: Any) -> Any:
    name = options.pop("name", ckpt.path.name)
    try:
        return store.get(name)
    except ModelNotFound:
        return store.install(ckpt.path, InstallOptions(quantization=None, name=name, **options))  # type: ignore[arg-type]


def _engine(installed: Any) -> Any:
    from dragoman.server.seq2seq import RuntimeOptions, Seq2SeqModel

    return Seq2SeqModel(installed.path, installed.manifest, RuntimeOptions(compute_type="float32"))


# -- language code tables ------------------------------------------------------------------------


def test_iso_codes_map_back_from_three_letter_and_individual_codes() -> None:
    assert to_iso639_1("deu") == "de"
    assert to_iso639_1("ger") == "de"
    assert to_iso639_1("arb_Arab") == "ar"
    assert to_iso639_1("zsm") == "ms"
    assert to_iso639_1("pt_BR") == "pt"
    assert to_iso639_1("ast") is None  # Asturian has no ISO 639-1 code


def test_match_codes_prefers_plain_then_standard_codes() -> None:
    tokens = [">>por<<", ">>pt_BR<<", ">>zho_Hant<<", ">>zho_Hans<<", ">>cmn_Hans<<", ">>deu<<",
              ">>ast<<", ">>mul<<"]
    codes = match_codes(c for c in map(parse_opus, tokens) if c)
    assert codes == {"pt": ">>por<<", "zh": ">>zho_Hans<<", "de": ">>deu<<"}


def test_nllb_table_covers_every_nllb_code_with_an_iso_639_1_language() -> None:
    _hf()
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    assert set(NLLB_CODES.values()) <= set(FAIRSEQ_LANGUAGE_CODES)
    codes = match_codes((c for c in map(parse_nllb, FAIRSEQ_LANGUAGE_CODES) if c), NLLB_CODES)
    assert codes == {lang: NLLB_CODES[lang] for lang in codes}
    covered = {to_iso639_1(c) for c in FAIRSEQ_LANGUAGE_CODES} - {None}
    assert covered <= set(codes)
    assert codes["de"] == "deu_Latn" and codes["zh"] == "zho_Hans" and codes["ar"] == "arb_Arab"
    assert len(codes) >= 120


def test_m2m100_codes_are_iso_639_1_except_the_three_letter_ones() -> None:
    _hf()
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

    langs = FAIRSEQ_LANGUAGE_CODES["m2m100"]
    codes = match_codes(c for c in (parse_m2m100(f"__{x}__") for x in langs) if c)
    assert codes["de"] == "__de__" and codes["zh"] == "__zh__"
    assert {"ast", "ceb", "ilo", "ns"}.isdisjoint(codes)  # no ISO 639-1 code
    assert len(codes) == len(langs) - 4


# -- Marian / OPUS-MT ------------------------------------------------------------------------------


def test_marian_manifest(store: ModelStore, marian: Checkpoint) -> None:
    m = _installed(store, marian).manifest
    assert (m.family, m.task, m.source_languages, m.target_languages) == (
        "marian", "translate", ("en",), ("de",))
    assert m.source_prefix == () and m.source_suffix == ("</s>",) and m.target_prefix == ()
    assert m.language_codes == {}
    assert (m.tokenizer.source, m.tokenizer.target) == ("source.spm", "target.spm")
    assert m.max_input_tokens == 128
    assert m.generation.beam_size == 4


def test_marian_parity_service_path(store: ModelStore, marian: Checkpoint) -> None:
    model = _engine(_installed(store, marian))
    refs = [hf_greedy(marian, text, "en", "de") for text in TEXTS]
    assert_not_degenerate(refs)
    encoded = [model.encode(text, "en", "de") for text in TEXTS]
    for enc, ref in zip(encoded, refs):
        assert list(enc.source) == ref.input_tokens
    outputs = model.generate(encoded, model.default_options(beam_size=1))  # one padded batch
    for out, ref in zip(outputs, refs):
        assert marian.tokenizer.convert_tokens_to_ids(list(out)) == ref.output_ids


def test_marian_multi_target_parity_for_two_targets(
    store: ModelStore, marian_multi: Checkpoint
) -> None:
    installed = _installed(store, marian_multi)
    m = installed.manifest
    assert m.target_languages == ("de", "fr")
    assert m.language_codes == {"de": ">>deu<<", "fr": ">>fra<<"}
    assert m.source_prefix == ("{tgt}",) and m.source_suffix == ("</s>",)
    model = _engine(installed)
    refs = {tgt: [hf_greedy(marian_multi, t, "en", tgt) for t in TEXTS] for tgt in ("de", "fr")}
    assert_not_degenerate(refs["de"] + refs["fr"])
    for tgt, expected in refs.items():
        encoded = [model.encode(text, "en", tgt) for text in TEXTS]
        assert [list(e.source) for e in encoded] == [r.input_tokens for r in expected]
        outputs = model.generate(encoded, model.default_options(beam_size=1))
        got = [marian_multi.tokenizer.convert_tokens_to_ids(list(o)) for o in outputs]
        assert got == [r.output_ids for r in expected]


def test_marian_languages_from_the_folder_name(
    work: Path, store: ModelStore, marian: Checkpoint
) -> None:
    folder = work / "opus-mt-fr-es"
    shutil.copytree(marian.path, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    del config["source_lang"], config["target_lang"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    m = store.install(folder, FLOAT32).manifest
    assert (m.name, m.source_languages, m.target_languages) == ("opus-mt-fr-es", ("fr",), ("es",))

    anonymous = work / "my-model"
    folder.rename(anonymous)
    with pytest.raises(StoreError, match="say them with --source"):
        store.install(anonymous, FLOAT32)
    m = store.install(
        anonymous, InstallOptions(quantization=None, source_languages=("it",),  # type: ignore[arg-type]
                                  target_languages=("pt",))
    ).manifest
    assert (m.name, m.source_languages, m.target_languages) == ("my-model", ("it",), ("pt",))


def test_marian_multi_target_refuses_unknown_target(
    store: ModelStore, marian_multi: Checkpoint
) -> None:
    with pytest.raises(StoreError, match="no language token for es; it can write de, fr"):
        store.install(marian_multi.path, InstallOptions(
            quantization=None, name="refused", target_languages=("de", "es")))  # type: ignore[arg-type]
    m = store.install(marian_multi.path, InstallOptions(
        quantization=None, name="only-fr", target_languages=("fr",))).manifest  # type: ignore[arg-type]
    assert m.target_languages == ("fr",) and m.language_codes == {"fr": ">>fra<<"}


def test_native_marian_parity(work: Path, store: ModelStore, marian_multi: Checkpoint) -> None:
    folder = export_marian_native(marian_multi, work / "opus-2020-01-01-en-mul")
    installed = store.install(folder, FLOAT32)
    m = installed.manifest
    assert (m.family, m.source_languages, m.target_languages) == ("marian", ("en",), ("de", "fr"))
    assert m.language_codes == {"de": ">>deu<<", "fr": ">>fra<<"}
    # CTranslate2's Marian converter sets add_source_eos: the manifest must not add </s> again.
    assert m.source_prefix == ("{tgt}",) and m.source_suffix == ()
    assert (m.generation.beam_size, m.generation.length_penalty) == (6, 0.6)
    model = _engine(installed)
    for tgt in ("de", "fr"):
        refs = [hf_greedy(marian_multi, text, "en", tgt) for text in TEXTS]
        encoded = [model.encode(text, "en", tgt) for text in TEXTS]
        assert [[*e.source, "</s>"] for e in encoded] == [r.input_tokens for r in refs]
        outputs = model.generate(encoded, model.default_options(beam_size=1))
        got = [marian_multi.tokenizer.convert_tokens_to_ids(list(o)) for o in outputs]
        assert got == [r.output_ids for r in refs]


# -- NLLB-200 and M2M100 ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["nllb", "m2m100"])
def test_multilingual_manifest(
    family: str, store: ModelStore, request: pytest.FixtureRequest
) -> None:
    ckpt: Checkpoint = request.getfixturevalue(family)
    m = _installed(store, ckpt).manifest
    assert m.family == family and m.task == "translate"
    assert m.target_prefix == ("{tgt}",)
    assert m.source_prefix == ("{src}",) and m.source_suffix == ("</s>",)
    for lang, token in ckpt.codes.items():
        assert m.language_codes[lang] == token
    assert set(m.source_languages) == set(m.target_languages) == set(m.language_codes)
    assert m.max_input_tokens == 128
    if family == "nllb":
        assert len(m.source_languages) >= 120 and m.language_codes["zh"] == "zho_Hans"
        # transformers 5 runs NLLB on tokenizer.json, so the service does too.
        assert m.tokenizer.type == "huggingface" and m.tokenizer.source == "tokenizer.json"
    else:
        assert len(m.source_languages) == 96 and "ast" not in m.source_languages
        assert m.tokenizer.type == "sentencepiece"
        assert m.tokenizer.source == "sentencepiece.bpe.model"


@pytest.mark.parametrize("family", ["nllb", "m2m100"])
def test_multilingual_parity_service_path(
    family: str, store: ModelStore, request: pytest.FixtureRequest
) -> None:
    ckpt: Checkpoint = request.getfixturevalue(family)
    model = _engine(_installed(store, ckpt))
    cases = [(src, tgt) for src in ("en", "fr") for tgt in ("de", "fr", "en") if src != tgt]
    refs = {case: [hf_greedy(ckpt, text, *case) for text in TEXTS] for case in cases}
    assert_not_degenerate(refs[("en", "de")] + refs[("en", "fr")])
    for (src, tgt), expected in refs.items():
        encoded = [model.encode(text, src, tgt) for text in TEXTS]
        assert [list(e.source) for e in encoded] == [r.input_tokens for r in expected]
        assert all(e.target_prefix == (ckpt.codes[tgt],) for e in encoded)
        outputs = model.generate(encoded, model.default_options(beam_size=1))
        got = [ckpt.tokenizer.convert_tokens_to_ids(list(o)) for o in outputs]
        assert got == [r.output_ids for r in expected], (src, tgt)


def test_checkpoint_in_the_hugging_face_cache_is_named_after_its_repo(
    work: Path, store: ModelStore, m2m100: Checkpoint
) -> None:
    snapshot = work / "hub" / "models--facebook--m2m100_418M" / "snapshots" / ("0" * 40)
    shutil.copytree(m2m100.path, snapshot)
    assert store.install(snapshot, FLOAT32).name == "m2m100_418M"


def test_multilingual_languages_can_be_restricted(store: ModelStore, nllb: Checkpoint) -> None:
    m = store.install(nllb.path, InstallOptions(
        quantization=None, name="nllb-en-de", source_languages=("en",),  # type: ignore[arg-type]
        target_languages=("de", "fr"),
    )).manifest
    assert (m.source_languages, m.target_languages) == (("en",), ("de", "fr"))
    assert m.language_codes == {"en": "eng_Latn", "de": "deu_Latn", "fr": "fra_Latn"}
    with pytest.raises(StoreError, match="has no language token for tlh; it knows af, "):
        store.install(nllb.path, InstallOptions(
            quantization=None, name="nllb-klingon", target_languages=("tlh",)))  # type: ignore[arg-type]


def test_nllb_legacy_behaviour_moves_the_language_token_to_the_end(
    work: Path, store: ModelStore, nllb: Checkpoint
) -> None:
    _, transformers = _hf()
    folder = work / "nllb-legacy"
    shutil.copytree(nllb.path, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["legacy_behaviour"] = True
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    installed = store.install(folder, FLOAT32)
    m = installed.manifest
    assert m.source_prefix == () and m.source_suffix == ("</s>", "{src}")
    legacy = Checkpoint(folder, nllb.model, transformers.AutoTokenizer.from_pretrained(str(folder)),
                        "nllb", nllb.codes)
    ref = hf_greedy(legacy, TEXTS[0], "en", "de")
    assert ref.input_tokens[-2:] == ["</s>", "eng_Latn"]
    model = _engine(installed)
    enc = model.encode(TEXTS[0], "en", "de")
    assert list(enc.source) == ref.input_tokens
    out = model.generate([enc], model.default_options(beam_size=1))[0]
    assert legacy.tokenizer.convert_tokens_to_ids(list(out)) == ref.output_ids


# -- the real CLI and the running server ------------------------------------------------------------


def test_cli_install_then_server_translate_matches_transformers(
    work: Path, marian_multi: Checkpoint, nllb: Checkpoint, m2m100: Checkpoint,
    capsys: pytest.CaptureFixture[str],
) -> None:
    grpc = pytest.importorskip("grpc")
    from dragoman.client.cli import main
    from dragoman.server.config import load_config
    from dragoman.server.rpc.app import ServerThread, build_service
    from dragoman.v1 import translation_pb2, translation_pb2_grpc

    cases = {
        marian_multi.path.name: [("en", "de"), ("en", "fr")],
        nllb.path.name: [("en", "de"), ("fr", "en")],
        m2m100.path.name: [("en", "fr"), ("fr", "de")],
    }
    for ckpt in (marian_multi, nllb, m2m100):
        # One store (and server) per model: all three serve en->de, and routing would pick one.
        store_dir = work / f"cli-store-{ckpt.family}"
        code = main(["models", "install", str(ckpt.path), "--quantization", "float32",
                     "--models", str(store_dir)])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert ckpt.path.name in out
        assert read_manifest(store_dir / ckpt.path.name).family == ckpt.family
        config = load_config(
            {"models": str(store_dir), "address": "127.0.0.1:0", "compute_type": "float32"},
            env={},
        )
        with (
            ServerThread(build_service(config), config) as server,
            grpc.insecure_channel(server.address) as channel,
        ):
            stub = translation_pb2_grpc.TranslationServiceStub(channel)
            for src, tgt in cases[ckpt.path.name]:
                for text in TEXTS:
                    ref = hf_greedy(ckpt, text, src, tgt)
                    reply = stub.Translate(translation_pb2.TranslateRequest(
                        text=text, source_language=src, target_language=tgt, beam_size=1,
                    ), timeout=30)
                    assert list(reply.models) == [ckpt.path.name]
                    assert reply.text == ref.text(ckpt.tokenizer), (ckpt.family, src, tgt)
                    assert reply.text.strip()


def test_decoder_shape_is_read_from_a_converted_marian_model(store: ModelStore, marian: Checkpoint) -> None:
    # Marian ties the output projection to the embeddings: model.bin stores it as an alias.
    from dragoman.server.memory import read_shape

    installed = _installed(store, marian)
    shape = read_shape(installed.path)
    vocab = json.loads((installed.path / "shared_vocabulary.json").read_text())
    assert shape is not None
    assert (shape.vocabulary, shape.decoder_layers, shape.d_model) == (len(vocab), 2, 32)
