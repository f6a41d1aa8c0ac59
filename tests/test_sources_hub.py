"""`hf:` and `opus-mt:` installs: the real huggingface_hub download code against a local Hub
mirror (tests/support/mirror.py) serving a tiny random Marian checkpoint built here.

Covered: only the files conversion needs are fetched (safetensors, not the .bin/TF/Flax/Rust/
ONNX copies), a connection dropped mid-body (huggingface_hub resumes it with Range), a file
whose bytes do not match its hash (refused and evicted from the cache), 404, 401 on a gated
repository (and success with HF_TOKEN), offline (HF_HUB_OFFLINE=1, connection refused) with
and without the cache, and `dragoman models install opus-mt:de-en` then a translation.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub", reason="hf: installs need the convert extra")
pytest.importorskip("transformers", reason="hf: installs need the convert extra")

from dragoman.server.errors import ModelNotFound, SourceUnavailable, StoreError
from dragoman.server.sources import hub
from dragoman.server.store import ModelStore
from tests.support.hfmodels import JUNK
from tests.support.mirror import Mirror

REPO = "Helsinki-NLP/opus-mt-de-en"
NEEDED = {"README.md", "config.json", "generation_config.json", "model.safetensors",
          "source.spm", "target.spm", "tokenizer_config.json", "vocab.json"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, sp_model: Path) -> Path:
    from tests.support.hfmodels import build_tiny_marian

    return build_tiny_marian(tmp_path_factory.mktemp("hf") / "opus-mt-de-en", sp_model)


@pytest.fixture()
def mirror(checkpoint: Path) -> Iterator[Mirror]:
    with Mirror() as m:
        m.add_repo(REPO, checkpoint)
        yield m


def _settings(mirror: Mirror | str, cache: Path, **changes: object) -> hub.HubSettings:
    endpoint = mirror.url if isinstance(mirror, Mirror) else mirror
    settings = hub.HubSettings(endpoint=endpoint, token=None, offline=False, cache_dir=str(cache))
    return hub.HubSettings(**{**settings.__dict__, **changes})


def _downloaded(mirror: Mirror, method: str = "GET") -> set[str]:
    prefix = f"/{REPO}/resolve/"
    return {p.split("/", 5)[-1] for p in mirror.paths(method) if p.startswith(prefix)}


def test_parse_refs() -> None:
    assert hub.parse_ref("facebook/nllb-200-distilled-600M@v1") == hub.HubRef(
        "facebook/nllb-200-distilled-600M", "v1")
    assert hub.opus_mt("de-en") == hub.HubRef(REPO)
    with pytest.raises(StoreError, match="expected hf:OWNER/REPO"):
        hub.parse_ref("just-a-name")
    with pytest.raises(StoreError, match="expected opus-mt:SRC-TGT"):
        hub.opus_mt("tc-big-en-fr")


def test_files_chosen_for_conversion() -> None:
    names = ["config.json", "pytorch_model.bin", "model.safetensors", "tf_model.h5",
             "onnx/model.onnx", "spiece.model", "README.md"]
    assert hub.choose_files(hub.HubRef("a/b"), names) == [
        "README.md", "config.json", "spiece.model", "model.safetensors"]
    assert "pytorch_model.bin" in hub.choose_files(hub.HubRef("a/b"),
                                                   ["config.json", "pytorch_model.bin"])
    with pytest.raises(StoreError, match="no PyTorch weights"):
        hub.choose_files(hub.HubRef("a/b"), ["config.json", "tf_model.h5"])


def test_opus_mt_install_fetches_only_what_conversion_needs(mirror: Mirror, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    model = hub.install(hub.opus_mt("de-en"), store, settings=_settings(mirror, tmp_path / "hf"))
    assert model.name == "opus-mt-de-en"
    assert model.manifest.pairs() == [("de", "en")]
    assert _downloaded(mirror, "HEAD") == NEEDED
    # source.spm and target.spm are the same blob: huggingface_hub fetches it once.
    assert _downloaded(mirror) in (NEEDED, NEEDED - {"source.spm"}, NEEDED - {"target.spm"})
    assert not set(JUNK) & _downloaded(mirror)
    assert f"/api/models/{REPO}" in mirror.paths("GET")

    from tests.test_sources_argos import _translate

    assert isinstance(_translate(tmp_path / "store", "der Hund", "de", "en"), str)


def test_interrupted_download_is_resumed(mirror: Mirror, tmp_path: Path) -> None:
    path = mirror.resolve_path(REPO, "model.safetensors")
    mirror.drops[path] = 2000
    snapshot = hub.fetch(hub.HubRef(REPO), settings=_settings(mirror, tmp_path / "hf"))
    gets = [r for r in mirror.requests if r.method == "GET" and r.path == path]
    # huggingface_hub reconnects by itself; it resumes with Range from the last whole chunk
    # it wrote (10 MB chunks), so a file this small starts over.
    assert len(gets) == 2 and gets[1].headers.get("Range") in (None, "bytes=0-")
    assert (snapshot / "model.safetensors").read_bytes() == mirror.repos[REPO].files[
        "model.safetensors"]


def test_checksum_mismatch_is_refused_and_evicted(mirror: Mirror, tmp_path: Path) -> None:
    path = mirror.resolve_path(REPO, "model.safetensors")
    real = mirror.repos[REPO].files["model.safetensors"]
    mirror.corrupt[path] = bytes(len(real))
    settings = _settings(mirror, tmp_path / "hf")
    with pytest.raises(SourceUnavailable, match="model.safetensors: checksum mismatch.*run again"):
        hub.fetch(hub.HubRef(REPO), settings=settings)
    del mirror.corrupt[path]
    snapshot = hub.fetch(hub.HubRef(REPO), settings=settings)  # fetched again, now intact
    assert (snapshot / "model.safetensors").read_bytes() == real


def test_missing_repository_is_not_found(mirror: Mirror, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="hf:nobody/nothing: no such repository"):
        hub.fetch(hub.HubRef("nobody/nothing"), settings=_settings(mirror, tmp_path / "hf"))
    with pytest.raises(ModelNotFound, match="no such revision"):
        hub.fetch(hub.HubRef(REPO, "v9"), settings=_settings(mirror, tmp_path / "hf"))


def test_gated_repository_needs_a_token(mirror: Mirror, checkpoint: Path, tmp_path: Path) -> None:
    mirror.add_repo("meta/gated-mt", checkpoint, gated=True)
    with pytest.raises(StoreError, match=r"hf:meta/gated-mt is gated \(401\).*HF_TOKEN"):
        hub.fetch(hub.HubRef("meta/gated-mt"), settings=_settings(mirror, tmp_path / "hf"))
    snapshot = hub.fetch(hub.HubRef("meta/gated-mt"),
                         settings=_settings(mirror, tmp_path / "hf", token=mirror.token))
    assert (snapshot / "config.json").is_file()


def test_offline(mirror: Mirror, tmp_path: Path) -> None:
    cache = tmp_path / "hf"
    with pytest.raises(SourceUnavailable, match="HF_HUB_OFFLINE is set and hf:.* not in the "
                                                "Hugging Face cache"):
        hub.fetch(hub.HubRef(REPO), settings=_settings(mirror, cache, offline=True))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(SourceUnavailable, match="cannot be reached"):
        hub.fetch(hub.HubRef(REPO), settings=_settings(dead, cache))
    online = hub.fetch(hub.HubRef(REPO), settings=_settings(mirror, cache))
    before = len(mirror.requests)
    assert hub.fetch(hub.HubRef(REPO), settings=_settings(mirror, cache, offline=True)) == online
    assert hub.fetch(hub.HubRef(REPO), settings=_settings(dead, cache)) == online
    assert len(mirror.requests) == before, "offline fetches must not touch the network"


def test_settings_from_the_environment() -> None:
    s = hub.HubSettings.from_env({"HF_ENDPOINT": "http://m/", "HF_TOKEN": "t",
                                  "HF_HUB_OFFLINE": "1", "HF_HOME": "/h"})
    assert s == hub.HubSettings("http://m", "t", True, "/h/hub")
    assert hub.HubSettings.from_env({}).where == "https://huggingface.co"
