"""Store confinement and hostile packages (issue 10 defects 5 and 10, issue 12 folder installs).

Each test reproduces a defect found by probing `dragoman models install` with hostile input:
folder names, symlinks out of the source folder, manifests pointing outside the model folder,
language codes the service does not accept, and malformed packages that used to end in an
"unexpected ..." traceback line with exit 1.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from dragoman.server.errors import StoreError
from dragoman.server.manifest import Manifest, read_manifest
from dragoman.server.store import InstallOptions, ModelStore

TRANSLATE_EN_DE = InstallOptions(task="translate", source_languages=("en",),
                                 target_languages=("de",))


def _ct2_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(b"\0" * 16)
    (path / "config.json").write_text("{}")
    (path / "sentencepiece.model").write_bytes(b"sp")
    return path


def _argos_zip(path: Path, metadata: object, *, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/metadata.json", json.dumps(metadata))
        zf.writestr("pkg/model/model.bin", b"\0" * 16)
        zf.writestr("pkg/model/config.json", "{}")
        zf.writestr("pkg/sentencepiece.model", b"sp")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


# -- the model's name comes from the folder (issue 12: README example failed) -----------------


def test_folder_install_is_named_after_the_folder(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    model = store.install(_ct2_folder(tmp_path / "opus-mt-en-de-ct2"), TRANSLATE_EN_DE)
    assert model.name == "opus-mt-en-de-ct2"
    assert model.path == tmp_path / "store" / "opus-mt-en-de-ct2"


def test_folder_name_is_sanitised(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    model = store.install(_ct2_folder(tmp_path / "my model (v2)!"), TRANSLATE_EN_DE)
    assert model.name == "my-model-v2"


# -- symlinks out of the source folder (issue 10 defect 5) ------------------------------------


def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    src = _ct2_folder(tmp_path / "m")
    (src / "passwd").symlink_to(secret)
    store = ModelStore(tmp_path / "store")
    with pytest.raises(StoreError, match=r"passwd.*points outside"):
        store.install(src, TRANSLATE_EN_DE)
    assert not any(p.name == "passwd" for p in (tmp_path / "store").rglob("*"))
    assert store.list() == []


def test_tokenizer_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "key.pem"
    secret.write_text("PRIVATE")
    src = _ct2_folder(tmp_path / "m")
    (src / "sentencepiece.model").unlink()
    (src / "sentencepiece.model").symlink_to(secret)
    with pytest.raises(StoreError, match="points outside"):
        ModelStore(tmp_path / "store").install(src, TRANSLATE_EN_DE)


def test_symlink_inside_the_folder_is_copied_as_a_file(tmp_path: Path) -> None:
    src = _ct2_folder(tmp_path / "m")
    (src / "source.spm").symlink_to("sentencepiece.model")
    model = ModelStore(tmp_path / "store").install(src, TRANSLATE_EN_DE)
    copied = model.path / "source.spm"
    assert copied.is_file() and not copied.is_symlink()
    assert copied.read_bytes() == b"sp"


def test_symlink_loop_is_a_clear_error(tmp_path: Path) -> None:
    src = _ct2_folder(tmp_path / "m")
    (src / "a").symlink_to(src / "b")
    (src / "b").symlink_to(src / "a")
    with pytest.raises(StoreError, match="symbolic link loop"):
        ModelStore(tmp_path / "store").install(src, TRANSLATE_EN_DE)


def test_symlinked_folder_loop_is_refused(tmp_path: Path) -> None:
    src = _ct2_folder(tmp_path / "m")
    (src / "again").symlink_to(src)
    with pytest.raises(StoreError, match="links to folders"):
        ModelStore(tmp_path / "store").install(src, TRANSLATE_EN_DE)


# -- manifests pointing outside the model folder ---------------------------------------------


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "sub/../../x.model"])
def test_manifest_tokenizer_outside_the_folder_is_refused(tmp_path: Path, path: str) -> None:
    src = _ct2_folder(tmp_path / "m")
    data = json.loads(Manifest("evil", "translate", ("en",), ("de",)).to_json())
    data["tokenizer"]["source"] = path
    (src / "dragoman.json").write_text(json.dumps(data))
    with pytest.raises(StoreError, match="outside the model folder"):
        ModelStore(tmp_path / "store").install(src)


def test_manifest_escaping_on_load_is_refused(tmp_path: Path) -> None:
    """A store folder edited (or planted) after install is refused when it is read."""
    store = ModelStore(tmp_path / "store")
    model = store.install(_ct2_folder(tmp_path / "m"), TRANSLATE_EN_DE)
    secret = tmp_path / "secret"
    secret.write_text("x")
    (model.path / "sentencepiece.model").unlink()
    (model.path / "sentencepiece.model").symlink_to(secret)
    with pytest.raises(StoreError, match="outside the model folder"):
        read_manifest(model.path)
    assert store.list() == []


# -- language codes at install time ----------------------------------------------------------


def test_manifest_language_codes_are_validated(tmp_path: Path) -> None:
    src = _ct2_folder(tmp_path / "m")
    with pytest.raises(StoreError, match=r"'english' is not an ISO 639-1"):
        ModelStore(tmp_path / "store").install(src, InstallOptions(
            task="translate", source_languages=("english",), target_languages=("de",)))


def test_iso_639_3_codes_become_639_1(tmp_path: Path) -> None:
    model = ModelStore(tmp_path / "store").install(
        _ct2_folder(tmp_path / "m"),
        InstallOptions(task="translate", source_languages=("deu",), target_languages=("eng",)))
    assert model.manifest.pairs() == [("de", "en")]


def test_argos_metadata_language_codes_are_validated(tmp_path: Path) -> None:
    pkg = _argos_zip(tmp_path / "x.argosmodel", {"from_code": "zt", "to_code": "en"})
    store = ModelStore(tmp_path / "store")
    with pytest.raises(StoreError, match=r"'zt' is not an ISO 639-1.*--source"):
        store.install(pkg)
    # The user can say what the package really is.
    model = store.install(pkg, InstallOptions(source_languages=("zh",)))
    assert model.manifest.pairs() == [("zh", "en")]


# -- malformed packages: one clear StoreError each (issue 10 defect 10) ----------------------


def test_corrupt_zip_is_a_clear_error(tmp_path: Path) -> None:
    pkg = _argos_zip(tmp_path / "x.argosmodel", {"from_code": "en", "to_code": "de"})
    data = bytearray(pkg.read_bytes())
    start = data.index(b"\0" * 16)  # model.bin's stored bytes
    data[start:start + 16] = b"\x01" * 16  # CRC no longer matches
    pkg.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        ModelStore(tmp_path / "store").install(pkg)


def test_truncated_zip_is_a_clear_error(tmp_path: Path) -> None:
    pkg = _argos_zip(tmp_path / "x.argosmodel", {"from_code": "en", "to_code": "de"})
    pkg.write_bytes(pkg.read_bytes()[:-30])
    with pytest.raises(StoreError, match="not a zip|corrupt"):
        ModelStore(tmp_path / "store").install(pkg)


def test_metadata_that_is_a_list_is_a_clear_error(tmp_path: Path) -> None:
    pkg = _argos_zip(tmp_path / "x.argosmodel", [{"from_code": "en", "to_code": "de"}])
    with pytest.raises(StoreError, match="metadata.json must hold a JSON object"):
        ModelStore(tmp_path / "store").install(pkg)


def test_non_numeric_max_input_tokens_is_a_clear_error(tmp_path: Path) -> None:
    pkg = _argos_zip(tmp_path / "x.argosmodel",
                     {"from_code": "en", "to_code": "de", "max_input_tokens": "lots"})
    with pytest.raises(StoreError, match="max_input_tokens"):
        ModelStore(tmp_path / "store").install(pkg)


def test_package_junk_is_not_unpacked(tmp_path: Path) -> None:
    """Only what a model folder holds is extracted; anything else in the zip is skipped."""
    pkg = _argos_zip(tmp_path / "x.argosmodel", {"from_code": "en", "to_code": "de"},
                     extra={"pkg/junk/filler.bin": b"\0" * 50_000})
    model = ModelStore(tmp_path / "store").install(pkg)
    assert not any("filler" in p.name for p in (tmp_path / "store").rglob("*"))
    assert (model.path / "model.bin").is_file()


def test_package_over_the_model_size_cap_is_refused(tmp_path: Path) -> None:
    pkg = _argos_zip(tmp_path / "x.argosmodel", {"from_code": "en", "to_code": "de"},
                     extra={"pkg/model/huge.bin": b"\0" * 50_000})
    store = ModelStore(tmp_path / "store", max_model_bytes=10_000)
    with pytest.raises(StoreError, match=r"more than 10000 bytes.*--max-model-mb"):
        store.install(pkg)
    assert store.list() == []
    assert not [p for p in (tmp_path / "store").iterdir() if not p.name.startswith(".downloads")]


def test_folder_over_the_model_size_cap_is_refused(tmp_path: Path) -> None:
    src = _ct2_folder(tmp_path / "m")
    (src / "model.bin").write_bytes(b"\0" * 20_000)
    store = ModelStore(tmp_path / "store", max_model_bytes=10_000)
    with pytest.raises(StoreError, match="more than 10000 bytes"):
        store.install(src, TRANSLATE_EN_DE)


def test_cli_store_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    from tests.test_cli_e2e import run

    pkg = _argos_zip(tmp_path / "x.argosmodel", [{"from_code": "en"}])
    proc = run("models", "install", str(pkg), "--models", str(tmp_path / "store"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "unexpected" not in proc.stderr
    src = _ct2_folder(tmp_path / "loop")
    os.symlink(src / "l1", src / "l2")
    os.symlink(src / "l2", src / "l1")
    proc = run("models", "install", str(src), "--task", "translate", "--source", "en",
               "--target", "de", "--models", str(tmp_path / "store"))
    assert proc.returncode == 2, proc.stderr
    assert "symbolic link loop" in proc.stderr and proc.stderr.count("\n") == 1


def test_cli_max_model_mb(tmp_path: Path) -> None:
    from tests.test_cli_e2e import _env, run

    pkg = _argos_zip(tmp_path / "x.argosmodel", {"from_code": "en", "to_code": "de"},
                     extra={"pkg/model/weights.bin": b"\0" * 1_500_000})
    store = str(tmp_path / "store")
    proc = run("models", "install", str(pkg), "--models", store, "--max-model-mb", "1")
    assert proc.returncode == 2 and "unpacks to more than 1048576 bytes" in proc.stderr
    proc = run("models", "install", str(pkg), "--models", store,
               env=_env(DRAGOMAN_MAX_MODEL_MB="1"))
    assert proc.returncode == 2 and "--max-model-mb" in proc.stderr, proc.stderr
    proc = run("models", "install", str(pkg), "--models", store, "--max-model-mb", "2")
    assert proc.returncode == 0, proc.stderr
