"""The source dispatcher, the catalogue, --install pair parsing and disk-full handling."""

from __future__ import annotations

import errno
import shutil
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

from dragoman.server.errors import InvalidInput, SourceUnavailable, StoreError
from dragoman.server.sources import acquire, hub
from dragoman.server.sources.catalogue import HF_CATALOGUE, catalogue_entry
from dragoman.server.sources.download import download
from dragoman.server.store import InstallOptions, ModelStore
from tests.support.mirror import Mirror

Usage = namedtuple("Usage", "total used free")


def test_pairs_are_parsed() -> None:
    assert acquire.parse_pair("de-en") == ("de", "en")
    assert acquire.parse_pair("de:en", ":") == ("de", "en")
    with pytest.raises(StoreError, match="expected SRC-TGT"):
        acquire.parse_pair("german-english")


def test_bad_install_pair_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="--install: 'en-de': expected SRC:TGT"):
        acquire.ensure_pairs(["en-de"], ModelStore(tmp_path))


def test_an_existing_path_wins_over_a_scheme(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    store = ModelStore(tmp_path / "store")
    monkeypatch.setattr(store, "install", lambda path, options: calls.append(path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hf:odd-folder").mkdir()
    acquire.install("hf:odd-folder", store)
    acquire.install("./model", store)
    assert calls == [Path("hf:odd-folder"), Path("model")]


def test_catalogue_entries_bring_their_install_options(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    seen: list[InstallOptions] = []
    monkeypatch.setattr(hub, "install", lambda ref, store, options, progress: seen.append(options))
    acquire.install("hf:google/flan-t5-small", ModelStore(tmp_path))
    acquire.install("hf:google/flan-t5-small", ModelStore(tmp_path),
                    InstallOptions(source_languages=("de",)))
    assert seen[0].task == "summarise" and seen[0].source_languages == ("en",)
    assert seen[1].source_languages == ("de",)


def test_catalogue_is_well_formed() -> None:
    from dragoman.server.text.languages import is_language_code

    specs = [e.spec for e in HF_CATALOGUE]
    assert len(specs) == len(set(specs))
    for entry in HF_CATALOGUE:
        assert entry.task in ("translate", "summarise")
        assert all(is_language_code(c) for c in entry.source_languages + entry.target_languages)
        assert entry.spec.startswith(("hf:", "opus-mt:"))
    assert catalogue_entry("facebook/m2m100_418M") is not None
    families = " ".join(specs)
    for family in ("opus-mt:", "nllb-200-distilled", "m2m100", "bart", "pegasus", "t5"):
        assert family in families


def test_disk_full_before_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Mirror() as mirror:
        url = mirror.add_file("/big.bin", b"x" * 5_000_000)
        monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**9, 10**9 - 1000, 1000))
        with pytest.raises(SourceUnavailable, match=r"disk full: need 5 MB in .*, 0 MB free"):
            download(url, tmp_path / "big.bin")
    assert not (tmp_path / "big.bin").exists()


def test_disk_full_while_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = Path.open

    def full(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if self.name.endswith(".part") and "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_open(self, mode, *args, **kwargs)

    with Mirror() as mirror:
        url = mirror.add_file("/f.bin", b"x" * 1000)
        monkeypatch.setattr(Path, "open", full)
        with pytest.raises(SourceUnavailable, match="disk full while downloading f.bin"):
            download(url, tmp_path / "f.bin")


def test_disk_full_from_huggingface_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")

    def no_space(*args: Any, **kwargs: Any) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    with Mirror() as mirror:
        mirror.add_repo("a/b", files={"config.json": b"{}", "model.safetensors": b"w"})
        monkeypatch.setattr(huggingface_hub, "snapshot_download", no_space)
        settings = hub.HubSettings(mirror.url, None, False, str(tmp_path / "hf"))
        with pytest.raises(SourceUnavailable, match="disk full while downloading hf:a/b"):
            hub.fetch(hub.HubRef("a/b"), settings=settings)


def test_disk_full_while_installing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "m"
    src.mkdir()
    (src / "model.bin").write_bytes(b"\0")
    (src / "sentencepiece.model").write_bytes(b"sp")

    def no_space(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", no_space)
    store = ModelStore(tmp_path / "store")
    with pytest.raises(SourceUnavailable, match="disk full while installing"):
        store.install(src, InstallOptions(task="translate", source_languages=("en",),
                                          target_languages=("de",)))
    assert [p for p in (tmp_path / "store").iterdir()] == []
