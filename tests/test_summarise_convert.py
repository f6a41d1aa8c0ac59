"""Hugging Face summarisers converted through the real store path, checked against transformers.

Tiny random-weight BART, T5 and PEGASUS checkpoints are built here (no downloads): tokenizers
are trained offline (byte-level BPE for BART, SentencePiece for T5/PEGASUS), the models made
with ``from_config`` and saved with ``save_pretrained``. After ``ModelStore.install`` the
service must feed CTranslate2 the very ids transformers feeds the model and, decoding
greedily, produce the same summary.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="converting checkpoints needs torch (the convert extra)")
transformers = pytest.importorskip("transformers", reason="converting checkpoints needs transformers (the convert extra)")

import grpc

from dragoman.server.batcher import BatchingOptions
from dragoman.server.errors import StoreError
from dragoman.server.registry import ModelRegistry
from dragoman.server.seq2seq import RuntimeOptions
from dragoman.server.service import Dragoman, SummariseInput
from dragoman.server.store import InstalledModel, InstallOptions, ModelStore
from dragoman.server.summarise.abstractive import summarise_abstractive
from dragoman.v1 import summarisation_pb2 as spb
from dragoman.v1 import summarisation_pb2_grpc as spb_grpc
from tests.conftest import server_config
from tests.support.sentences import COPY_CORPUS

MAX_LENGTH = 14  # generation_config.max_length of every checkpoint (decoder start included)
MIN_LENGTH = 3
WINDOW = 128  # max_position_embeddings of BART/PEGASUS
INPUTS = [
    "The city council approved the new budget on Tuesday evening.",
    "Heavy rain is expected across the north of the country this weekend. Prices rose by 12%.",
    "Scientists have discovered a new species of frog in the rainforest.",
]
SMALL = {"d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 2,
         "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
         "max_position_embeddings": WINDOW}


def _randomise(model: Any, seed: int, std: float = 1.0) -> None:
    """Large random weights: default initialisation makes tiny decoders repeat one token,
    which would make parity trivially true."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.copy_(torch.randn(param.shape, generator=generator) * std)


def _generation_config(model: Any, **extra: Any) -> None:
    model.generation_config.update(
        num_beams=1, max_length=MAX_LENGTH, min_length=MIN_LENGTH, no_repeat_ngram_size=0, **extra)


def _train_sentencepiece(prefix: Path) -> Path:
    """A SentencePiece model with T5/PEGASUS ids: <pad>=0, </s>=1, <unk>=2, no <s>."""
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(COPY_CORPUS), model_prefix=str(prefix), vocab_size=500,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False, num_threads=1,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )
    return prefix.with_suffix(".model")


def build_bart(out: Path, *, eos_eager: bool = False) -> Path:
    """BART with a byte-level BPE trained here. ``eos_eager``: the decoder always prefers
    ``</s>`` (one hidden unit is constant and feeds only the ``</s>`` logit), so output
    length is decided by ``min_length`` alone."""
    from tokenizers import ByteLevelBPETokenizer

    vocab_dir = out.parent / f"{out.name}-bpe"
    vocab_dir.mkdir(parents=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(COPY_CORPUS, vocab_size=600, min_frequency=1, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(vocab_dir))
    tokenizer = transformers.BartTokenizerFast.from_pretrained(str(vocab_dir))
    config = transformers.BartConfig(vocab_size=len(tokenizer), tie_word_embeddings=not eos_eager, **SMALL)
    model = transformers.BartForConditionalGeneration(config).eval()
    _randomise(model, seed=4)
    if eos_eager:
        with torch.no_grad():
            norm = model.model.decoder.layers[-1].final_layer_norm
            norm.weight[0], norm.bias[0] = 0.0, 1.0
            model.lm_head.weight[:, 0] = 0.0
            model.lm_head.weight[tokenizer.eos_token_id, 0] = 200.0
    # As facebook/bart-large-cnn: the first generated token is forced to <s>.
    _generation_config(model, forced_bos_token_id=tokenizer.bos_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_t5(out: Path) -> Path:
    """T5 with its summarisation settings under task_specific_params, as t5-small has them."""
    out.mkdir(parents=True)
    sp_model = _train_sentencepiece(out.parent / f"{out.name}-spiece")
    shutil.copy2(sp_model, out / "spiece.model")
    tokenizer = transformers.T5Tokenizer.from_pretrained(str(out), extra_ids=0)
    config = transformers.T5Config(
        vocab_size=len(tokenizer), d_model=32, d_ff=64, d_kv=16, num_layers=2, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
        task_specific_params={"summarization": {
            "prefix": "summarize: ", "num_beams": 1, "max_length": MAX_LENGTH,
            "min_length": MIN_LENGTH, "no_repeat_ngram_size": 0, "length_penalty": 2.0}},
    )
    model = transformers.T5ForConditionalGeneration(config).eval()
    _randomise(model, seed=2)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_pegasus(out: Path) -> Path:
    out.mkdir(parents=True)
    sp_model = _train_sentencepiece(out.parent / f"{out.name}-spiece")
    shutil.copy2(sp_model, out / "spiece.model")
    tokenizer = transformers.PegasusTokenizer.from_pretrained(str(out))
    config = transformers.PegasusConfig(
        vocab_size=len(tokenizer), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **SMALL)
    model = transformers.PegasusForConditionalGeneration(config).eval()
    _randomise(model, seed=3)
    _generation_config(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@dataclass(frozen=True)
class Converted:
    checkpoint: Path
    installed: InstalledModel


FAMILIES = ("bart", "t5", "pegasus")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Converted]:
    """Each family built, then installed through ``ModelStore.install`` unquantised."""
    work = tmp_path_factory.mktemp("checkpoints")
    store = ModelStore(tmp_path_factory.mktemp("summarisers") / "models")
    builders = {"bart": build_bart, "t5": build_t5, "pegasus": build_pegasus,
                "bart-eos": lambda p: build_bart(p, eos_eager=True)}
    out = {}
    for family, build in builders.items():
        checkpoint = build(work / family)
        installed = store.install(checkpoint, InstallOptions(name=f"tiny-{family}", quantization="float32"))
        out[family] = Converted(checkpoint, installed)
    return out


@pytest.fixture(scope="module")
def registry(converted: dict[str, Converted]):  # type: ignore[no-untyped-def]
    store = ModelStore(converted["bart"].installed.path.parent)
    reg = ModelRegistry(store, RuntimeOptions(compute_type="float32"), BatchingOptions(wait_ms=0))
    yield reg
    reg.close(5)


def _hf(checkpoint: Path) -> tuple[Any, Any]:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(checkpoint)).eval()
    return tokenizer, model


def _strip_specials(ids: list[int], tokenizer: Any, model: Any) -> list[int]:
    """Generated ids without the decoder start token, a forced first token and the final ``</s>``."""
    assert ids[0] == model.config.decoder_start_token_id
    ids = ids[1:]
    forced = model.generation_config.forced_bos_token_id
    if forced is not None:
        assert ids[0] == forced
        ids = ids[1:]
    return ids[:-1] if ids and ids[-1] == tokenizer.eos_token_id else ids


# -- manifests --------------------------------------------------------------------------------


def test_bart_manifest(converted: dict[str, Converted]) -> None:
    m = converted["bart"].installed.manifest
    assert (m.task, m.family, m.source_languages, m.target_languages) == ("summarise", "bart", ("en",), ("en",))
    assert (m.tokenizer.type, m.tokenizer.source) == ("huggingface", "tokenizer.json")
    assert (m.source_prefix, m.source_suffix, m.target_prefix, m.text_prefix) == (("<s>",), ("</s>",), ("<s>",), "")
    assert m.max_input_tokens == WINDOW
    g = m.generation
    # BART forces </s> at max_length, so one more position is reserved for it.
    assert (g.beam_size, g.max_decoding_length, g.min_decoding_length) == (1, MAX_LENGTH - 2, MIN_LENGTH - 1)
    assert (converted["bart"].installed.path / "tokenizer.json").is_file()


def test_t5_manifest_reads_task_specific_params(converted: dict[str, Converted]) -> None:
    m = converted["t5"].installed.manifest
    assert (m.family, m.source_languages) == ("t5", ("en",))
    assert (m.tokenizer.type, m.tokenizer.source) == ("sentencepiece", "spiece.model")
    assert (m.source_prefix, m.source_suffix, m.text_prefix) == ((), ("</s>",), "summarize: ")
    assert m.max_input_tokens == 512  # T5Config's n_positions
    g = m.generation
    assert (g.beam_size, g.length_penalty) == (1, 2.0)
    assert (g.max_decoding_length, g.min_decoding_length) == (MAX_LENGTH - 1, MIN_LENGTH - 1)


def test_pegasus_manifest(converted: dict[str, Converted]) -> None:
    m = converted["pegasus"].installed.manifest
    assert (m.family, m.tokenizer.type, m.tokenizer.source) == ("pegasus", "sentencepiece", "spiece.model")
    assert (m.source_prefix, m.source_suffix, m.text_prefix) == ((), ("</s>",), "")
    assert m.max_input_tokens == WINDOW


# -- parity with transformers -----------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_summary_ids_equal_transformers_generate(
    family: str, converted: dict[str, Converted], registry: ModelRegistry,
) -> None:
    checkpoint, installed = converted[family].checkpoint, converted[family].installed
    tokenizer, hf_model = _hf(checkpoint)
    lm = registry.acquire(installed.name)
    options = lm.model.default_options()
    assert (options.beam_size, options.no_repeat_ngram_size) == (1, 0)
    outputs = []
    for text in INPUTS:
        encoded = lm.model.encode(text, "en", "en")
        hf_input = tokenizer(installed.manifest.text_prefix + text).input_ids
        assert tokenizer.convert_tokens_to_ids(list(encoded.source)) == hf_input
        (ours,) = lm.batcher.submit([encoded], options)
        ours_ids = tokenizer.convert_tokens_to_ids(list(ours.result(30)))
        with torch.no_grad():
            reference = hf_model.generate(
                torch.tensor([hf_input]), num_beams=1, do_sample=False, no_repeat_ngram_size=0,
                max_length=MAX_LENGTH, min_length=MIN_LENGTH,
            )[0].tolist()
        assert ours_ids == _strip_specials(reference, tokenizer, hf_model)
        outputs.append(tuple(ours_ids))
    # Degenerate output (one token repeated for every input) would make parity meaningless.
    assert len(set(outputs)) == len(INPUTS) and max(len(set(o)) for o in outputs) > 2


def test_bart_summary_text_equals_transformers(converted: dict[str, Converted], registry: ModelRegistry) -> None:
    """The service's summary (abstractive path, no length cut) is transformers' decoded text."""
    checkpoint, installed = converted["bart"].checkpoint, converted["bart"].installed
    tokenizer, hf_model = _hf(checkpoint)
    lm = registry.acquire(installed.name)
    service = Dragoman(registry)
    for text in INPUTS:
        with torch.no_grad():
            reference = hf_model.generate(
                tokenizer(text, return_tensors="pt").input_ids, num_beams=1, do_sample=False,
                no_repeat_ngram_size=0, max_length=MAX_LENGTH, min_length=MIN_LENGTH)[0]
        expected = tokenizer.decode(reference, skip_special_tokens=True, clean_up_tokenization_spaces=False).strip()
        direct = summarise_abstractive(lm, text, "en", 0, 0, None).result(30)
        assert (direct.summary, direct.passes) == (expected, 1)
        out = service.summarise(SummariseInput(text, language="en", method="abstractive", max_words=1000)).result(30)
        assert (out.summary, out.models, out.passes, out.method) == (expected, (installed.name,), 1, "abstractive")


def test_min_and_max_length_map_to_the_same_output_lengths(
    converted: dict[str, Converted], registry: ModelRegistry,
) -> None:
    """A decoder that always prefers </s> stops exactly where min_length lets it."""
    checkpoint, installed = converted["bart-eos"].checkpoint, converted["bart-eos"].installed
    tokenizer, hf_model = _hf(checkpoint)
    lm = registry.acquire(installed.name)
    for min_length in (MIN_LENGTH, 6, MAX_LENGTH):
        defaults = lm.model.default_options()
        options = replace(defaults, min_decoding_length=min(min_length - 1, defaults.max_decoding_length))
        hf_input = tokenizer(INPUTS[0]).input_ids
        (ours,) = lm.batcher.submit([lm.model.encode(INPUTS[0], "en", "en")], options)
        with torch.no_grad():
            reference = hf_model.generate(
                torch.tensor([hf_input]), num_beams=1, do_sample=False, no_repeat_ngram_size=0,
                max_length=MAX_LENGTH, min_length=min_length)[0].tolist()
        ours_ids = tokenizer.convert_tokens_to_ids(list(ours.result(30)))
        assert ours_ids == _strip_specials(reference, tokenizer, hf_model)
        # Both count the forced <s> (a target prefix here) as part of the length.
        assert len(ours_ids) == min(min_length - 1, MAX_LENGTH - 2) - len(installed.manifest.target_prefix)


# -- options ----------------------------------------------------------------------------------


def test_mt5_needs_languages(converted: dict[str, Converted], tmp_path: Path) -> None:
    checkpoint = tmp_path / "mt5"
    shutil.copytree(converted["t5"].checkpoint, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config.update(model_type="mt5", architectures=["MT5ForConditionalGeneration"])
    config.pop("task_specific_params")
    (checkpoint / "config.json").write_text(json.dumps(config))
    store = ModelStore(tmp_path / "models")
    with pytest.raises(StoreError, match=r"mt5 checkpoints are multilingual: say which languages"):
        store.install(checkpoint, InstallOptions(quantization="float32"))
    installed = store.install(checkpoint, InstallOptions(
        name="tiny-mt5", source_languages=("de", "fr"), quantization="int8"))
    m = installed.manifest
    assert (m.family, m.source_languages, m.target_languages, m.text_prefix) == ("mt5", ("de", "fr"), ("de", "fr"), "")


def test_summarisers_cannot_be_installed_as_translators(converted: dict[str, Converted], tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="installed as summarisers, not 'translate'"):
        ModelStore(tmp_path / "models").install(
            converted["bart"].checkpoint, InstallOptions(task="translate", quantization="float32"))


# -- through the running server ----------------------------------------------------------------


def test_abstractive_summary_over_grpc_names_the_model(converted: dict[str, Converted]) -> None:
    from dragoman.server.rpc.app import ServerThread, build_service

    store = converted["bart"].installed.path.parent
    config = server_config(store)
    article = "\n\n".join(" ".join(COPY_CORPUS[i:i + 5]) for i in range(0, 40, 5))
    with ServerThread(build_service(config), config) as running, \
            grpc.insecure_channel(running.address) as channel:
        stub = spb_grpc.SummarisationServiceStub(channel)
        short = stub.Summarise(spb.SummariseRequest(
            id="s", text=INPUTS[0], language="en",
            method=spb.SUMMARY_METHOD_ABSTRACTIVE), timeout=60)
        long = stub.Summarise(spb.SummariseRequest(
            id="l", text=article, language="en", max_sentences=2,
            method=spb.SUMMARY_METHOD_ABSTRACTIVE), timeout=60)
    # Summarisers are picked by name among those for the language: tiny-bart comes first.
    for resp in (short, long):
        assert resp.method == spb.SUMMARY_METHOD_ABSTRACTIVE
        assert (resp.model, list(resp.models)) == ("tiny-bart", ["tiny-bart"])
        assert resp.passes >= 1 and resp.summary
    assert short.passes == 1
    assert long.passes > 1  # the article is several times the 128-token window
    assert 1 <= long.sentences <= 2
