"""Model store: manifests, installs from folders and zips, safety of the zip path."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from dragoman.server.errors import ModelNotFound, StoreError
from dragoman.server.manifest import Manifest, read_manifest
from dragoman.server.store import InstallOptions, ModelStore, safe_extract


def _fake_ct2_folder(path: Path, with_manifest: bool = False) -> Path:
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(b"\0" * 16)
    (path / "config.json").write_text("{}")
    (path / "sentencepiece.model").write_bytes(b"sp")
    if with_manifest:
        m = Manifest("pre-made", "translate", ("fr",), ("en",))
        (path / "dragoman.json").write_text(m.to_json())
    return path


def test_install_ct2_folder_needs_task_and_languages(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    src = _fake_ct2_folder(tmp_path / "m")
    with pytest.raises(StoreError, match="--task --source --target"):
        store.install(src)
    assert store.list() == []
    assert not any((tmp_path / "store").iterdir()), "failed install left files behind"


def test_install_ct2_folder(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    src = _fake_ct2_folder(tmp_path / "m")
    model = store.install(src, InstallOptions(name="de-en", task="translate",
                                              source_languages=("de",), target_languages=("en",)))
    assert model.path == tmp_path / "store" / "de-en"
    manifest = read_manifest(model.path)
    assert manifest.pairs() == [("de", "en")]
    assert manifest.tokenizer.source == "sentencepiece.model"
    assert [m.name for m in store.list()] == ["de-en"]


def test_folder_manifest_is_used(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    model = store.install(_fake_ct2_folder(tmp_path / "m", with_manifest=True))
    assert model.name == "pre-made"
    assert model.manifest.source_languages == ("fr",)


def test_duplicate_name_needs_force(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    src = _fake_ct2_folder(tmp_path / "m", with_manifest=True)
    store.install(src)
    with pytest.raises(StoreError, match="already installed"):
        store.install(src)
    store.install(src, InstallOptions(force=True))
    assert [m.name for m in store.list()] == ["pre-made"]


def test_remove(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    store.install(_fake_ct2_folder(tmp_path / "m", with_manifest=True))
    store.remove("pre-made")
    assert store.list() == []
    with pytest.raises(ModelNotFound, match="no model named 'pre-made'"):
        store.remove("pre-made")


def test_unknown_source(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="neither a CTranslate2 model"):
        store.install(tmp_path / "empty")
    with pytest.raises(StoreError, match="does not exist"):
        store.install(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("hi")
    with pytest.raises(StoreError, match="not a zip"):
        store.install(tmp_path / "file.txt")


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "pkg/../../evil.txt"])
def test_zip_path_traversal_is_refused(tmp_path: Path, member: str) -> None:
    bad = tmp_path / "bad.argosmodel"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("pkg/metadata.json", json.dumps({"from_code": "en", "to_code": "de"}))
        zf.writestr(member, "owned")
    store = ModelStore(tmp_path / "store")
    with pytest.raises(StoreError, match="unsafe path"):
        store.install(bad)
    assert not (tmp_path / "evil.txt").exists()
    assert store.list() == []


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "link.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        info = zipfile.ZipInfo("pkg/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(StoreError, match="symbolic link"):
        safe_extract(bad, tmp_path / "out")


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/zeros", b"\0" * 10_000)
    with pytest.raises(StoreError, match="more than 1000 bytes"):
        safe_extract(big, tmp_path / "out", max_bytes=1000)


def test_argos_package_without_metadata(tmp_path: Path) -> None:
    pkg = tmp_path / "x.argosmodel"
    with zipfile.ZipFile(pkg, "w") as zf:
        zf.writestr("pkg/readme.txt", "hi")
    with pytest.raises(StoreError, match="no metadata.json"):
        ModelStore(tmp_path / "store").install(pkg)


def test_broken_manifest_is_skipped_in_listing(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    (store_dir / "broken").mkdir(parents=True)
    (store_dir / "broken" / "dragoman.json").write_text("{not json")
    assert ModelStore(store_dir).list() == []


def test_manifest_validation() -> None:
    with pytest.raises(StoreError, match="invalid model name"):
        Manifest("../x", "translate", ("en",), ("de",))
    with pytest.raises(StoreError, match="task must be one of"):
        Manifest("x", "dance", ("en",), ("de",))
    m = Manifest("x", "translate", ("en", "de"), ("en", "de", "fr"))
    assert sorted(m.pairs()) == [("de", "en"), ("de", "fr"), ("en", "de"), ("en", "fr")]
    assert Manifest.from_dict(json.loads(m.to_json())) == m
