"""Who may call, and how much: one access check shared by the gRPC and HTTP adapters.

The adapters only extract the presented key (gRPC ``authorization: Bearer KEY`` metadata, the
HTTP dialects' own places for it) and map the errors below to their status codes; the decision
lives here so both transports enforce exactly the same rules. grpc-free by design.

Keys live in a key store: a SQLite database managed with ``dragoman keys add|list|remove``, or
a read-only JSON file (a list of ``{"name", "sha256", "chars_per_minute", "chars_per_day"}``
objects, for deployments that mount keys from a secret). Only SHA-256 digests of keys are
stored; a presented key is hashed and compared with every stored digest in constant time. The
store is re-read when its file changes, so keys added or removed reach a running server.

Quotas count characters per key in this process: per minute over a sliding 60-second window,
per day per UTC calendar day. Counters start at zero when the server starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from dragoman.server.errors import DragomanError, InvalidInput, Overloaded

logger = logging.getLogger(__name__)

KEY_PREFIX = "dgm_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MINUTE = 60.0
DAY = 86400.0
_SQLITE_MAGIC = b"SQLite format 3\x00"


class Unauthenticated(DragomanError):
    """No key, or a key that is not valid, while keys are required."""

    code = "UNAUTHENTICATED"


class QuotaExceeded(Overloaded):
    """The key's character quota is used up (HTTP: LibreTranslate 429, DeepL 456)."""


class KeyStoreError(DragomanError):
    """The key store cannot be read or written (a user's mistake: exit 2 in the CLI)."""

    code = "FAILED_PRECONDITION"


@dataclass(frozen=True)
class Principal:
    """The caller a key belongs to ("anonymous" when no keys are required)."""

    name: str


ANONYMOUS = Principal("anonymous")
TOKEN_PRINCIPAL = Principal("token")


@dataclass(frozen=True)
class KeyRecord:
    """One API key as stored: its name, the SHA-256 of the key, and its quotas (None: none)."""

    name: str
    sha256: str
    chars_per_minute: int | None = None
    chars_per_day: int | None = None
    created: float = 0.0


def digest(key: str) -> str:
    """The stored form of a key (hex SHA-256)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits), shown to the user once and never stored."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _limit(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise KeyStoreError(f"{what} must be a positive integer or absent, got {value!r}")
    return value


class KeyStore:
    """API keys in a SQLite database (read-write) or a JSON file (read-only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    # -- reading -----------------------------------------------------------------

    def _is_sqlite(self) -> bool:
        try:
            with self.path.open("rb") as handle:
                head = handle.read(len(_SQLITE_MAGIC))
        except FileNotFoundError:
            return self.path.suffix not in (".json",)
        except OSError as exc:
            raise KeyStoreError(f"cannot read key store {self.path}: {exc.strerror}") from None
        return head == _SQLITE_MAGIC or head == b""

    def stamp(self) -> tuple[int, int, int, bytes] | None:
        """Identity of the file's current content (None while it does not exist): inode,
        size, mtime and SQLite's file change counter (header bytes 24-27, bumped by every
        commit), so two changes within one timestamp tick are still seen."""
        try:
            with self.path.open("rb") as handle:
                st = os.fstat(handle.fileno())
                head = handle.read(28)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read key store {self.path}: {exc.strerror}") from None
        return (st.st_mtime_ns, st.st_size, st.st_ino, head[24:28])

    def load(self) -> list[KeyRecord]:
        """Every key; raises :class:`KeyStoreError` when the file is missing or malformed."""
        if not self.path.exists():
            raise KeyStoreError(
                f"key store {self.path} does not exist (create it with `dragoman keys add`)")
        if self._is_sqlite():
            with self._connect(create=False) as db:
                try:
                    rows = db.execute(
                        "SELECT name, sha256, chars_per_minute, chars_per_day, created "
                        "FROM keys ORDER BY name").fetchall()
                except sqlite3.Error as exc:
                    raise KeyStoreError(f"key store {self.path}: {exc}") from None
            return [KeyRecord(*row) for row in rows]
        return self._load_json()

    def _load_json(self) -> list[KeyRecord]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise KeyStoreError(f"key file {self.path} is not readable JSON: {exc}") from None
        if not isinstance(data, list):
            raise KeyStoreError(f"key file {self.path} must hold a JSON list of keys")
        records: list[KeyRecord] = []
        for n, entry in enumerate(data):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not (
                    isinstance(entry.get("sha256"), str)
                    and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
                raise KeyStoreError(
                    f"key file {self.path}: entry {n} needs a 'name' and a 'sha256' "
                    "(64 lowercase hex digits)")
            records.append(KeyRecord(
                entry["name"], entry["sha256"],
                _limit(entry.get("chars_per_minute"), f"entry {n}: chars_per_minute"),
                _limit(entry.get("chars_per_day"), f"entry {n}: chars_per_day"),
            ))
        return records

    # -- writing (SQLite only) ---------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, *, create: bool) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success and is always closed."""
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fresh = not self.path.exists()
                db = sqlite3.connect(self.path, timeout=10)
                if fresh:
                    os.chmod(self.path, 0o600)  # digests only, but nobody else's business
                db.execute(
                    "CREATE TABLE IF NOT EXISTS keys (name TEXT PRIMARY KEY, sha256 TEXT NOT "
                    "NULL UNIQUE, chars_per_minute INTEGER, chars_per_day INTEGER, "
                    "created REAL NOT NULL)")
            else:
                db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        except (sqlite3.Error, OSError) as exc:
            raise KeyStoreError(f"key store {self.path}: {exc}") from None
        try:
            with db:
                yield db
        finally:
            db.close()

    def add(self, name: str, chars_per_minute: int | None = None,
            chars_per_day: int | None = None) -> tuple[str, KeyRecord]:
        """Create a key named ``name``; returns (the key itself, its record)."""
        if not NAME_PATTERN.match(name):
            raise KeyStoreError(
                f"key name {name!r} must be 1-64 letters, digits or . _ @ - (starting with a "
                "letter or digit)")
        if not self._is_sqlite():
            raise KeyStoreError(f"{self.path} is a read-only JSON key file; use a SQLite store")
        if name in (ANONYMOUS.name, TOKEN_PRINCIPAL.name):
            raise KeyStoreError(f"key name {name!r} is reserved")
        key = new_key()
        record = KeyRecord(
            name, digest(key), _limit(chars_per_minute, "chars per minute"),
            _limit(chars_per_day, "chars per day"), time.time())
        with self._connect(create=True) as db:
            try:
                db.execute("INSERT INTO keys VALUES (?, ?, ?, ?, ?)", (
                    record.name, record.sha256, record.chars_per_minute, record.chars_per_day,
                    record.created))
            except sqlite3.IntegrityError:
                raise KeyStoreError(f"a key named {name!r} already exists") from None
        return key, record

    def remove(self, name: str) -> None:
        if not self._is_sqlite():
            raise KeyStoreError(f"{self.path} is a read-only JSON key file; edit it instead")
        if not self.path.exists():
            raise KeyStoreError(f"key store {self.path} does not exist")
        with self._connect(create=True) as db:
            gone = db.execute("DELETE FROM keys WHERE name = ?", (name,)).rowcount
        if not gone:
            raise KeyStoreError(f"no key named {name!r} in {self.path}")


class _Usage:
    """One principal's characters: a sliding minute window and the current UTC day."""

    def __init__(self) -> None:
        self.minute: deque[tuple[float, int]] = deque()
        self.minute_total = 0
        self.day = -1
        self.day_total = 0

    def roll(self, now: float) -> None:
        while self.minute and self.minute[0][0] <= now - MINUTE:
            self.minute_total -= self.minute.popleft()[1]
        today = int(now // DAY)
        if today != self.day:
            self.day, self.day_total = today, 0

    def retry_after(self, now: float, needed: int, limit: int) -> float:
        """Seconds until ``needed`` more characters fit the minute window."""
        total = self.minute_total
        for stamp, chars in self.minute:
            total -= chars
            if total + needed <= limit:
                return max(0.0, stamp + MINUTE - now)
        return MINUTE


class AccessControl:
    """Checks keys and charges characters against quotas.

    ``token`` is the legacy single shared token (``--token``/``--token-file``; its caller is
    the unlimited principal "token"); ``keys`` a :class:`KeyStore`. With neither, every caller
    is anonymous and unlimited. ``clock`` (epoch seconds) is injectable for tests.
    """

    def __init__(
        self, token: str = "", keys: KeyStore | None = None, *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._token = digest(token) if token else ""
        self._store = keys
        self._clock = clock
        self._lock = threading.Lock()
        self._records: tuple[KeyRecord, ...] = ()
        self._by_name: dict[str, KeyRecord] = {}
        self._stamp: tuple[int, int, int, bytes] | None = None
        self._usage: dict[str, _Usage] = {}
        if keys is not None:
            self._reload(force=True)

    @classmethod
    def from_settings(cls, token: str = "", token_file: str = "", keys: str = "",
                      clock: Callable[[], float] = time.time) -> AccessControl:
        """Build from the server settings; unreadable files are a clear :class:`InvalidInput`."""
        if token and token_file:
            raise InvalidInput("give --token or --token-file, not both")
        if token_file:
            try:
                token = Path(token_file).expanduser().read_text("utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidInput(f"cannot read --token-file {token_file}: {exc}") from None
            if not token:
                raise InvalidInput(f"--token-file {token_file} is empty")
        store = None
        if keys:
            store = KeyStore(keys)
            try:
                store.load()
            except KeyStoreError as exc:
                raise InvalidInput(str(exc)) from None
        return cls(token, store, clock=clock)

    def describe(self) -> str:
        """One line for the start-up log (never a key)."""
        parts = []
        if self._store is not None:
            parts.append(f"{len(self._records)} API key(s) from {self._store.path}")
        if self._token:
            parts.append("a shared bearer token")
        return " and ".join(parts) if parts else "open (no key required)"

    @property
    def required(self) -> bool:
        """True when callers must present a key."""
        return bool(self._token) or self._store is not None

    # -- keys ------------------------------------------------------------------------

    def _reload(self, force: bool = False) -> None:
        """Re-read the key store when its file changed; a broken file keeps the old keys."""
        assert self._store is not None
        try:
            stamp = self._store.stamp()
            if not force and stamp == self._stamp:
                return
            records = tuple(self._store.load()) if stamp is not None else ()
        except KeyStoreError as exc:
            if force:
                raise
            logger.warning("keeping the previous keys: %s", exc)
            return
        with self._lock:
            self._records = records
            self._by_name = {r.name: r for r in records}
            self._stamp = stamp
        if not force:
            logger.info("key store %s reloaded: %d key(s)", self._store.path, len(records))

    def authenticate(self, key: str | None) -> Principal:
        """The caller ``key`` belongs to; raises :class:`Unauthenticated`."""
        if not self.required:
            return ANONYMOUS
        if not key:
            raise Unauthenticated("missing API key")
        given = digest(key)
        found: KeyRecord | None = None
        if self._store is not None:
            self._reload()
            # Compare with every digest, no early exit: timing says nothing about the keys.
            for record in self._records:
                if hmac.compare_digest(given, record.sha256):
                    found = record
        if self._token and hmac.compare_digest(given, self._token):
            return TOKEN_PRINCIPAL
        if found is None:
            raise Unauthenticated("invalid API key")
        return Principal(found.name)

    def keys(self) -> Iterable[KeyRecord]:
        return self._records

    # -- quotas ------------------------------------------------------------------------

    def _limits(self, principal: Principal) -> tuple[int | None, int | None]:
        record = self._by_name.get(principal.name)
        if record is None or principal in (ANONYMOUS, TOKEN_PRINCIPAL):
            return None, None
        return record.chars_per_minute, record.chars_per_day

    def charge(self, principal: Principal, chars: int) -> None:
        """Count ``chars`` against the principal's quota; raises :class:`QuotaExceeded`."""
        per_minute, per_day = self._limits(principal)
        now = self._clock()
        with self._lock:
            usage = self._usage.setdefault(principal.name, _Usage())
            usage.roll(now)
            if per_day is not None and usage.day_total + chars > per_day:
                left = max(0, per_day - usage.day_total)
                raise QuotaExceeded(
                    f"key {principal.name!r} is over its quota of {per_day} characters per day "
                    f"({left} left today, this request has {chars}); the day ends at 00:00 UTC")
            if per_minute is not None and usage.minute_total + chars > per_minute:
                if chars > per_minute:
                    raise QuotaExceeded(
                        f"this request has {chars} characters, more than key "
                        f"{principal.name!r} may send per minute ({per_minute}); split it")
                wait = usage.retry_after(now, chars, per_minute)
                raise QuotaExceeded(
                    f"key {principal.name!r} is over its quota of {per_minute} characters per "
                    f"minute; retry in {max(1, round(wait))} s")
            usage.minute.append((now, chars))
            usage.minute_total += chars
            usage.day_total += chars

    def refund(self, principal: Principal, chars: int) -> None:
        """Give back characters charged for a request the service then refused at once
        (overloaded, bad input), so a refusal does not eat the caller's quota."""
        with self._lock:
            usage = self._usage.get(principal.name)
            if usage is None:
                return
            for n in range(len(usage.minute) - 1, -1, -1):
                if usage.minute[n][1] == chars:
                    del usage.minute[n]
                    usage.minute_total -= chars
                    break
            usage.day_total = max(0, usage.day_total - chars)

    def usage(self, principal: Principal) -> tuple[int, int | None]:
        """(characters used today, the daily limit or None) - for DeepL's /v2/usage."""
        _, per_day = self._limits(principal)
        now = self._clock()
        with self._lock:
            usage = self._usage.get(principal.name)
            if usage is None:
                return 0, per_day
            usage.roll(now)
            return usage.day_total, per_day
