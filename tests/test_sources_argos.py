"""`argos:SRC-TGT` and the download code, against a local mirror started by the tests.

The mirror serves an Argos-format index and `.argosmodel` packages built here (the swapcase
copy model, so the installed model's output is exact). Faults: the connection dropped mid-body
(resumed with HTTP Range), a part left by an earlier process (resumed), wrong bytes (SHA-256
mismatch), 404, 401 and a refused connection (offline).
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dragoman.server.errors import ModelNotFound, SourceUnavailable, StoreError
from dragoman.server.sources import argos
from dragoman.server.sources.download import Expected, download
from dragoman.server.store import ModelStore
from tests.support.mirror import Mirror

PACKAGE = "/packages/translate-en_de-1_1.argosmodel"


@pytest.fixture(scope="module")
def package_bytes(tmp_path_factory: pytest.TempPathFactory, sp_model: Path) -> bytes:
    from tests.support.argospackage import build_argos_package
    from tests.support.copymodel import build_copy_model, swapcase_mapping

    work = tmp_path_factory.mktemp("argos-src")
    model = build_copy_model(work / "ct2", sp_model, mapping=swapcase_mapping(sp_model),
                             quantization="int8", max_positions=256)
    path = build_argos_package(work / "pkg.argosmodel", sp_model, model, "en", "de",
                               package_version="1.1")
    return path.read_bytes()


def _index(entries: list[dict[str, object]]) -> bytes:
    return json.dumps(entries, indent=2).encode()


def _entry(version: str, link: str, **extra: object) -> dict[str, object]:
    return {"package_version": version, "argos_version": "1.9", "from_code": "en",
            "from_name": "English", "to_code": "de", "to_name": "German", "links": [link],
            "code": "translate-en_de", **extra}


@pytest.fixture()
def mirror(package_bytes: bytes) -> Iterator[Mirror]:
    with Mirror() as m:
        m.add_file(PACKAGE, package_bytes)
        m.add_file("/packages/old.argosmodel", b"never fetched: an older version")
        m.add_file("/index.json", _index([
            _entry("1.0", "packages/old.argosmodel"),
            _entry("1.1", PACKAGE.lstrip("/"), size=len(package_bytes),
                   sha256=hashlib.sha256(package_bytes).hexdigest()),
            {"package_version": "1.9", "from_code": "de", "to_code": "en",
             "links": ["ipfs://Qm"], "code": "translate-de_en"},
            "not an entry",
        ]))
        yield m


def _translate(store: Path, text: str, source: str, target: str) -> str:
    from dragoman.server.build import build_service
    from dragoman.server.service import TranslateInput
    from tests.conftest import server_config

    service = build_service(server_config(store))
    try:
        return service.translate(TranslateInput(text, target, source)).result(60).text
    finally:
        service.close(timeout=5)


def test_index_parsing_picks_the_newest_package(mirror: Mirror) -> None:
    packages = argos.load_index(f"{mirror.url}/index.json")
    assert {p.version for p in packages} == {"1.0", "1.1", "1.9"}
    best = argos.newest(packages, "en", "de")
    assert best.version == "1.1" and best.links == (mirror.url + PACKAGE,)
    with pytest.raises(ModelNotFound, match="no package for de-en"):
        argos.newest(packages, "de", "en")  # only an ipfs:// link
    with pytest.raises(ModelNotFound, match="no package for en-xx; pairs with en: en-de"):
        argos.newest(packages, "en", "xx")


def test_argos_install_then_translate_exactly(
    mirror: Mirror, tmp_path: Path, swapcase: Callable[[str], str]
) -> None:
    store = ModelStore(tmp_path / "store")
    model = argos.install("en", "de", store, index=f"{mirror.url}/index.json")
    assert model.name == "argos-en-de"
    assert mirror.paths("GET") == ["/index.json", PACKAGE]
    assert not any((tmp_path / "store" / ".downloads").iterdir()), "package left behind"
    text = "The city council approved the budget."
    assert _translate(tmp_path / "store", text, "en", "de") == swapcase(text)


def test_index_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert argos.index_url({}) == argos.DEFAULT_INDEX
    assert "argospm-index" in argos.DEFAULT_INDEX
    monkeypatch.setenv("DRAGOMAN_ARGOS_INDEX", "http://mirror.example/index.json")
    assert argos.index_url() == "http://mirror.example/index.json"


def test_interrupted_download_resumes_with_range(mirror: Mirror, tmp_path: Path,
                                                 package_bytes: bytes) -> None:
    mirror.drops[PACKAGE] = 5000
    store = ModelStore(tmp_path / "store")
    argos.install("en", "de", store, index=f"{mirror.url}/index.json")
    gets = [r for r in mirror.requests if r.path == PACKAGE]
    assert len(gets) == 2
    assert "Range" not in gets[0].headers
    assert gets[1].headers["Range"] == "bytes=5000-"
    assert [m.name for m in store.list()] == ["argos-en-de"]


def test_part_left_by_an_earlier_run_is_resumed(mirror: Mirror, tmp_path: Path,
                                               package_bytes: bytes) -> None:
    url = mirror.url + PACKAGE
    dest = tmp_path / "dl" / "pkg.argosmodel"
    dest.parent.mkdir()
    (dest.parent / "pkg.argosmodel.part").write_bytes(package_bytes[:1234])
    etag = f'"{__import__("tests.support.mirror", fromlist=["x"]).git_blob_sha1(package_bytes)}"'
    (dest.parent / "pkg.argosmodel.part.json").write_text(json.dumps({"url": url,
                                                                        "validator": etag}))
    download(url, dest, Expected(len(package_bytes),
                                 hashlib.sha256(package_bytes).hexdigest()))
    assert dest.read_bytes() == package_bytes
    [get] = [r for r in mirror.requests if r.path == PACKAGE]
    assert get.headers["Range"] == "bytes=1234-" and get.headers["If-Range"] == etag
    assert sorted(p.name for p in dest.parent.iterdir()) == ["pkg.argosmodel"]


def test_changed_file_starts_over(mirror: Mirror, tmp_path: Path, package_bytes: bytes) -> None:
    url = mirror.url + PACKAGE
    dest = tmp_path / "pkg.argosmodel"
    (tmp_path / "pkg.argosmodel.part").write_bytes(b"stale bytes of an older file")
    (tmp_path / "pkg.argosmodel.part.json").write_text(json.dumps({"url": url,
                                                                     "validator": '"old"'}))
    download(url, dest, Expected(len(package_bytes)))
    assert dest.read_bytes() == package_bytes


def test_checksum_mismatch_is_refused_and_discarded(mirror: Mirror, tmp_path: Path,
                                                    package_bytes: bytes) -> None:
    mirror.corrupt[PACKAGE] = bytes(len(package_bytes))
    store = ModelStore(tmp_path / "store")
    with pytest.raises(SourceUnavailable, match="checksum mismatch.*run again"):
        argos.install("en", "de", store, index=f"{mirror.url}/index.json")
    assert store.list() == []
    assert not any((tmp_path / "store" / ".downloads").iterdir())


def test_size_mismatch_is_refused(mirror: Mirror, tmp_path: Path) -> None:
    url = mirror.url + PACKAGE
    with pytest.raises(SourceUnavailable, match="the index says 10"):
        download(url, tmp_path / "x", Expected(size=10))


def test_404_and_401(mirror: Mirror, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    mirror.statuses[PACKAGE] = 404
    with pytest.raises(ModelNotFound, match="not found at .*404"):
        argos.install("en", "de", store, index=f"{mirror.url}/index.json")
    mirror.statuses[PACKAGE] = 401
    with pytest.raises(StoreError, match="access denied .*401"):
        argos.install("en", "de", store, index=f"{mirror.url}/index.json")
    with pytest.raises(ModelNotFound, match="Argos package index not found"):
        argos.install("en", "de", store, index=f"{mirror.url}/missing.json")
    assert store.list() == []


def test_offline_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SourceUnavailable, match=r"cannot download the Argos package index from "
                                                 r"127.0.0.1:\d+: .*refused.*\(offline\?\)"):
        argos.install("en", "de", ModelStore(tmp_path / "store"),
                      index=f"http://127.0.0.1:{port}/index.json")


def test_not_an_index(mirror: Mirror, tmp_path: Path) -> None:
    mirror.add_file("/object.json", b'{"packages": []}')
    with pytest.raises(SourceUnavailable, match="not an Argos package index"):
        argos.load_index(f"{mirror.url}/object.json")


def test_progress_lines_when_not_a_terminal(mirror: Mirror, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from dragoman.server.sources.progress import LineProgress

    download(mirror.url + PACKAGE, tmp_path / "p.argosmodel", progress=LineProgress)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines()[-1].startswith("p.argosmodel: 100%")
