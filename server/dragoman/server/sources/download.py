"""One file over HTTP(S): resumable, verified, atomic.

Bytes go to ``<dest>.part`` (with ``<dest>.part.json`` recording the URL and the server's
validator), so an interrupted download, in this process or a later one, continues with an HTTP
``Range`` request (``If-Range`` makes a changed file start over). The finished file is checked
against the expected size and SHA-256 where the source publishes them, and only then renamed to
``dest``. Failures are one-line errors: :class:`ModelNotFound` (404), :class:`StoreError`
(401/403), :class:`SourceUnavailable` (offline, server errors, checksum mismatch, disk full).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dragoman.server.confine import ensure_free_space
from dragoman.server.errors import ModelNotFound, SourceUnavailable, StoreError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
ATTEMPTS = 3  # reconnects within one call after the connection drops mid-body
USER_AGENT = "dragoman-model-download"


@dataclass(frozen=True)
class Expected:
    """What the source says the file is; None where it does not say."""

    size: int | None = None
    sha256: str | None = None


def _hash_file(path: Path, digest: Any) -> None:
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or parts.path


def http_error(url: str, exc: urllib.error.HTTPError, what: str) -> Exception:
    """The domain error for an HTTP error status."""
    if exc.code == 404:
        return ModelNotFound(f"{what} not found at {url} (404)")
    if exc.code in (401, 403):
        return StoreError(f"{what}: access denied by {_host(url)} ({exc.code} {exc.reason})")
    return SourceUnavailable(f"{what}: {_host(url)} answered {exc.code} {exc.reason}; try later")


def network_error(url: str, exc: BaseException, what: str) -> SourceUnavailable:
    reason = getattr(exc, "reason", exc)
    return SourceUnavailable(f"cannot download {what} from {_host(url)}: {reason} (offline?)")


def open_url(url: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    return urllib.request.urlopen(request, timeout=timeout)  # http(s)/file only


def fetch_bytes(url: str, what: str, timeout: float = 30.0, limit: int = 64 * 1024**2) -> bytes:
    """A small document (an index), with the same error mapping as :func:`download`."""
    try:
        with open_url(url, timeout=timeout) as response:
            data: bytes = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise http_error(url, exc, what) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise network_error(url, exc, what) from None
    if len(data) > limit:
        raise SourceUnavailable(f"{what} at {url} is larger than {limit} bytes")
    return data


class _Part:
    """The ``.part`` file and its record of where the bytes came from."""

    def __init__(self, dest: Path, url: str) -> None:
        self.path = dest.with_name(dest.name + ".part")
        self.meta = dest.with_name(dest.name + ".part.json")
        self.url = url

    def resumable(self) -> tuple[int, str]:
        """(bytes already here, validator for If-Range); (0, "") to start over."""
        try:
            meta = json.loads(self.meta.read_text(encoding="utf-8"))
            size = self.path.stat().st_size
        except (OSError, ValueError):
            return 0, ""
        if not isinstance(meta, dict) or meta.get("url") != self.url:
            return 0, ""
        return size, str(meta.get("validator") or "")

    def start(self, validator: str) -> None:
        self.path.write_bytes(b"")
        self.meta.write_text(json.dumps({"url": self.url, "validator": validator}),
                             encoding="utf-8")

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)


def download(
    url: str,
    dest: Path,
    expected: Expected = Expected(),
    *,
    progress: Any = None,
    what: str = "",
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` (resuming a ``.part`` left by an earlier attempt)."""
    what = what or dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _Part(dest, url)
    bar = None
    try:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                bar = _transfer(url, part, expected, progress, bar, what, timeout)
                break
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
                have = part.path.stat().st_size if part.path.exists() else 0
                if attempt == ATTEMPTS:
                    raise SourceUnavailable(
                        f"download of {what} from {_host(url)} kept failing ({exc}); "
                        f"{have} bytes kept in {part.path}, run again to resume"
                    ) from None
                logger.warning("%s: connection lost after %d bytes (%s); resuming", what, have,
                               exc)
        _verify(part, expected, what)
        part.path.replace(dest)
        part.meta.unlink(missing_ok=True)
        return dest
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise SourceUnavailable(f"disk full while downloading {what} into {dest.parent}") \
                from None
        raise SourceUnavailable(f"cannot write {what} into {dest.parent}: {exc}") from None
    finally:
        if bar is not None:
            bar.close()


def _transfer(url: str, part: _Part, expected: Expected, progress: Any, bar: Any, what: str,
              timeout: float) -> Any:
    offset, validator = part.resumable()
    if expected.size is not None and offset > expected.size:
        offset = 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    try:
        response = open_url(url, headers, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the part is complete (or stale): check it as it is
            return bar
        raise http_error(url, exc, what) from None
    except (urllib.error.URLError, OSError) as exc:
        if isinstance(exc, (ConnectionError, TimeoutError)) and offset:
            raise
        raise network_error(url, exc, what) from None
    with response:
        status = getattr(response, "status", 200)
        length = response.headers.get("Content-Length")
        if status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                raise SourceUnavailable(f"{what}: {_host(url)} resumed at the wrong offset")
            logger.info("%s: resuming at byte %d", what, offset)
        else:
            offset = 0
            part.start(response.headers.get("ETag") or response.headers.get("Last-Modified") or "")
        total = offset + int(length) if length and length.isdigit() else expected.size
        if expected.size is not None and total is not None and total != expected.size:
            part.discard()
            raise SourceUnavailable(
                f"{what}: {_host(url)} serves {total} bytes, the index says {expected.size}"
            )
        if total is not None:
            ensure_free_space(part.path.parent, total - offset)
        if bar is None and progress is not None:
            bar = progress(total=total, initial=offset, unit="B", unit_scale=True,
                           unit_divisor=1024, desc=what)
        elif bar is not None:
            bar.reset(total=total)
            bar.update(offset)
        with part.path.open("ab") as out:
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        if total is not None and part.path.stat().st_size < total:
            raise http.client.IncompleteRead(b"", total - part.path.stat().st_size)
    return bar


def _range_start(content_range: str) -> int:
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1


def _verify(part: _Part, expected: Expected, what: str) -> None:
    size = part.path.stat().st_size
    if expected.size is not None and size != expected.size:
        part.discard()
        raise SourceUnavailable(f"{what}: got {size} bytes, expected {expected.size}; run again")
    if expected.sha256:
        digest = hashlib.sha256()
        _hash_file(part.path, digest)
        if digest.hexdigest() != expected.sha256.lower():
            part.discard()
            raise SourceUnavailable(
                f"{what}: checksum mismatch (SHA-256 {digest.hexdigest()}, expected "
                f"{expected.sha256.lower()}); the download was discarded, run again"
            )
