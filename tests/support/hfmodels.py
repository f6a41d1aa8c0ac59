"""A tiny random OPUS-MT (Marian) checkpoint laid out like a Hub repository, for the download
tests: the real transformers classes save it (so the formats are real), and the repository also
carries the files a conversion must not download (TensorFlow, Flax and Rust weights, a
PyTorch .bin next to the safetensors, an ONNX folder). Random weights: it proves the wiring
(download -> convert -> load -> translate); exactness is tested in test_families.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

JUNK = {
    "pytorch_model.bin": 3000,  # safetensors is preferred
    "tf_model.h5": 4000,
    "flax_model.msgpack": 5000,
    "rust_model.ot": 6000,
    "onnx/encoder_model.onnx": 7000,
    ".gitattributes": 100,
}


def build_tiny_marian(folder: Path, sp_model: Path, *, source: str = "de", target: str = "en",
                      seed: int = 1) -> Path:
    import torch
    import transformers

    work = folder.parent / f".{folder.name}-files"
    work.mkdir(parents=True)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    vocab = {"</s>": 0, "<unk>": 1}
    for i in range(sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        if piece not in vocab and piece != "<s>":
            vocab[piece] = len(vocab)
    vocab["<pad>"] = len(vocab)
    shutil.copy(sp_model, work / "source.spm")
    shutil.copy(sp_model, work / "target.spm")
    (work / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = transformers.MarianTokenizer(
        str(work / "source.spm"), str(work / "target.spm"), str(work / "vocab.json"),
        source_lang=source, target_lang=target,
    )
    tokenizer.save_pretrained(str(folder))
    shutil.rmtree(work)
    pad = vocab["<pad>"]
    torch.manual_seed(seed)
    config = transformers.MarianConfig(
        vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_position_embeddings=64, scale_embedding=True,
        activation_function="swish", pad_token_id=pad, decoder_start_token_id=pad,
        eos_token_id=0, forced_eos_token_id=0,
    )
    model = transformers.MarianMTModel(config)
    with torch.no_grad():
        model.model.shared.weight[pad].zero_()  # as OPUS-MT checkpoints ship it
    model.generation_config.bad_words_ids = [[pad]]
    model.generation_config.max_length = 32
    model.save_pretrained(str(folder))
    (folder / "README.md").write_text(
        f"# opus-mt-{source}-{target}\n\n* source language(s): {source}\n"
        f"* target language(s): {target}\n", encoding="utf-8")
    for name, size in JUNK.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"\1" * size)
    return folder
