"""Which model serves which pair, and which models are in memory.

Routing speaks ISO 639-1 only: a direct model for the pair wins (bilingual before
multilingual unless configured otherwise); failing that, two legs through a pivot language
(English by default) when both exist. Models load on first use and the least recently used
one is unloaded when a count or size budget would be exceeded; preloaded models stay. A
loaded model is the one way sentences go through CTranslate2 (:meth:`LoadedModel.run`:
encode, one batcher submission, decode), for translations and summaries alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

from dragoman.server.batcher import Batcher, BatchingOptions, Priority
from dragoman.server.errors import InvalidInput, ModelNotFound, StoreError
from dragoman.server.futures import gather, then
from dragoman.server.observability.hooks import ModelObserver
from dragoman.server.seq2seq import DecodingOptions, Encoded, RuntimeOptions, Seq2SeqModel
from dragoman.server.store import InstalledModel, ModelStore
from dragoman.server.text.align import Alignment, joined, word_alignment
from dragoman.server.text.segment import joiner, split_to_fit

logger = logging.getLogger(__name__)

# How often a request naming an unknown model may make the registry re-read the store.
STORE_REREAD_SECONDS = 1.0


@dataclass(frozen=True)
class RoutingOptions:
    prefer: str = "bilingual"  # or "multilingual"
    pivot_language: str = "en"  # "" disables pivoting
    max_loaded_models: int = 0  # 0 = no limit
    max_loaded_bytes: int = 0  # 0 = no limit; estimated from model.bin sizes


@dataclass(frozen=True)
class Leg:
    model: str
    source: str
    target: str


@dataclass(frozen=True)
class Route:
    legs: tuple[Leg, ...]
    pivot_language: str = ""

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(leg.model for leg in self.legs)


@dataclass(frozen=True)
class Decoded:
    """One text through a model: what it decoded to and, where asked for, the word alignment
    of that output to the text (None when the model's attention cannot give one)."""

    text: str
    alignment: Alignment | None = None


@dataclass
class LoadedModel:
    model: Seq2SeqModel
    batcher: Batcher
    install_id: tuple[int, int] = (0, 0)  # the install it was loaded from (see InstalledModel)

    def run(
        self, texts: Sequence[str], source: str, target: str, options: DecodingOptions,
        deadline: float | None = None, *, groups: Sequence[int] | None = None,
        align: Sequence[bool] | None = None, priority: int = Priority.INTERACTIVE,
    ) -> Future[list[Decoded]]:
        """Encode ``texts``, queue them in one batcher submission (batched with other
        requests' sentences) and decode the outputs: one :class:`Decoded` per text, in order.

        A text longer than the model's window goes in pieces (:func:`split_to_fit`), decoded
        and joined again, so nothing is cut; blank pieces are not decoded. ``groups`` gives
        each text's paragraph (the batcher's "paragraph" mode), ``align`` marks the texts whose
        word alignment is wanted, ``deadline`` (``time.monotonic()``) and ``priority`` go to
        the batcher. Raises what :meth:`Batcher.submit` raises (Overloaded, Unavailable);
        cancelling the future drops the sentences still queued.
        """
        model = self.model
        encoded: list[Encoded] = []
        owners: list[int] = []  # the text each encoded piece belongs to
        for n, text in enumerate(texts):
            for piece in [text] if model.fits(text) else split_to_fit(text, model.fits):
                if piece.strip():
                    one = model.encode(piece.strip(), source, target)
                    encoded.append(replace(one, align=True) if align and align[n] else one)
                    owners.append(n)
        futures = self.batcher.submit(
            encoded, options, deadline,
            groups=[groups[n] for n in owners] if groups is not None else None, priority=priority)
        glue = joiner(target)

        def assemble(outputs: list[tuple[str, ...]]) -> list[Decoded]:
            parts: list[list[str]] = [[] for _ in texts]
            pieces: list[list[Alignment | None]] = [[] for _ in texts]
            for n, tokens, one in zip(owners, outputs, encoded):
                parts[n].append(model.decode(tokens))
                if one.align:
                    pieces[n].append(_piece_alignment(model, one, tokens))
            return [
                Decoded(glue.join(p for p in parts[n] if p),
                        joined(pieces[n]) if align and align[n] and glue else None)
                for n in range(len(texts))
            ]

        return then(gather(futures), assemble)

    def check_deadline(self, deadline: float, priority: int = Priority.INTERACTIVE) -> None:
        """Raise Overloaded when the work queued ahead of a ``priority`` call cannot be
        decoded before ``deadline`` (see :meth:`Batcher.check_deadline`)."""
        self.batcher.check_deadline(deadline, priority=priority)


def _piece_alignment(model: Seq2SeqModel, encoded: Encoded, tokens: Sequence[str]) -> Alignment | None:
    """Word alignment of one decoded piece, from the attention the model returned."""
    attention = getattr(tokens, "attention", None)
    if attention is None or len(attention) == 0 or model.manifest.text_prefix:
        return None
    first = len(model.manifest.source_prefix)
    last = len(encoded.source) - len(model.manifest.source_suffix)
    return word_alignment(encoded.source[first:last], tokens, attention)


class ModelRegistry:
    def __init__(
        self,
        store: ModelStore,
        runtime: RuntimeOptions = RuntimeOptions(),
        batching: BatchingOptions = BatchingOptions(),
        routing: RoutingOptions = RoutingOptions(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._clock = clock  # when the store was last read (tests pass a fake one)
        self.runtime = runtime
        self.batching = batching
        self.routing = routing
        self._installed: dict[str, InstalledModel] = {}
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._pinned: set[str] = set()
        # Models that failed to load and folders without a readable manifest, with the reason:
        # not served, reported (log, health), never allowed to stop the healthy ones.
        self._broken: dict[str, str] = {}
        self._unreadable: dict[str, str] = {}
        self._listeners: list[Callable[[str], None]] = []
        self._lock = threading.RLock()
        self._refreshed_at: float | None = None  # None: never read
        self.observer: ModelObserver | None = None  # metrics: loads here, batches in batchers
        self.refresh()

    # -- catalogue ------------------------------------------------------------------

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(name)`` when a model is replaced or removed (e.g. to drop its
        cached sentences)."""
        self._listeners.append(listener)

    def refresh(self) -> None:
        """Re-read the store (models installed, reinstalled or removed while running).

        A model whose install changed (``models install --force``) or that was removed is
        unloaded (its queued work still finishes), forgotten as broken, and reported to the
        listeners; a preloaded one is loaded again at once from its new files."""
        found, unreadable = self.store.scan()
        models = {m.name: m for m in found}
        with self._lock:
            changed = [
                name for name, old in self._installed.items()
                if name not in models or models[name].install_id != old.install_id
            ]
            # New names (not at start-up, which logs what it loads itself).
            added = (sorted(models.keys() - self._installed.keys())
                     if self._refreshed_at is not None else [])
            retired = [self._loaded.pop(name) for name in changed if name in self._loaded]
            for name in changed:
                self._broken.pop(name, None)
            reload = [name for name in changed if name in self._pinned and name in models]
            self._pinned.difference_update(changed)
            self._installed = models
            for folder in unreadable:
                if self._unreadable.get(folder.name) != folder.reason:
                    logger.warning("model folder %s is broken and not served: %s",
                                   folder.name, folder.reason)
            self._unreadable = {folder.name: folder.reason for folder in unreadable}
            self._refreshed_at = self._clock()
        for name in added:
            manifest = models[name].manifest
            logger.info("model %s was installed (%s %s -> %s); serving it", name, manifest.task,
                        ",".join(manifest.source_languages), ",".join(manifest.target_languages))
        for name in changed:
            logger.info("model %s was %s; %s", name,
                        "reinstalled" if name in models else "removed",
                        "reloading it" if name in reload else "its cached sentences dropped")
        for lm in retired:
            threading.Thread(target=_retire, args=(lm,), name=f"retire-{lm.model.name}",
                             daemon=True).start()
        for name in changed:
            for listener in self._listeners:
                listener(name)
        if reload:
            self.preload(reload)

    def broken(self) -> dict[str, str]:
        """Installed models that cannot be loaded and store folders that hold no readable
        model, each with the reason."""
        with self._lock:
            return {**self._unreadable, **self._broken}

    @property
    def installed(self) -> list[InstalledModel]:
        with self._lock:
            return list(self._installed.values())

    def loaded_names(self) -> list[str]:
        with self._lock:
            return [n for n, lm in self._loaded.items() if lm.model.loaded]

    def batchers(self) -> list[tuple[str, Batcher]]:
        """(name, batcher) of every model that was loaded, unloaded ones too (their counters
        stay; metrics read them)."""
        with self._lock:
            return [(name, lm.batcher) for name, lm in self._loaded.items()]

    def loaded(self, name: str) -> LoadedModel | None:
        """The model if it is in memory, without loading it or touching the LRU order (for
        cheap checks such as admission)."""
        with self._lock:
            lm = self._loaded.get(name)
            return lm if lm is not None and lm.model.loaded else None

    def _translators(self) -> list[InstalledModel]:
        return [m for m in self._servable() if m.manifest.task == "translate"]

    def _servable(self) -> list[InstalledModel]:
        """Installed models that are not known to be broken: the ones routing may pick."""
        with self._lock:
            return [m for m in self._installed.values() if m.name not in self._broken]

    def direct_models(self, source: str, target: str) -> list[InstalledModel]:
        """Models that translate source -> target directly, best first."""
        found = [
            m for m in self._translators()
            if source in m.manifest.source_languages and target in m.manifest.target_languages
        ]

        def rank(m: InstalledModel) -> tuple[int, str]:
            size = len(m.manifest.source_languages) * len(m.manifest.target_languages)
            multilingual = size > 1
            first = multilingual if self.routing.prefer == "bilingual" else not multilingual
            return (int(first), m.name)

        return sorted(found, key=rank)

    def route(self, source: str, target: str, model: str = "") -> Route:
        """The models that translate ``source`` -> ``target``; ``model`` names one the caller
        wants (see :meth:`_chosen_route`), "" lets the ranking decide."""
        if model:
            return self._chosen_route(source, target, model)
        direct = self.direct_models(source, target)
        if direct:
            return Route((Leg(direct[0].name, source, target),))
        pivot = self.routing.pivot_language
        if pivot and pivot not in (source, target):
            first = self.direct_models(source, pivot)
            second = self.direct_models(pivot, target)
            if first and second:
                return Route(
                    (Leg(first[0].name, source, pivot), Leg(second[0].name, pivot, target)),
                    pivot_language=pivot,
                )
        raise ModelNotFound(self._missing_pair_message(source, target))

    def _chosen_route(self, source: str, target: str, model: str) -> Route:
        """The route through the model a request named.

        Direct when the model translates the pair. Otherwise, when the pair would go through
        the pivot language, the named model takes the leg it serves (source -> pivot or
        pivot -> target) and the ranking picks the other leg, so a caller can still choose
        e.g. which de->en model feeds an en->fr one. An unknown name is ModelNotFound (the
        caller may have a typo or a model not installed here); a known model that cannot serve
        the pair is InvalidInput (the request asks for something impossible).
        """
        chosen = self.installed_model(model)
        if chosen is None:
            raise ModelNotFound(
                f"no model named {model!r} is installed; "
                + self._candidates_message(source, target)
            )
        serves = set(chosen.manifest.pairs()) if chosen.manifest.task == "translate" else set()
        if (source, target) in serves:
            return Route((Leg(model, source, target),))
        pivot = self.routing.pivot_language
        if pivot and pivot not in (source, target):
            if (source, pivot) in serves:
                second = self.direct_models(pivot, target)
                if second:
                    return Route(
                        (Leg(model, source, pivot), Leg(second[0].name, pivot, target)),
                        pivot_language=pivot,
                    )
            if (pivot, target) in serves:
                first = self.direct_models(source, pivot)
                if first:
                    return Route(
                        (Leg(first[0].name, source, pivot), Leg(model, pivot, target)),
                        pivot_language=pivot,
                    )
        what = (
            "is a summariser, not a translation model"
            if chosen.manifest.task != "translate"
            else f"does not translate {source}->{target}"
            + (f" (nor a leg of it through {pivot})" if pivot and pivot not in (source, target)
               else "")
        )
        raise InvalidInput(
            f"model {model!r} {what}; " + self._candidates_message(source, target)
        )

    def installed_model(self, name: str) -> InstalledModel | None:
        """The installed model of that name, re-reading the store for an unknown one (a model
        installed while running) at most once a second, so requests naming models that do not
        exist cannot keep the server reading manifests."""
        with self._lock:
            found = self._installed.get(name)
            stale = self._refreshed_at is None or (
                self._clock() - self._refreshed_at >= STORE_REREAD_SECONDS)
        if found is None and stale:
            self.refresh()
            with self._lock:
                found = self._installed.get(name)
        return found

    def _candidates_message(self, source: str, target: str) -> str:
        direct = [m.name for m in self.direct_models(source, target)]
        if direct:
            return f"models for {source}->{target}: {', '.join(direct)}"
        pivot = self.routing.pivot_language
        if pivot and pivot not in (source, target):
            legs = [m.name for m in self.direct_models(source, pivot)] + [
                m.name for m in self.direct_models(pivot, target)
            ]
            if legs:
                return (
                    f"no model translates {source}->{target} directly; models for its legs "
                    f"through {pivot}: {', '.join(dict.fromkeys(legs))}"
                )
        return f"no installed model translates {source}->{target}"

    def _missing_pair_message(self, source: str, target: str) -> str:
        pairs = sorted({f"{s}->{t}" for m in self._translators() for s, t in m.manifest.pairs()})
        have = ", ".join(pairs) if pairs else "none"
        pivot = self.routing.pivot_language
        with self._lock:
            broken = [
                f"{m.name} ({self._broken[m.name]})" for m in self._installed.values()
                if m.name in self._broken and m.manifest.task == "translate"
                and (source, target) in m.manifest.pairs()
            ]
        return (
            f"no model translates {source}->{target}"
            + (f" (nor through {pivot})" if pivot and pivot not in (source, target) else "")
            + (f"; installed for it but broken: {'; '.join(broken)}" if broken else "")
            + f"; installed pairs: {have}. Install one with `dragoman models install "
            f"argos:{source}-{target}` (or opus-mt:{source}-{target}, hf:OWNER/REPO, a package "
            "or a folder; `dragoman models available` lists what can be fetched)"
        )

    def pairs(self, target: str = "") -> list[tuple[str, str, Route]]:
        """Every servable (source, target) pair with the route that would serve it (only
        those into ``target`` when given: no routes are worked out for the others)."""
        langs_src = {s for m in self._translators() for s in m.manifest.source_languages}
        langs_tgt = {t for m in self._translators() for t in m.manifest.target_languages}
        if target:
            langs_tgt &= {target}
        out = []
        for s in sorted(langs_src):
            for t in sorted(langs_tgt):
                if s == t:
                    continue
                try:
                    out.append((s, t, self.route(s, t)))
                except ModelNotFound:
                    continue
        return out

    def summarisers(self, language: str) -> list[InstalledModel]:
        return sorted(
            (m for m in self._servable()
             if m.manifest.task == "summarise" and language in m.manifest.source_languages),
            key=lambda m: (len(m.manifest.source_languages) > 1, m.name),
        )

    def summariser(self, language: str, model: str = "") -> InstalledModel | None:
        """The abstractive summariser for ``language``: the one named by ``model`` (checked
        like a translation model, see :meth:`_chosen_route`), else the best ranked one, else
        None."""
        found = self.summarisers(language)
        if not model:
            return found[0] if found else None
        names = ", ".join(m.name for m in found) or "none installed"
        chosen = self.installed_model(model)
        if chosen is None:
            raise ModelNotFound(
                f"no model named {model!r} is installed; summarisers for {language!r}: {names}"
            )
        if chosen.manifest.task != "summarise":
            raise InvalidInput(
                f"model {model!r} is a translation model, not a summariser; "
                f"summarisers for {language!r}: {names}"
            )
        if language not in chosen.manifest.source_languages:
            raise InvalidInput(
                f"summariser {model!r} does not read {language!r} (it reads "
                f"{', '.join(chosen.manifest.source_languages)}); summarisers for "
                f"{language!r}: {names}"
            )
        return chosen

    def summarisation_languages(self) -> list[str]:
        return sorted({
            lang for m in self.installed if m.manifest.task == "summarise"
            for lang in m.manifest.source_languages
        })

    # -- memory ---------------------------------------------------------------------

    def preload(self, names: Iterable[str]) -> None:
        """Load and keep ``names``; a model that fails to load is reported (see
        :meth:`broken`) and skipped, so one broken folder never stops the others."""
        for name in names:
            try:
                self.acquire(name)
            except StoreError:
                continue  # logged and recorded by acquire
            with self._lock:
                self._pinned.add(name)

    def acquire(self, name: str) -> LoadedModel:
        """The loaded model (loading it, and unloading others, if needed)."""
        with self._lock:
            lm = self._loaded.get(name)
            if lm is not None:
                self._loaded.move_to_end(name)
                if not lm.model.loaded:
                    self._make_room(exclude=name)
                    started = time.monotonic()
                    lm.model.load()
                    self._observe_load(name, started)
                return lm
            installed = self._installed.get(name)
            if installed is None:
                self.refresh()
                installed = self._installed.get(name)
            if installed is None:
                raise ModelNotFound(f"model {name!r} is not installed")
            if name in self._broken:
                raise StoreError(f"model {name} is broken: {self._broken[name]}")
            self._make_room(exclude=name, adding=installed)
            started = time.monotonic()
            try:
                model = Seq2SeqModel(installed.path, installed.manifest, self.runtime)
            except Exception as exc:  # any failure to load marks it broken
                reason = self.store.problem(installed) or f"cannot load it: {exc}"
                self._broken[name] = reason
                logger.error("model %s is broken and not served: %s", name, reason)
                raise StoreError(f"model {name} is broken: {reason}") from None
            self._observe_load(name, started)
            lm = LoadedModel(model, Batcher(model, self.batching, cost=model.batch_bytes,
                                            observer=self.observer), installed.install_id)
            self._loaded[name] = lm
            return lm

    def observe(self, observer: ModelObserver | None) -> None:
        """Report loads and batches (of models loaded already too) to ``observer``."""
        with self._lock:
            self.observer = observer
            for lm in self._loaded.values():
                lm.batcher.observer = observer

    def _observe_load(self, name: str, started: float) -> None:
        if self.observer is not None:
            self.observer.model_loaded(name, time.monotonic() - started)

    def _size(self, name: str) -> int:
        m = self._installed.get(name)
        if m is None:
            return 0
        try:
            return (m.path / "model.bin").stat().st_size
        except OSError:
            return 0

    def _make_room(self, exclude: str, adding: InstalledModel | None = None) -> None:
        limit_n = self.routing.max_loaded_models
        limit_b = self.routing.max_loaded_bytes
        if not limit_n and not limit_b:
            return
        extra = self._size(adding.name) if adding else self._size(exclude)

        def over() -> bool:
            live = [n for n, lm in self._loaded.items() if lm.model.loaded and n != exclude]
            n_over = bool(limit_n) and len(live) + 1 > limit_n
            b_over = bool(limit_b) and sum(self._size(n) for n in live) + extra > limit_b
            return n_over or b_over

        for name, lm in list(self._loaded.items()):
            if not over():
                return
            if name == exclude or name in self._pinned or not lm.model.loaded:
                continue
            if lm.batcher.queued() == 0 and lm.model.unload():
                logger.info("unloaded model %s to make room", name)

    def drain(self) -> None:
        """Shutting down: every model decodes what is queued without waiting for company."""
        with self._lock:
            loaded = list(self._loaded.values())
        for lm in loaded:
            lm.batcher.drain()

    def close(self, timeout: float | None = None) -> bool:
        """Stop every model's workers within ``timeout`` seconds in all (one deadline, not one
        per model); False when some batch was still decoding at the end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            loaded = list(self._loaded.values())
        for lm in loaded:
            lm.batcher.drain()  # nothing waits for company while the others are closed
        stopped = True
        for lm in loaded:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            stopped = lm.batcher.close(left) and stopped
        return stopped


def _retire(lm: LoadedModel) -> None:
    """Let a replaced model finish what is queued for it, then free its weights."""
    lm.batcher.close()
    lm.model.unload()
