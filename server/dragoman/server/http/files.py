"""Translated files waiting to be downloaded (LibreTranslate's /translate_file answers with a
URL, not the file): a small bounded in-memory store, oldest out first, entries expire."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredFile:
    name: str  # as the client sent it
    content_type: str
    data: bytes
    expires: float


class FileStore:
    """At most ``max_files`` files and ``max_bytes`` bytes, each kept ``ttl`` seconds."""

    def __init__(self, max_files: int = 64, max_bytes: int = 64 * 1024 * 1024, ttl: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self._files: OrderedDict[str, StoredFile] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, name: str, content_type: str, data: bytes) -> str:
        """Keep ``data``; returns the key to download it by (unguessable, ends in ``name``)."""
        key = f"{uuid.uuid4().hex}.{name}"
        with self._lock:
            self._expire()
            self._files[key] = StoredFile(name, content_type, data, self._clock() + self.ttl)
            self._bytes += len(data)
            while self._files and (len(self._files) > self.max_files or self._bytes > self.max_bytes):
                _, old = self._files.popitem(last=False)
                self._bytes -= len(old.data)
        return key

    def get(self, key: str) -> StoredFile | None:
        with self._lock:
            self._expire()
            return self._files.get(key)

    def _expire(self) -> None:
        now = self._clock()
        while self._files:
            key, first = next(iter(self._files.items()))
            if first.expires > now:
                return
            del self._files[key]
            self._bytes -= len(first.data)
