"""The shared access check: keys stored as digests, constant-time lookup, quotas per minute
and per day on an injected clock (no sleeps), token and token file, JSON key files."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import pytest

from dragoman.server.access import (
    ANONYMOUS,
    AccessControl,
    KeyStore,
    KeyStoreError,
    Principal,
    QuotaExceeded,
    Unauthenticated,
    digest,
)
from dragoman.server.errors import InvalidInput, Overloaded
from dragoman.server.http.calls import Calls
from dragoman.server.service import Dragoman


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_no_keys_means_anonymous_and_unlimited() -> None:
    access = AccessControl()
    assert not access.required
    assert access.authenticate(None) == ANONYMOUS
    access.charge(ANONYMOUS, 10**9)
    assert access.usage(ANONYMOUS) == (10**9, None)


def test_store_keeps_only_digests_and_authenticates(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    key, record = store.add("alice", chars_per_minute=100)
    assert record.sha256 == digest(key) and key.startswith("dgm_")
    raw = (tmp_path / "keys.db").read_bytes()
    assert key.encode() not in raw
    with sqlite3.connect(tmp_path / "keys.db") as db:
        assert db.execute("SELECT sha256 FROM keys").fetchall() == [(digest(key),)]
    access = AccessControl(keys=store)
    assert access.required
    assert access.authenticate(key) == Principal("alice")
    with pytest.raises(Unauthenticated, match="invalid API key"):
        access.authenticate(key + "x")
    with pytest.raises(Unauthenticated, match="missing API key"):
        access.authenticate("")


def test_keys_added_and_removed_reach_a_running_access_check(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    store.add("first")
    access = AccessControl(keys=store)
    key, _ = store.add("second")
    assert access.authenticate(key) == Principal("second")
    store.remove("second")
    with pytest.raises(Unauthenticated):
        access.authenticate(key)
    with pytest.raises(KeyStoreError, match="no key named 'second'"):
        store.remove("second")


def test_bad_names_and_duplicates_are_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    store.add("alice")
    with pytest.raises(KeyStoreError, match="already exists"):
        store.add("alice")
    with pytest.raises(KeyStoreError, match="must be 1-64 letters"):
        store.add("bad name")
    with pytest.raises(KeyStoreError, match="reserved"):
        store.add("token")
    with pytest.raises(KeyStoreError, match="positive integer"):
        store.add("bob", chars_per_day=0)


def test_quota_per_minute_slides_with_the_clock(tmp_path: Path) -> None:
    clock = Clock()
    store = KeyStore(tmp_path / "keys.db")
    key, _ = store.add("alice", chars_per_minute=100)
    access = AccessControl(keys=store, clock=clock)
    alice = access.authenticate(key)
    access.charge(alice, 60)
    clock.now += 30
    access.charge(alice, 40)
    with pytest.raises(QuotaExceeded, match="100 characters per minute; retry in 30 s") as info:
        access.charge(alice, 1)
    assert isinstance(info.value, Overloaded) and info.value.code == "RESOURCE_EXHAUSTED"
    clock.now += 30  # the first 60 leave the window
    access.charge(alice, 60)
    with pytest.raises(QuotaExceeded, match="more than key 'alice' may send per minute"):
        access.charge(alice, 101)


def test_quota_per_day_resets_at_midnight_utc(tmp_path: Path) -> None:
    clock = Clock(86400.0 * 20000 + 3600)  # 01:00 UTC
    store = KeyStore(tmp_path / "keys.db")
    key, _ = store.add("bob", chars_per_day=1000)
    access = AccessControl(keys=store, clock=clock)
    bob = access.authenticate(key)
    for _ in range(10):
        access.charge(bob, 100)
        clock.now += 120
    assert access.usage(bob) == (1000, 1000)
    with pytest.raises(QuotaExceeded, match="1000 characters per day .0 left today"):
        access.charge(bob, 1)
    clock.now += 86400
    access.charge(bob, 1)
    assert access.usage(bob) == (1, 1000)


def test_refund_gives_back_a_refused_request(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    key, _ = store.add("carol", chars_per_minute=100)
    access = AccessControl(keys=store, clock=Clock())
    carol = access.authenticate(key)
    access.charge(carol, 80)
    access.refund(carol, 80)
    access.charge(carol, 100)
    assert access.usage(carol) == (100, None)


def test_an_http_request_whose_client_hangs_up_is_refunded(tmp_path: Path) -> None:
    """Its work is dropped (the handler is cancelled), so its characters are given back."""
    store = KeyStore(tmp_path / "keys.db")
    key, _ = store.add("dave", chars_per_minute=100)
    access = AccessControl(keys=store, clock=Clock())
    dave = access.authenticate(key)
    calls = Calls(cast(Dragoman, None), cast(ThreadPoolExecutor, None), access)

    async def hang_up() -> None:
        started = asyncio.Event()

        async def work() -> None:
            started.set()
            await asyncio.Event().wait()  # the service never answers before the hang-up

        task = asyncio.create_task(calls.charged(dave, 80, work))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(hang_up())
    access.charge(dave, 100)  # all 100 characters of the minute are free again
    assert access.usage(dave) == (100, None)


def test_legacy_token_and_token_file(tmp_path: Path) -> None:
    access = AccessControl("s3cret")
    assert access.authenticate("s3cret") == Principal("token")
    with pytest.raises(Unauthenticated):
        access.authenticate("s3cre")
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    access = AccessControl.from_settings(token_file=str(secret))
    assert access.authenticate("from-file") == Principal("token")
    with pytest.raises(InvalidInput, match="not both"):
        AccessControl.from_settings(token="a", token_file=str(secret))
    with pytest.raises(InvalidInput, match="cannot read --token-file"):
        AccessControl.from_settings(token_file=str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InvalidInput, match="is empty"):
        AccessControl.from_settings(token_file=str(tmp_path / "empty"))


def test_token_and_keys_together(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    key, _ = store.add("alice")
    access = AccessControl.from_settings(token="legacy", keys=str(store.path))
    assert access.authenticate("legacy") == Principal("token")
    assert access.authenticate(key) == Principal("alice")


def test_json_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([
        {"name": "svc", "sha256": digest("k-svc"), "chars_per_day": 50},
    ]))
    access = AccessControl.from_settings(keys=str(path), clock=Clock())
    svc = access.authenticate("k-svc")
    assert svc == Principal("svc")
    with pytest.raises(QuotaExceeded, match="per day"):
        access.charge(svc, 51)
    with pytest.raises(KeyStoreError, match="read-only JSON"):
        KeyStore(path).add("more")
    path.write_text("[{\"name\": \"x\"}]")
    with pytest.raises(InvalidInput, match="needs a 'name' and a 'sha256'"):
        AccessControl.from_settings(keys=str(path))


def test_missing_key_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist .create it with `dragoman keys add`"):
        AccessControl.from_settings(keys=str(tmp_path / "nope.db"))
    (tmp_path / "junk.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    with pytest.raises(InvalidInput, match="junk.db"):
        AccessControl.from_settings(keys=str(tmp_path / "junk.db"))
