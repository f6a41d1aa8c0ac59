"""A local model mirror for the download tests: static files (an Argos index and packages) and
enough of the Hugging Face Hub HTTP API for ``huggingface_hub`` pointed at it by HF_ENDPOINT.

Hub endpoints served (what huggingface_hub's ``snapshot_download``/``hf_hub_download`` and
``HfApi.model_info`` request):

- ``GET /api/models/{repo}[/revision/{rev}]``: model info with ``sha`` and ``siblings``;
- ``GET /api/models/{repo}/tree/{rev}``: the file listing (``oid`` = git blob SHA-1; ``lfs``
  with the SHA-256 for weights and SentencePiece models);
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}``: ``X-Repo-Commit``, ``ETag`` (and for LFS files
  ``X-Linked-Etag``/``X-Linked-Size``), ``Content-Length``, HTTP ``Range``.

Faults for the tests: drop the connection once mid-body, serve wrong bytes, answer with a
status (404, 401 gated with ``X-Error-Code: GatedRepo``). Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".spm", ".h5", ".msgpack", ".ot")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_id: str
    files: dict[str, bytes]
    commit: str
    gated: bool = False

    def is_lfs(self, name: str) -> bool:
        return name.endswith(LFS_SUFFIXES)

    def etag(self, name: str) -> str:
        data = self.files[name]
        return hashlib.sha256(data).hexdigest() if self.is_lfs(name) else git_blob_sha1(data)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Mirror:
    """Start with ``with Mirror() as mirror:``; ``mirror.url`` is the base URL."""

    files: dict[str, bytes] = field(default_factory=dict)
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    # path -> bytes after which the connection is dropped (once)
    drops: dict[str, int] = field(default_factory=dict)
    # path -> bytes served instead of the real content (same length)
    corrupt: dict[str, bytes] = field(default_factory=dict)
    # path -> HTTP status to answer with
    statuses: dict[str, int] = field(default_factory=dict)
    token: str = "hf_mirror_token"
    # path -> body bytes sent
    sent: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        mirror = self

        class Handler(_Handler):
            owner = mirror

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Mirror:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_file(self, path: str, data: bytes) -> str:
        self.files["/" + path.lstrip("/")] = data
        return f"{self.url}/{path.lstrip('/')}"

    def add_repo(self, repo_id: str, folder: Path | None = None, *,
                 files: dict[str, bytes] | None = None, gated: bool = False) -> Repo:
        content = dict(files or {})
        if folder is not None:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    content[path.relative_to(folder).as_posix()] = path.read_bytes()
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(content):
            digest.update(name.encode() + hashlib.sha1(content[name]).digest())
        commit = digest.hexdigest()
        repo = Repo(repo_id, content, commit, gated)
        self.repos[repo_id] = repo
        return repo

    def resolve_path(self, repo_id: str, name: str) -> str:
        return f"/{repo_id}/resolve/{self.repos[repo_id].commit}/{name}"

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def count(self, path: str, size: int) -> None:
        with self._lock:
            self.sent[path] = self.sent.get(path, 0) + size

    def take_drop(self, path: str) -> int | None:
        with self._lock:
            return self.drops.pop(path, None)


_API = re.compile(
    r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/(?P<kind>revision|tree)/(?P<rev>[^/?]+))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class _Handler(BaseHTTPRequestHandler):
    owner: Mirror
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    # -- dispatch -------------------------------------------------------------------------

    def _serve(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.owner.record(Request(self.command, path, dict(self.headers.items())))
        if path in self.owner.statuses:
            self._status(self.owner.statuses[path])
            return
        if path in self.owner.files:
            data = self.owner.files[path]
            self._content(path, data, {"ETag": f'"{git_blob_sha1(data)}"'}, body)
            return
        api, resolve = _API.match(path), _RESOLVE.match(path)
        repo_id = (api or resolve).group("repo") if (api or resolve) else None
        repo = self.owner.repos.get(repo_id or "")
        if repo is None:
            self._status(404, "RepoNotFound" if repo_id else None)
            return
        if repo.gated and self.headers.get("Authorization") != f"Bearer {self.owner.token}":
            self._status(401, "GatedRepo")
            return
        rev = (api or resolve).group("rev") or "main"  # type: ignore[union-attr]
        if rev not in ("main", repo.commit):
            self._status(404, "RevisionNotFound")
            return
        if api and api.group("kind") in ("revision", None):
            self._json({"id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.commit,
                        "private": False, "gated": "auto" if repo.gated else False,
                        "siblings": [{"rfilename": name} for name in sorted(repo.files)]})
        elif api:
            self._json([self._tree_entry(repo, name) for name in sorted(repo.files)])
        else:
            name = resolve.group("file")  # type: ignore[union-attr]
            if name not in repo.files:
                self._status(404, "EntryNotFound", {"X-Repo-Commit": repo.commit})
                return
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{git_blob_sha1(repo.files[name])}"'}
            if repo.is_lfs(name):
                headers["X-Linked-Etag"] = f'"{repo.etag(name)}"'
                headers["X-Linked-Size"] = str(len(repo.files[name]))
            self._content(path, repo.files[name], headers, body)

    @staticmethod
    def _tree_entry(repo: Repo, name: str) -> dict[str, object]:
        data = repo.files[name]
        entry: dict[str, object] = {"type": "file", "path": name, "size": len(data),
                                    "oid": git_blob_sha1(data)}
        if repo.is_lfs(name):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                            "pointerSize": 134}
        return entry

    # -- responses ------------------------------------------------------------------------

    def _status(self, code: int, error_code: str | None = None,
                headers: dict[str, str] | None = None) -> None:
        payload = json.dumps({"error": f"status {code}"}).encode()
        self.send_response(code)
        if error_code:
            self.send_header("X-Error-Code", error_code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _json(self, data: object) -> None:
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _content(self, path: str, data: bytes, headers: dict[str, str], body: bool) -> None:
        data = self.owner.corrupt.get(path, data)
        start = 0
        match = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        if_range = self.headers.get("If-Range")
        if match and (if_range is None or if_range == headers.get("ETag")):
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if not body:
            return
        drop = self.owner.take_drop(path)
        if drop is not None:
            self.wfile.write(data[start:start + drop])
            self.wfile.flush()
            self.owner.count(path, len(data[start:start + drop]))
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(data[start:])
        self.owner.count(path, len(data) - start)
