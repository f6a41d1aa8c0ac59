"""The sentence cache: LRU bounds, the off switch, and the service's hit path (a repeated
sentence is never decoded twice; a different model setting never reuses another's output)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from dragoman.server.batcher import BatchingOptions
from dragoman.server.cache import SentenceCache
from dragoman.server.registry import ModelRegistry
from dragoman.server.seq2seq import DecodingOptions, Encoded, RuntimeOptions
from dragoman.server.service import Dragoman, TranslateInput
from dragoman.server.store import ModelStore

TEXT = (
    "The city council approved the new budget on Tuesday evening. "
    "Heavy rain is expected across the north of the country this weekend.\n\n"
    "Scientists have discovered a new species of frog in the rainforest."
)


# -- the LRU itself ------------------------------------------------------------------------


def test_least_recently_used_entry_goes_first() -> None:
    cache = SentenceCache(max_entries=2)
    cache.put(("m", "a"), "A")
    cache.put(("m", "b"), "B")
    assert cache.get(("m", "a")) == "A"  # a is now the most recent
    cache.put(("m", "c"), "C")
    assert cache.get(("m", "b")) is None
    assert cache.get(("m", "a")) == "A" and cache.get(("m", "c")) == "C"
    assert (cache.stats.hits, cache.stats.misses, cache.stats.evictions) == (3, 1, 1)


def test_character_budget_evicts_and_skips_oversized_values() -> None:
    cache = SentenceCache(max_entries=100, max_chars=20)
    cache.put(("m", "k1"), "x" * 8)  # 2 + 8 characters
    cache.put(("m", "k2"), "y" * 8)
    cache.put(("m", "k3"), "z" * 8)  # 30 > 20: k1 goes
    assert cache.get(("m", "k1")) is None
    assert cache.get(("m", "k3")) == "z" * 8
    cache.put(("m", "huge"), "w" * 50)  # larger than the whole cache: not stored
    assert cache.get(("m", "huge")) is None
    assert len(cache) == 2


def test_empty_translation_is_a_hit_not_a_miss() -> None:
    cache = SentenceCache()
    cache.put(("m", "..."), "")
    assert cache.get(("m", "...")) == ""


@pytest.mark.parametrize("entries, chars", [(0, 1000), (1000, 0)])
def test_off_switch_stores_nothing(entries: int, chars: int) -> None:
    cache = SentenceCache(max_entries=entries, max_chars=chars)
    assert not cache.enabled
    cache.put(("m", "a"), "A")
    assert cache.get(("m", "a")) is None
    assert len(cache) == 0


def test_concurrent_use_keeps_the_bounds() -> None:
    cache = SentenceCache(max_entries=50)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(2000):
                key = ("m", f"s{(i * 7 + offset) % 300}")
                if cache.get(key) is None:
                    cache.put(key, key[1].upper())
                elif cache.get(key) not in (None, key[1].upper()):
                    raise AssertionError(f"wrong value for {key}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[0]
    assert len(cache) <= 50


# -- the service's hit path ----------------------------------------------------------------


@dataclass
class Spy:
    batches: list[list[Encoded]]


def service_with(copy_store: Path, cache: SentenceCache) -> tuple[Dragoman, Spy]:
    registry = ModelRegistry(ModelStore(copy_store), RuntimeOptions(), BatchingOptions(wait_ms=0.0))
    service = Dragoman(registry, cache)
    model = registry.acquire("copy-en-de").model
    spy = Spy([])
    real = model.generate

    def generate(batch: Sequence[Encoded], options: DecodingOptions) -> list[tuple[str, ...]]:
        spy.batches.append(list(batch))
        return real(batch, options)

    model.generate = generate  # type: ignore[method-assign]
    return service, spy


@pytest.fixture
def cached(copy_store: Path) -> Iterator[tuple[Dragoman, Spy]]:
    service, spy = service_with(copy_store, SentenceCache())
    yield service, spy
    service.registry.close(10)


def translate(service: Dragoman, text: str, beam_size: int = 0):  # type: ignore[no-untyped-def]
    req = TranslateInput(text=text, target_language="de", source_language="en", beam_size=beam_size)
    return service.translate(req).result(30)


def test_second_call_is_served_from_the_cache_without_decoding(
    cached: tuple[Dragoman, Spy], swapcase: Callable[[str], str]
) -> None:
    service, spy = cached
    first = translate(service, TEXT)
    decoded = sum(len(b) for b in spy.batches)
    assert first.cached_sentences == 0 and decoded == first.sentences == 3
    second = translate(service, TEXT)
    assert sum(len(b) for b in spy.batches) == decoded  # nothing new reached the model
    assert second.text == first.text
    assert second.cached_sentences == second.sentences == 3
    assert first.text.startswith(swapcase("The city council approved the new budget on Tuesday evening."))


def test_partly_known_document_decodes_only_the_new_sentence(cached: tuple[Dragoman, Spy]) -> None:
    service, spy = cached
    translate(service, TEXT)
    before = len(spy.batches)
    out = translate(service, TEXT + " Police are asking witnesses to come forward.")
    new = [e for b in spy.batches[before:] for e in b]
    assert len(new) == 1 and out.cached_sentences == 3


def test_other_decoding_options_do_not_reuse_cached_output(cached: tuple[Dragoman, Spy]) -> None:
    service, spy = cached
    translate(service, TEXT, beam_size=2)
    before = sum(len(b) for b in spy.batches)
    out = translate(service, TEXT, beam_size=3)
    assert out.cached_sentences == 0
    assert sum(len(b) for b in spy.batches) == before + 3


def test_cache_off_decodes_every_call(copy_store: Path) -> None:
    service, spy = service_with(copy_store, SentenceCache(max_entries=0))
    try:
        first = translate(service, TEXT)
        second = translate(service, TEXT)
    finally:
        service.registry.close(10)
    assert second.text == first.text
    assert second.cached_sentences == 0
    assert sum(len(b) for b in spy.batches) == 6
