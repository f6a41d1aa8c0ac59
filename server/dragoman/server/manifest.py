"""The manifest that sits in every model folder of the store (``dragoman.json``).

It records what seq2seq.py needs to drive a model correctly without knowing its family in
code paths above the engine: which languages it serves and under which model-specific codes
(NLLB's ``deu_Latn``, M2M100's ``__de__``, OPUS-MT's ``>>deu<<``), which tokens go before and
after the source and into the target prefix, the tokenizer files, a text prefix (T5's
``summarize: ``), the input window and default generation settings.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from dragoman.server.errors import StoreError

MANIFEST_NAME = "dragoman.json"
SCHEMA_VERSION = 1

Task = Literal["translate", "summarise"]
TASKS: tuple[str, ...] = ("translate", "summarise")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def is_model_name(name: str) -> bool:
    """Whether ``name`` could name an installed model (requests naming one are checked)."""
    return bool(_NAME_RE.match(name))


@dataclass(frozen=True)
class Generation:
    """Default decoding settings of a model; requests may override some of them."""

    beam_size: int = 4
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    min_decoding_length: int = 1
    # 0 = derived from the input length (translation) so output is never cut short.
    max_decoding_length: int = 0


@dataclass(frozen=True)
class Tokenizer:
    """Tokenizer files, relative to the model folder.

    ``sentencepiece``: ``source`` and ``target`` SentencePiece models (often the same file).
    ``huggingface``: a ``tokenizer.json`` for the `tokenizers` library (byte-level BPE models
    such as BART that have no SentencePiece model).
    """

    type: Literal["sentencepiece", "huggingface"] = "sentencepiece"
    source: str = "sentencepiece.model"
    target: str = "sentencepiece.model"


@dataclass(frozen=True)
class Manifest:
    """Everything Dragoman knows about one installed model."""

    name: str
    task: Task
    source_languages: tuple[str, ...]
    target_languages: tuple[str, ...]
    family: str = "generic"
    tokenizer: Tokenizer = field(default_factory=Tokenizer)
    # ISO 639-1 code -> the model's own code, substituted for {src} / {tgt} below.
    language_codes: dict[str, str] = field(default_factory=dict)
    # Token templates; "{src}" and "{tgt}" are replaced by the model's language codes.
    source_prefix: tuple[str, ...] = ()
    source_suffix: tuple[str, ...] = ()
    target_prefix: tuple[str, ...] = ()
    # Prepended to the text before tokenising (T5: "summarize: ").
    text_prefix: str = ""
    # Longest source (in tokens, prefix and suffix included) the model accepts.
    max_input_tokens: int = 512
    # Decoder position table size (0 = unknown/unbounded, e.g. T5's relative positions);
    # outputs are capped below it, since going past it fails the whole CTranslate2 batch.
    max_output_tokens: int = 0
    generation: Generation = field(default_factory=Generation)
    # CTranslate2 quantization the weights were converted to ("float32", "int8", ...): the
    # server loads the model at this precision unless --compute-type says otherwise. "" = not
    # recorded (Argos packages, folders installed as they are): loaded as int8.
    quantization: str = ""
    description: str = ""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise StoreError(
                f"invalid model name {self.name!r}: use letters, digits, '.', '_' or '-'"
            )
        if self.task not in TASKS:
            raise StoreError(f"model {self.name}: task must be one of {TASKS}, not {self.task!r}")
        if not self.source_languages or not self.target_languages:
            raise StoreError(f"model {self.name}: source and target languages are required")
        if self.max_input_tokens < 8:
            raise StoreError(f"model {self.name}: max_input_tokens must be at least 8")
        for path in (self.tokenizer.source, self.tokenizer.target):
            if not is_relative_inside(path):
                raise StoreError(
                    f"model {self.name}: tokenizer file {path!r} is outside the model folder"
                )

    def code(self, language: str) -> str:
        """The model's own code for an ISO 639-1 language code."""
        return self.language_codes.get(language, language)

    def pairs(self) -> list[tuple[str, str]]:
        """Every (source, target) pair this model serves."""
        if self.task == "summarise":
            return [(lang, lang) for lang in self.source_languages]
        return [
            (src, tgt)
            for src in self.source_languages
            for tgt in self.target_languages
            if src != tgt
        ]

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        try:
            data = dict(data)
            version = int(data.get("schema_version", SCHEMA_VERSION))
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"manifest schema {version} is newer than this Dragoman understands "
                    f"({SCHEMA_VERSION}); upgrade Dragoman"
                )
            data["tokenizer"] = Tokenizer(**data.get("tokenizer", {}))
            data["generation"] = Generation(**data.get("generation", {}))
            for key in ("source_languages", "target_languages", "source_prefix",
                        "source_suffix", "target_prefix"):
                if key in data:
                    data[key] = tuple(data[key])
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"bad manifest: {exc}") from exc

    def with_name(self, name: str) -> Manifest:
        return replace(self, name=name)


def is_relative_inside(path: str) -> bool:
    """True for a plain relative path that stays inside its folder ("a/b", not "../b" or "/b")."""
    if not path or "\\" in path or ":" in path:
        return False
    pure = PurePosixPath(path)
    return not pure.is_absolute() and ".." not in pure.parts


def check_confined(model_dir: Path, manifest: Manifest) -> None:
    """Refuse a model folder whose files resolve outside it (a symlink planted after install).

    The manifest's paths are checked lexically when it is built; this follows links on disk, so
    neither the tokenizers nor CTranslate2 ever read a file outside the model's folder."""
    root = model_dir.resolve()
    names = {manifest.tokenizer.source, manifest.tokenizer.target, "model.bin", "config.json"}
    for name in sorted(names):
        path = model_dir / name
        if not os.path.lexists(path):
            continue
        real = Path(os.path.realpath(path))
        if root not in real.parents:
            raise StoreError(
                f"{path} resolves to {real}, outside the model folder; refusing to load it"
            )


def read_manifest(model_dir: Path) -> Manifest:
    """The folder's manifest, checked: its paths (and what they resolve to) stay inside."""
    path = model_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{model_dir} has no {MANIFEST_NAME}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise StoreError(f"{path} must hold a JSON object")
    manifest = Manifest.from_dict(data)
    check_confined(model_dir, manifest)
    return manifest


def read_json_object(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON settings file (config.json, generation_config.json, ...): {} when
    absent, a StoreError naming the file when unreadable or not a JSON object."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise StoreError(f"{path} must hold a JSON object")
    return data


def write_manifest(model_dir: Path, manifest: Manifest) -> Path:
    from dragoman.server.atomicfile import write_atomic

    path = model_dir / MANIFEST_NAME
    write_atomic(path, manifest.to_json().encode("utf-8"))
    return path


@dataclass(frozen=True)
class InstallOptions:
    """What the user tells ``models install`` where the source does not say it itself."""

    name: str | None = None
    task: str | None = None
    source_languages: tuple[str, ...] = ()
    target_languages: tuple[str, ...] = ()
    quantization: str = "int8"
    force: bool = False
    # Replaces the text prefix a converter would pick (T5: "summarize: "); None keeps it.
    text_prefix: str | None = None
