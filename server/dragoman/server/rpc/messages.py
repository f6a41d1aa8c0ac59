"""Protobuf messages <-> the service facade's dataclasses, for the gRPC servicers and the
HTTP adapter's own JSON API (model conversion is ``dragoman.server.convert``)."""

from __future__ import annotations

from dragoman.server.batcher import Priority
from dragoman.server.service import (
    LanguagesInfo,
    SummariseInput,
    SummariseOutput,
    TranslateInput,
    TranslateOutput,
)
from dragoman.server.text.langdetect import Detection
from dragoman.server.text.segment import TextFormat
from dragoman.v1 import summarisation_pb2 as spb
from dragoman.v1 import translation_pb2 as pb

_FORMATS: dict[int, TextFormat] = {
    pb.TEXT_FORMAT_UNSPECIFIED: TextFormat.PLAIN,
    pb.TEXT_FORMAT_PLAIN: TextFormat.PLAIN,
    pb.TEXT_FORMAT_HTML: TextFormat.HTML,
    pb.TEXT_FORMAT_MARKDOWN: TextFormat.MARKDOWN,
    pb.TEXT_FORMAT_WRAPPED: TextFormat.WRAPPED,
}
_METHODS_IN = {
    spb.SUMMARY_METHOD_UNSPECIFIED: "auto",
    spb.SUMMARY_METHOD_EXTRACTIVE: "extractive",
    spb.SUMMARY_METHOD_ABSTRACTIVE: "abstractive",
}
_METHODS_OUT = {
    "extractive": spb.SUMMARY_METHOD_EXTRACTIVE,
    "abstractive": spb.SUMMARY_METHOD_ABSTRACTIVE,
}


def priority(value: int, default: Priority) -> Priority:
    """The scheduling class a request asks for; unspecified is the RPC's ``default``."""
    from dragoman.server.errors import InvalidInput

    if value == pb.PRIORITY_UNSPECIFIED:
        return default
    if value == pb.PRIORITY_INTERACTIVE:
        return Priority.INTERACTIVE
    if value == pb.PRIORITY_BULK:
        return Priority.BULK
    raise InvalidInput(f"unknown priority {value}")


def text_format(value: int) -> TextFormat:
    from dragoman.server.errors import InvalidInput

    try:
        return _FORMATS[value]
    except KeyError:
        raise InvalidInput(f"unknown text format {value}") from None


def translate_input(
    req: pb.TranslateRequest, default: Priority = Priority.INTERACTIVE
) -> TranslateInput:
    """``default`` is the priority of a request that gives none (bulk for streams)."""
    return TranslateInput(
        text=req.text,
        target_language=req.target_language,
        source_language=req.source_language,
        format=text_format(req.format),
        beam_size=req.beam_size,
        id=req.id,
        model=req.model,
        keep_terms=tuple(req.keep_terms),
        glossary=tuple((e.source, e.target) for e in req.glossary),
        glossary_name=req.glossary_name,
        priority=priority(req.priority, default),
    )


def translate_response(out: TranslateOutput) -> pb.TranslateResponse:
    return pb.TranslateResponse(
        id=out.id,
        text=out.text,
        source_language=out.source_language,
        target_language=out.target_language,
        model=out.model,
        models=list(out.models),
        pivot_language=out.pivot_language,
        detected=out.detected,
        sentences=out.sentences,
        cached_sentences=out.cached_sentences,
    )


def summarise_input(req: spb.SummariseRequest) -> SummariseInput:
    from dragoman.server.errors import InvalidInput

    if req.method not in _METHODS_IN:
        raise InvalidInput(f"unknown summary method {req.method}")
    return SummariseInput(
        text=req.text,
        language=req.language,
        target_language=req.target_language,
        method=_METHODS_IN[req.method],
        max_sentences=req.max_sentences,
        max_words=req.max_words,
        format=text_format(req.format),
        id=req.id,
        model=req.model,
        priority=priority(req.priority, Priority.INTERACTIVE),
    )


def summarise_response(out: SummariseOutput) -> spb.SummariseResponse:
    return spb.SummariseResponse(
        id=out.id,
        summary=out.summary,
        language=out.language,
        target_language=out.target_language,
        method=_METHODS_OUT[out.method],
        model=out.model,
        models=list(out.models),
        passes=out.passes,
        sentences=out.sentences,
    )


def detect_response(det: Detection) -> pb.DetectLanguageResponse:
    return pb.DetectLanguageResponse(
        language=det.language,
        confidence=det.confidence,
        candidates=[pb.LanguageScore(language=c.language, confidence=c.confidence)
                    for c in det.candidates],
    )


def languages_response(info: LanguagesInfo) -> pb.ListLanguagesResponse:
    return pb.ListLanguagesResponse(
        pairs=[
            pb.LanguagePair(source_language=p.source_language, target_language=p.target_language,
                            models=list(p.models), pivot_language=p.pivot_language)
            for p in info.pairs
        ],
        summarisation_languages=list(info.summarisation_languages),
        models=[
            pb.ModelInfo(name=m.name, task=m.task, source_languages=list(m.source_languages),
                         target_languages=list(m.target_languages), loaded=m.loaded)
            for m in info.models
        ],
        extractive_summaries=info.extractive_summaries,
    )
