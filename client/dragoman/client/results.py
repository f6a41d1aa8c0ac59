"""Plain result types returned by the client, decoupled from the generated protobuf classes.

Repeated fields become tuples (the dataclasses are frozen and hashable), enums become lower-case
strings, and "not set" markers such as an empty pivot language become None.
"""

from __future__ import annotations

from dataclasses import dataclass

from dragoman.client.errors import DragomanError, error_for
from dragoman.v1 import summarisation_pb2, translation_pb2

# Request-side names of the enums; the CLI offers exactly these choices.
TEXT_FORMATS: dict[str, int] = {
    "plain": translation_pb2.TEXT_FORMAT_PLAIN,
    "html": translation_pb2.TEXT_FORMAT_HTML,
    "markdown": translation_pb2.TEXT_FORMAT_MARKDOWN,
    "wrapped": translation_pb2.TEXT_FORMAT_WRAPPED,
}
SUMMARY_METHODS: dict[str, int] = {
    "auto": summarisation_pb2.SUMMARY_METHOD_UNSPECIFIED,
    "extractive": summarisation_pb2.SUMMARY_METHOD_EXTRACTIVE,
    "abstractive": summarisation_pb2.SUMMARY_METHOD_ABSTRACTIVE,
}
# Response side: the method the server actually used (it should never answer UNSPECIFIED).
_METHOD_NAMES: dict[int, str] = {
    summarisation_pb2.SUMMARY_METHOD_UNSPECIFIED: "unspecified",
    summarisation_pb2.SUMMARY_METHOD_EXTRACTIVE: "extractive",
    summarisation_pb2.SUMMARY_METHOD_ABSTRACTIVE: "abstractive",
}


def _optional(value: str) -> str | None:
    return value or None


@dataclass(frozen=True)
class DocumentError:
    """Why one document of a stream failed while the others went on."""

    # gRPC status code name, e.g. "INVALID_ARGUMENT", "NOT_FOUND".
    code: str
    message: str

    def exception(self) -> DragomanError:
        """The exception a single call would have raised for this document."""
        return error_for(self.code, self.message)


@dataclass(frozen=True)
class Translation:
    """One translated document; from `translate_many`, possibly a failed one (`error` set)."""

    id: str
    text: str
    source_language: str
    target_language: str
    # Models used joined with "+"; `models` lists them in order (two when pivoting).
    model: str
    models: tuple[str, ...]
    # The intermediate language when no direct model existed, else None.
    pivot_language: str | None
    # True when the server detected source_language rather than being told it.
    detected: bool
    sentences: int
    cached_sentences: int
    # Set only on a stream result whose document failed; the other fields are then empty.
    error: DocumentError | None = None

    @classmethod
    def from_proto(cls, message: translation_pb2.TranslateResponse) -> Translation:
        return cls(
            id=message.id,
            text=message.text,
            source_language=message.source_language,
            target_language=message.target_language,
            model=message.model,
            models=tuple(message.models),
            pivot_language=_optional(message.pivot_language),
            detected=message.detected,
            sentences=message.sentences,
            cached_sentences=message.cached_sentences,
            error=(
                DocumentError(code=message.error.code, message=message.error.message)
                if message.HasField("error")
                else None
            ),
        )


@dataclass(frozen=True)
class LanguageScore:
    """A candidate language with its probability in [0, 1]."""

    language: str
    confidence: float

    @classmethod
    def from_proto(cls, message: translation_pb2.LanguageScore) -> LanguageScore:
        return cls(language=message.language, confidence=message.confidence)


@dataclass(frozen=True)
class Detection:
    """The most likely language of a text and the runners-up, best first."""

    language: str
    confidence: float
    candidates: tuple[LanguageScore, ...]

    @classmethod
    def from_proto(cls, message: translation_pb2.DetectLanguageResponse) -> Detection:
        return cls(
            language=message.language,
            confidence=message.confidence,
            candidates=tuple(LanguageScore.from_proto(c) for c in message.candidates),
        )


@dataclass(frozen=True)
class LanguagePair:
    """A translation direction the server can serve, possibly through a pivot language."""

    source_language: str
    target_language: str
    models: tuple[str, ...]
    pivot_language: str | None

    @classmethod
    def from_proto(cls, message: translation_pb2.LanguagePair) -> LanguagePair:
        return cls(
            source_language=message.source_language,
            target_language=message.target_language,
            models=tuple(message.models),
            pivot_language=_optional(message.pivot_language),
        )


@dataclass(frozen=True)
class ModelInfo:
    """An installed model; `task` is "translate" or "summarise"."""

    name: str
    task: str
    source_languages: tuple[str, ...]
    target_languages: tuple[str, ...]
    loaded: bool

    @classmethod
    def from_proto(cls, message: translation_pb2.ModelInfo) -> ModelInfo:
        return cls(
            name=message.name,
            task=message.task,
            source_languages=tuple(message.source_languages),
            target_languages=tuple(message.target_languages),
            loaded=message.loaded,
        )


@dataclass(frozen=True)
class Languages:
    """What the server can do: translation pairs, abstractive summary languages, models."""

    pairs: tuple[LanguagePair, ...]
    summarisation_languages: tuple[str, ...]
    models: tuple[ModelInfo, ...]
    # True when extractive summaries are available in every language.
    extractive_summaries: bool

    @classmethod
    def from_proto(cls, message: translation_pb2.ListLanguagesResponse) -> Languages:
        return cls(
            pairs=tuple(LanguagePair.from_proto(p) for p in message.pairs),
            summarisation_languages=tuple(message.summarisation_languages),
            models=tuple(ModelInfo.from_proto(m) for m in message.models),
            extractive_summaries=message.extractive_summaries,
        )


@dataclass(frozen=True)
class Summary:
    """A summary of one document; `method` is "extractive" or "abstractive"."""

    id: str
    summary: str
    # Language of the article (given or detected) and of the summary.
    language: str
    target_language: str
    method: str
    model: str
    models: tuple[str, ...]
    # More than 1 when a long article was summarised in chunks and then summarised again.
    passes: int
    sentences: int

    @classmethod
    def from_proto(cls, message: summarisation_pb2.SummariseResponse) -> Summary:
        return cls(
            id=message.id,
            summary=message.summary,
            language=message.language,
            target_language=message.target_language,
            method=_METHOD_NAMES.get(message.method, f"unknown({message.method})"),
            model=message.model,
            models=tuple(message.models),
            passes=message.passes,
            sentences=message.sentences,
        )
