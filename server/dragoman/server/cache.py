"""Sentence-level LRU cache of translations.

News archives repeat themselves (bylines, boilerplate, re-published wire stories); a cached
sentence costs no decoding. Keys include the model, the language pair and the decoding
options, so a different beam size never returns another setting's output.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class SentenceCache:
    """Thread-safe LRU bounded by entry count and by stored characters."""

    def __init__(self, max_entries: int = 100_000, max_chars: int = 64_000_000) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.stats = CacheStats()
        self._data: OrderedDict[Hashable, str] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_chars > 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable) -> str | None:
        if not self.enabled:
            return None
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.stats.misses += 1
                return None
            self._data.move_to_end(key)
            self.stats.hits += 1
            return value

    def put(self, key: Hashable, value: str) -> None:
        if not self.enabled:
            return
        size = len(value) + _key_chars(key)
        if size > self.max_chars:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._chars -= len(old) + _key_chars(key)
            self._data[key] = value
            self._chars += size
            while len(self._data) > self.max_entries or self._chars > self.max_chars:
                k, v = self._data.popitem(last=False)
                self._chars -= len(v) + _key_chars(k)
                self.stats.evictions += 1

    def drop(self, predicate: Callable[[Hashable], bool]) -> int:
        """Remove the entries whose key matches (e.g. one model's, after it was replaced);
        returns how many went."""
        with self._lock:
            doomed = [k for k in self._data if predicate(k)]
            for k in doomed:
                self._chars -= len(self._data.pop(k)) + _key_chars(k)
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._chars = 0


def _key_chars(key: Hashable) -> int:
    # The source sentence is the last element of every key the service builds.
    if isinstance(key, tuple) and key and isinstance(key[-1], str):
        return len(key[-1])
    return 0
