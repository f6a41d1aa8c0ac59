"""The Dragoman service as plain Python: validate, route, segment, cache, batch, reassemble.

This is what the gRPC and HTTP adapters, the archive job and the Ray actors all call, and all
they call (models, shutdown included): none of them reaches into the registry. Entry points do
the cheap preparation on the calling thread and return a ``Future`` for the rest, so the
asyncio RPC layer awaits them without blocking and the batch job simply waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

from dragoman.server.access import AccessControl
from dragoman.server.batcher import Batcher, Priority
from dragoman.server.cache import SentenceCache
from dragoman.server.errors import (
    GlossaryNotFound,
    InvalidInput,
    ModelNotFound,
    Overloaded,
    Unavailable,
)
from dragoman.server.futures import chain, completed, recover, then
from dragoman.server.glossary import GlossaryStore, check_keep, check_terms
from dragoman.server.manifest import is_model_name
from dragoman.server.observability.hooks import ModelObserver
from dragoman.server.registry import Decoded, Leg, LoadedModel, ModelRegistry, Route
from dragoman.server.summarise.extractive import summarise_extractive
from dragoman.server.text.align import Alignment
from dragoman.server.text.inline import Terms
from dragoman.server.text.langdetect import Detection, detect_language, is_language_code
from dragoman.server.text.segment import SegmentedText, TextFormat, split_document
from dragoman.server.text.unicode import unicode_problem

logger = logging.getLogger(__name__)

T = TypeVar("T")

METHODS = ("auto", "extractive", "abstractive")
# A detected source language at least this likely is taken as it is, even when nothing here
# translates it; below it, the likeliest language that can be translated wins.
TRUSTED_DETECTION = 0.5


@dataclass(frozen=True)
class ServiceLimits:
    max_chars: int = 200_000
    max_in_flight: int = 512
    summary_sentences: int = 3
    beam_size: int = 0  # 0 = per-model default
    max_request_seconds: float = 0.0  # cap on one call's time in the service (0: none)


@dataclass(frozen=True)
class TranslateInput:
    text: str
    target_language: str
    source_language: str = ""
    format: TextFormat = TextFormat.PLAIN
    beam_size: int = 0
    id: str = ""
    # Installed model to use when several serve the pair; "" = the registry's choice.
    model: str = ""
    # Terms that come back verbatim, and source -> target terms the translation must use;
    # ``glossary_name`` adds a named glossary of the server's (the request's pairs win).
    keep_terms: tuple[str, ...] = ()
    glossary: tuple[tuple[str, str], ...] = ()
    glossary_name: str = ""
    # Scheduling class: interactive sentences are decoded ahead of bulk ones.
    priority: Priority = Priority.INTERACTIVE


@dataclass(frozen=True)
class TranslateOutput:
    id: str
    text: str
    source_language: str
    target_language: str
    models: tuple[str, ...]
    pivot_language: str = ""
    detected: bool = False
    sentences: int = 0
    cached_sentences: int = 0

    @property
    def model(self) -> str:
        return "+".join(self.models)


@dataclass(frozen=True)
class SummariseInput:
    text: str
    language: str = ""
    target_language: str = ""
    method: str = "auto"
    max_sentences: int = 0
    max_words: int = 0
    format: TextFormat = TextFormat.PLAIN
    id: str = ""
    # Abstractive summariser to use (implies the abstractive method); "" = the registry's choice.
    model: str = ""
    priority: Priority = Priority.INTERACTIVE  # scheduling class of its model work


@dataclass(frozen=True)
class SummariseOutput:
    id: str
    summary: str
    language: str
    target_language: str
    method: str  # "extractive" or "abstractive"
    models: tuple[str, ...]
    passes: int = 1
    sentences: int = 0

    @property
    def model(self) -> str:
        return "+".join(self.models)


@dataclass(frozen=True)
class PairInfo:
    source_language: str
    target_language: str
    models: tuple[str, ...]
    pivot_language: str = ""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    task: str
    source_languages: tuple[str, ...]
    target_languages: tuple[str, ...]
    loaded: bool


@dataclass(frozen=True)
class ModelState:
    """A model folder of the store as the server sees it (health, metrics, start-up log)."""

    name: str
    task: str  # "translate" or "summarise"; "" for a folder without a readable manifest
    loaded: bool  # in memory now
    problem: str = ""  # why it is not served ("" when it is)

    @property
    def installed(self) -> bool:
        """Whether the folder holds a readable model (it may still fail to load)."""
        return bool(self.task)


@dataclass(frozen=True)
class LanguagesInfo:
    pairs: tuple[PairInfo, ...]
    summarisation_languages: tuple[str, ...]
    models: tuple[ModelInfo, ...] = field(default=())
    extractive_summaries: bool = True


@dataclass(frozen=True)
class _Summarised:
    """A summary in the article's language, before any translation of it."""

    summary: str
    passes: int
    sentences: int
    models: tuple[str, ...]
    method: str  # "extractive" or "abstractive"


@dataclass(frozen=True)
class _Translated:
    sentences: list[str]
    cached: int
    # Word alignment of each translation to its sentence, where one was asked for.
    alignments: list[Alignment | None] | None = None


class Dragoman:
    """Translation and summarisation over the models of one registry."""

    def __init__(
        self,
        registry: ModelRegistry,
        cache: SentenceCache | None = None,
        limits: ServiceLimits = ServiceLimits(),
        access: AccessControl | None = None,
        glossaries: GlossaryStore | None = None,
    ) -> None:
        self.registry = registry
        self.glossaries = glossaries
        self.cache = cache if cache is not None else SentenceCache()
        registry.on_change(self._model_changed)
        self.limits = limits
        # Keys and quotas, shared by every adapter (they authenticate and charge through it).
        self.access = access if access is not None else AccessControl()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._closing = False
        # The first model each (source, target, model) of a request went to: adapters ask its
        # batcher whether a new call can finish in time before handing it to a worker thread.
        self._pair_models: dict[tuple[str, str, str], LoadedModel] = {}

    def _model_changed(self, name: str) -> None:
        """A model was reinstalled or removed: its cached sentences are no use any more."""
        dropped = self.cache.drop(lambda key: isinstance(key, tuple) and key[:1] == (name,))
        if dropped:
            logger.info("dropped %d cached sentences of model %s", dropped, name)

    # -- admission ------------------------------------------------------------------

    def request_deadline(self, seconds_left: float | None) -> float | None:
        """The ``time.monotonic()`` deadline of a call with ``seconds_left`` (None: the
        caller set none), capped by ``max_request_seconds``: adapters wait until it and no
        longer, and the batcher drops the call's work once it passes."""
        return self._capped(None if seconds_left is None else time.monotonic() + seconds_left)

    def refuse_if_late(
        self, source: str, target: str, model: str, deadline: float | None,
        priority: Priority = Priority.INTERACTIVE,
    ) -> None:
        """Raise Overloaded when a request for this pair (as the caller gave it) cannot be
        decoded before ``deadline``: a lock-free look-up and one estimate, cheap enough for an
        adapter's event loop, so a refusal under overload never waits for a worker thread.
        Unknown pairs and detected sources pass (``translate`` checks them again). An
        interactive call is judged by the interactive work ahead of it, not the bulk backlog."""
        if deadline is None or not source.strip():
            return
        loaded = self._pair_models.get((source.strip(), target.strip(), model.strip()))
        if loaded is not None:
            loaded.check_deadline(deadline, priority)

    def _check_time(
        self, route: Route | None, deadline: float | None,
        pair: tuple[str, str, str] | None = None, priority: Priority = Priority.INTERACTIVE,
    ) -> None:
        """Refuse (Overloaded) before any segmenting or tokenising when the first model's
        queue alone cannot be decoded before ``deadline``; the batcher checks again with the
        request's own tokens."""
        if route is None:
            return
        loaded = self.registry.loaded(route.legs[0].model)
        if loaded is None:
            return
        if pair is not None and pair[0]:
            self._pair_models[pair] = loaded
        if deadline is not None:
            loaded.check_deadline(deadline, priority)

    def _capped(self, deadline: float | None) -> float | None:
        cap = self.limits.max_request_seconds
        if cap <= 0:
            return deadline
        latest = time.monotonic() + cap
        return latest if deadline is None else min(deadline, latest)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _admit(self) -> None:
        with self._lock:
            if self._closing:
                raise Unavailable("the server is shutting down")
            if self._in_flight >= self.limits.max_in_flight:
                raise Overloaded(
                    f"{self._in_flight} documents are in flight (limit "
                    f"{self.limits.max_in_flight}); retry later"
                )
            self._in_flight += 1

    def _release(self, _: object = None) -> None:
        with self._lock:
            self._in_flight -= 1

    def _tracked(self, fn: Callable[..., Future[T]], *args: Any) -> Future[T]:
        """Run ``fn`` (which returns a future) inside the in-flight accounting."""
        self._admit()
        try:
            fut = fn(*args)
        except BaseException:
            self._release()
            raise
        fut.add_done_callback(self._release)
        return fut

    def drain(self) -> None:
        """Shutting down: refuse new work (Unavailable, which clients retry elsewhere); the
        calls in flight finish, their sentences decoded without waiting for company."""
        with self._lock:
            self._closing = True
        self.registry.drain()

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new work and stop every model's workers within ``timeout`` seconds (what
        is queued is decoded first); False when a batch was still decoding at the end
        (CTranslate2 cannot be interrupted), so the process should not wait for it."""
        with self._lock:
            self._closing = True
        return self.registry.close(timeout)

    # -- models (the adapters' and the batch job's view of the registry) ---------------

    @property
    def models_dir(self) -> Path:
        """The model store's folder."""
        return self.registry.store.root

    def model_states(self) -> list[ModelState]:
        """Every installed model, then every store folder that holds no readable model."""
        loaded = set(self.registry.loaded_names())
        problems = self.registry.broken()
        installed = self.registry.installed
        states = [ModelState(m.name, m.manifest.task, m.name in loaded, problems.get(m.name, ""))
                  for m in installed]
        names = {m.name for m in installed}
        return states + [ModelState(name, "", False, problem)
                         for name, problem in sorted(problems.items()) if name not in names]

    def batchers(self) -> list[tuple[str, Batcher]]:
        """(name, batcher) of every model loaded so far: metrics read their queues and
        counters."""
        return self.registry.batchers()

    def refresh(self) -> None:
        """Re-read the model store: serve models installed while running, retire removed or
        reinstalled ones (their cached sentences are dropped)."""
        self.registry.refresh()

    def preload(self, names: Iterable[str]) -> None:
        """Load ``names`` now and keep them loaded; one that fails is reported as broken (see
        :meth:`model_states`) and skipped."""
        self.registry.preload(names)

    def observe(self, observer: ModelObserver | None) -> None:
        """Report model loads and batches to ``observer`` (metrics)."""
        self.registry.observe(observer)

    def route(self, source: str, target: str, model: str = "") -> Route:
        """The models that would translate ``source`` -> ``target`` (ModelNotFound when none
        does): lets a caller fail before reading any input."""
        return self.registry.route(source, target, model)

    # -- validation -----------------------------------------------------------------

    def _check_text(self, text: str) -> None:
        if not text or not text.strip():
            raise InvalidInput("text is empty")
        if len(text) > self.limits.max_chars:
            raise InvalidInput(
                f"text has {len(text)} characters; the limit is {self.limits.max_chars} "
                "(split the document or raise --max-chars)"
            )
        problem = unicode_problem(text)
        if problem:
            raise InvalidInput(problem)

    @staticmethod
    def _check_language(code: str, what: str) -> str:
        code = code.strip()
        if not is_language_code(code):
            raise InvalidInput(f"{what} {code!r} is not an ISO 639-1 language code (e.g. en, de)")
        return code

    @staticmethod
    def _check_model(name: str) -> str:
        """A requested model name: "" (the registry's choice) or one the store could hold."""
        name = name.strip()
        if name and not is_model_name(name):
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise InvalidInput(
                f"model {shown!r} is not a model name (letters, digits, '.', '_' or '-', at "
                "most 128); `dragoman languages` lists the installed models"
            )
        return name

    def _source_language(self, text: str, given: str) -> tuple[str, bool]:
        if given:
            return self._check_language(given, "source language"), False
        return detect_language(text).language, True

    def _translation_source(self, text: str, given: str, target: str) -> tuple[str, bool]:
        """The source language of a text to translate into ``target``, and whether it was
        detected. A low-confidence guess that nothing here translates gives way to the
        likeliest language that can be translated: short texts score low everywhere
        ("Hello world." came out as Fula at 13%, and the call failed)."""
        if given:
            return self._source_language(text, given)
        found = detect_language(text)
        if found.confidence >= TRUSTED_DETECTION:
            return found.language, True
        sources = {s for s, _, _ in self.registry.pairs(target)}
        if not sources or found.language in sources:
            return found.language, True
        try:
            return detect_language(text, allowed=sources).language, True
        except InvalidInput:  # the detector knows none of them
            return found.language, True

    # -- detection and catalogue -----------------------------------------------------

    def detect(self, text: str) -> Detection:
        self._check_text(text)
        return detect_language(text)

    def languages(self) -> LanguagesInfo:
        self.registry.refresh()
        loaded = set(self.registry.loaded_names())
        pairs = tuple(
            PairInfo(s, t, route.models, route.pivot_language)
            for s, t, route in self.registry.pairs()
        )
        models = tuple(
            ModelInfo(
                m.name, m.manifest.task, m.manifest.source_languages,
                m.manifest.target_languages, m.name in loaded,
            )
            for m in self.registry.installed
        )
        return LanguagesInfo(pairs, tuple(self.registry.summarisation_languages()), models)

    # -- translation ----------------------------------------------------------------

    def translate(self, req: TranslateInput, deadline: float | None = None) -> Future[TranslateOutput]:
        """Translate one document; ``deadline`` is a ``time.monotonic()`` instant."""
        deadline = self._capped(deadline)
        self._check_text(req.text)
        target = self._check_language(req.target_language, "target language")
        if req.beam_size < 0 or req.beam_size > 32:
            raise InvalidInput("beam_size must be between 0 and 32")
        source, detected = self._translation_source(req.text, req.source_language, target)
        if source == target:
            return self._tracked(completed, TranslateOutput(
                req.id, req.text, source, target, (), detected=detected))
        try:
            route = self.registry.route(source, target, self._check_model(req.model))
        except ModelNotFound as exc:
            if not detected:
                raise
            raise ModelNotFound(
                f"{exc} (the source language was detected as {source}; "
                "give the source language if that is wrong)") from exc
        terms = self._terms(req, source, target)
        self._check_time(route, deadline, (
            req.source_language.strip(), req.target_language.strip(), req.model.strip()),
            req.priority)
        return self._tracked(self._translate_routed, req, route, source, target, detected,
                             deadline, terms)

    def _terms(self, req: TranslateInput, source: str, target: str) -> Terms | None:
        """The request's do-not-translate terms and glossary (with its named glossary)."""
        keep = check_keep(req.keep_terms)
        pairs = check_terms(req.glossary)
        if req.glossary_name:
            if self.glossaries is None:
                raise GlossaryNotFound("this server keeps no named glossaries")
            named = self.glossaries.get(req.glossary_name)
            if (named.source, named.target) != (source, target):
                raise InvalidInput(
                    f"glossary {named.name} is for {named.source}->{named.target}, "
                    f"this request is {source}->{target}")
            given = {s for s, _ in pairs}
            pairs = (*pairs, *((s, t) for s, t in named.terms if s not in given))
        return Terms(keep, pairs) if keep or pairs else None

    def _translate_routed(
        self, req: TranslateInput, route: Route, source: str, target: str,
        detected: bool, deadline: float | None, terms: Terms | None = None,
    ) -> Future[TranslateOutput]:
        doc = split_document(req.text, source, req.format, terms)
        beam = req.beam_size or self.limits.beam_size

        def finish(done: _Translated) -> TranslateOutput:
            return TranslateOutput(
                req.id, doc.rebuild(done.sentences, done.alignments), source, target, route.models,
                route.pivot_language, detected, len(doc.sentences), done.cached,
            )

        # Sentences with inline markup need their word alignment to put it back.
        align = [doc.markup(n) is not None for n in range(len(doc.sentence_index))]
        return then(self.translate_sentences(
            route, doc.sentences, beam, deadline, self._paragraphs(doc),
            align if any(align) else None, req.priority), finish)

    def _paragraphs(self, doc: SegmentedText) -> tuple[int, ...] | None:
        """Paragraph numbers, needed only by the per-paragraph comparison mode."""
        return doc.paragraphs() if self.registry.batching.mode == "paragraph" else None

    def translate_sentences(
        self, route: Route, sentences: Sequence[str], beam_size: int = 0,
        deadline: float | None = None, paragraphs: Sequence[int] | None = None,
        align: Sequence[bool] | None = None, priority: Priority = Priority.INTERACTIVE,
    ) -> Future[_Translated]:
        """Translate sentences through every leg of ``route`` (two legs when pivoting).

        ``paragraphs`` numbers each sentence's paragraph (see :meth:`SegmentedText.paragraphs`);
        ``align`` marks the sentences whose word alignment is wanted (pivoting composes them);
        ``priority`` is the batcher's scheduling class.
        """
        fut = self._translate_leg(route.legs[0], sentences, beam_size, deadline, paragraphs,
                                  align, priority)
        def next_leg(leg: Leg) -> Callable[[_Translated], Future[_Translated]]:
            def run(first: _Translated) -> Future[_Translated]:
                return then(
                    self._translate_leg(leg, first.sentences, beam_size, deadline, paragraphs,
                                        align, priority),
                    lambda nxt: _Translated(
                        nxt.sentences, min(first.cached, nxt.cached), _compose(first, nxt)),
                )
            return run

        for leg in route.legs[1:]:
            fut = chain(fut, next_leg(leg))
        return fut

    def _translate_leg(
        self, leg: Leg, sentences: Sequence[str], beam_size: int, deadline: float | None,
        paragraphs: Sequence[int] | None = None, align: Sequence[bool] | None = None,
        priority: Priority = Priority.INTERACTIVE,
    ) -> Future[_Translated]:
        lm = self.registry.acquire(leg.model)
        options = lm.model.default_options(beam_size)
        results: list[str | None] = [None] * len(sentences)
        # Each distinct uncached sentence is decoded once, however often it repeats.
        todo: dict[str, list[int]] = defaultdict(list)
        cached = 0
        # The install id keeps a replaced model's sentences apart (see _model_changed).
        scope = (leg.model, lm.install_id, leg.source, leg.target, options)

        def cache_key(sentence: str) -> tuple[object, ...]:
            return (*scope, sentence)  # the sentence last: SentenceCache sizes entries by it

        aligned = {s for s, wanted in zip(sentences, align or ()) if wanted}
        for i, sentence in enumerate(sentences):
            # The cache holds text only: a sentence that needs its alignment is decoded.
            hit = None if sentence in aligned else self.cache.get(cache_key(sentence))
            if hit is not None:
                results[i] = hit
                cached += 1
            else:
                todo[sentence].append(i)
        if not any(sentence.strip() for sentence in todo):
            return completed(_Translated([r or "" for r in results], cached))
        texts = list(todo)

        def assemble(outputs: list[Decoded]) -> _Translated:
            alignments: list[Alignment | None] = [None] * len(sentences)
            for sentence, out in zip(texts, outputs):
                self.cache.put(cache_key(sentence), out.text)
                for i in todo[sentence]:
                    results[i] = out.text
                    alignments[i] = out.alignment
            return _Translated([r if r is not None else "" for r in results], cached,
                               alignments if aligned else None)

        return then(lm.run(
            texts, leg.source, leg.target, options, deadline,
            groups=[paragraphs[todo[s][0]] for s in texts] if paragraphs is not None else None,
            align=[s in aligned for s in texts] if aligned else None, priority=priority,
        ), assemble)

    # -- summarisation --------------------------------------------------------------

    def summarise(self, req: SummariseInput, deadline: float | None = None) -> Future[SummariseOutput]:
        deadline = self._capped(deadline)
        self._check_text(req.text)
        if req.method not in METHODS:
            raise InvalidInput(f"method must be one of {', '.join(METHODS)}")
        if req.max_sentences < 0 or req.max_words < 0:
            raise InvalidInput("max_sentences and max_words must not be negative")
        language, _ = self._source_language(req.text, req.language)
        target = (
            self._check_language(req.target_language, "target language")
            if req.target_language else language
        )
        model = self._check_model(req.model)
        if model and req.method == "extractive":
            raise InvalidInput(
                f"the extractive method uses no model; drop model {model!r} or ask for the "
                "abstractive method"
            )
        summariser = self.registry.summariser(language, model)
        method = req.method
        if method == "auto":
            method = "abstractive" if summariser else "extractive"
        if method == "abstractive" and summariser is None:
            have = ", ".join(self.registry.summarisation_languages()) or "none"
            raise ModelNotFound(
                f"no abstractive summariser for {language!r} (installed: {have}); "
                "use the extractive method or install one with `dragoman models install`"
            )
        # Check the translation leg before summarising, so a missing model costs nothing.
        route = self.registry.route(language, target) if target != language else None
        return self._tracked(
            self._summarise_routed, req, language, target, method,
            summariser.name if summariser and method == "abstractive" else "", route, deadline,
        )

    def _summarise_routed(
        self, req: SummariseInput, language: str, target: str, method: str,
        summariser: str, route: Route | None, deadline: float | None,
    ) -> Future[SummariseOutput]:
        max_sentences = req.max_sentences or (0 if req.max_words else self.limits.summary_sentences)
        text = req.text
        if req.format is not TextFormat.PLAIN:
            text = "\n\n".join(split_document(req.text, language, req.format).sentences)
        def extractive() -> _Summarised:
            ext = summarise_extractive(text, language, max_sentences or None, req.max_words or None)
            return _Summarised(ext.text, 1, len(ext.sentences), ("extractive",), "extractive")

        if method == "extractive":
            first: Future[_Summarised] = completed(extractive())
        else:
            from dragoman.server.summarise.abstractive import summarise_abstractive

            first = then(
                summarise_abstractive(
                    self.registry.acquire(summariser), text, language, max_sentences,
                    req.max_words, deadline, priority=req.priority,
                ),
                lambda r: _Summarised(r.summary, r.passes, r.sentences, (summariser,),
                                      "abstractive"),
            )
            if req.method == "auto" and not req.model.strip():
                # The extractive ranker is the fallback the design promises: an article the
                # model cannot shorten still gets a summary when the caller did not insist
                # (naming a model insists).
                def fall_back(exc: BaseException) -> _Summarised:
                    logger.info("abstractive summary failed (%s); falling back to extractive", exc)
                    return extractive()

                first = recover(first, InvalidInput, fall_back)

        def translate(res: _Summarised) -> Future[SummariseOutput]:
            if route is None:
                return completed(SummariseOutput(req.id, res.summary, language, target,
                                                 res.method, res.models, res.passes, res.sentences))
            doc = split_document(res.summary, language)
            align = [doc.markup(n) is not None for n in range(len(doc.sentence_index))]
            return then(
                self.translate_sentences(route, doc.sentences, 0, deadline, self._paragraphs(doc),
                                         align if any(align) else None, req.priority),
                lambda done: SummariseOutput(
                    req.id, doc.rebuild(done.sentences, done.alignments), language, target,
                    res.method, res.models + route.models, res.passes, res.sentences,
                ),
            )

        return chain(first, translate)


def _compose(first: _Translated, second: _Translated) -> list[Alignment | None] | None:
    """Alignments through a pivot: source -> pivot, then pivot -> target."""
    if first.alignments is None or second.alignments is None:
        return None
    return [a.then(b) if a is not None and b is not None else None
            for a, b in zip(first.alignments, second.alignments)]
