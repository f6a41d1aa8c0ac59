"""Tokenizers behind one small interface: text <-> token strings.

CTranslate2 works on token strings, so both kinds return pieces, not ids. SentencePiece covers
OPUS-MT, Argos, NLLB, M2M100, T5, mT5 and PEGASUS; byte-level BPE models (BART) carry a
``tokenizer.json`` that the `tokenizers` library reads without torch or transformers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol, Sequence

from dragoman.server.errors import StoreError
from dragoman.server.manifest import Tokenizer as TokenizerSpec

# Model-vocabulary markers that are not text: <...>, __de__, >>deu<<, deu_Latn.
_MARKER = re.compile(r"^(<[^<>]+>|__[A-Za-z_-]+__|>>[A-Za-z_]+<<|[a-z]{3}_[A-Z][a-z]{3})$")


class TextTokenizer(Protocol):
    def encode(self, text: str) -> list[str]: ...

    def decode(self, tokens: Sequence[str]) -> str: ...


class SentencePieceTokenizer:
    def __init__(self, model_file: Path) -> None:
        import sentencepiece as spm

        if not model_file.is_file():
            raise StoreError(f"SentencePiece model {model_file} is missing")
        self._sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self._unk = self._sp.unk_id()
        self._unk_piece = self._sp.id_to_piece(self._unk)

    def encode(self, text: str) -> list[str]:
        return self._sp.encode(text, out_type=str)

    def decode(self, tokens: Sequence[str]) -> str:
        """Pieces to text. Pieces the SentencePiece model does not know come from the model's
        own vocabulary: markers (language codes, PEGASUS' ``<unk_N>``) are dropped, other
        pieces (a shared Marian vocabulary's source-side subwords) are spelled out, where
        SentencePiece itself would garble the whole run."""
        out: list[str] = []
        run: list[str] = []

        def flush() -> None:
            if run:
                text = self._sp.decode_pieces(run)
                # decode_pieces drops the word-start space of a run; keep it mid-text.
                out.append(" " + text if out and run[0].startswith("\u2581") else text)
                run.clear()

        for t in tokens:
            if t == self._unk_piece or self._sp.piece_to_id(t) != self._unk:
                run.append(t)
            elif not _MARKER.match(t):
                flush()
                literal = t.replace("\u2581", " ")
                out.append(literal if out else literal.lstrip())
        flush()
        return "".join(out)


class HuggingFaceTokenizer:
    def __init__(self, tokenizer_file: Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:  # pragma: no cover - tokenizers is a dependency
            raise StoreError("this model needs the 'tokenizers' package") from None
        if not tokenizer_file.is_file():
            raise StoreError(f"tokenizer file {tokenizer_file} is missing")
        self._tok = Tokenizer.from_file(str(tokenizer_file))

    def encode(self, text: str) -> list[str]:
        return self._tok.encode(text, add_special_tokens=False).tokens

    def decode(self, tokens: Sequence[str]) -> str:
        ids = [self._tok.token_to_id(t) for t in tokens]
        return self._tok.decode([i for i in ids if i is not None], skip_special_tokens=True)


def load_tokenizers(model_dir: Path, spec: TokenizerSpec) -> tuple[TextTokenizer, TextTokenizer]:
    """Return (source, target) tokenizers, sharing one object when the files are the same."""
    cls = SentencePieceTokenizer if spec.type == "sentencepiece" else HuggingFaceTokenizer
    source = cls(model_dir / spec.source)
    target = source if spec.target == spec.source else cls(model_dir / spec.target)
    return source, target
