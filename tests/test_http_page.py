"""The web page in a real headless Chromium (Debian's, driven by Playwright without its own
browser download): load /, type, pick languages, translate, read the result; the same for a
summary; a screenshot of each is kept under tests/artifacts/ (gitignored)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dragoman.server.rpc.app import ServerThread, build_service
from tests.conftest import server_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
EN = "The city council approved the new budget on Tuesday evening."
ARTICLE = (
    "The city council approved the new budget on Tuesday evening. Prices for electricity rose by "
    "12% compared with last year. Police are asking witnesses to come forward with any "
    "information. The museum will reopen its doors after two years of renovation. Local farmers "
    "are worried about the long period of dry weather."
)


@pytest.fixture(scope="module")
def url(copy_store: Path) -> Iterator[str]:
    config = server_config(copy_store, http_address="127.0.0.1:0")
    with ServerThread(build_service(config), config) as running:
        yield running.http_url


@pytest.fixture()
def page(tmp_path: Path):  # type: ignore[no-untyped-def]
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) drives Chromium")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium: tests/run installs Debian's chromium")
    with sync_api.sync_playwright() as pw:
        # A fresh profile per test (Playwright passes it as --user-data-dir).
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1200, "height": 900})
        context.set_default_timeout(60_000)
        try:
            yield context.new_page()
        finally:
            context.close()


def _keep(page, name: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def _ready(page, url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url + "/")
    page.wait_for_selector("#status[data-state=ready]")


def test_translate_in_the_browser(page, url: str, swapcase) -> None:  # type: ignore[no-untyped-def]
    _ready(page, url)
    assert page.title() == "Dragoman"
    page.fill("#text", EN)
    page.select_option("#source", "en")
    page.select_option("#target", "de")
    page.click("#run")
    page.wait_for_selector("#status[data-state=done]")
    assert page.input_value("#result") == swapcase(EN)
    assert "copy-en-de" in page.text_content("#meta")
    assert page.is_enabled("#copy")
    _keep(page, "page-translate.png")


def test_detect_source_and_run_from_the_keyboard(page, url: str, swapcase) -> None:  # type: ignore[no-untyped-def]
    _ready(page, url)
    page.focus("#text")
    page.keyboard.type(EN)
    page.select_option("#target", "de")  # source stays "Detect language"
    page.focus("#text")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#status[data-state=done]")
    assert page.input_value("#result") == swapcase(EN)
    assert "(detected)" in page.text_content("#meta")


def test_summarise_in_the_browser(page, url: str) -> None:  # type: ignore[no-untyped-def]
    _ready(page, url)
    page.check("#task-summarise")
    assert page.text_content("#run") == "Summarise"
    page.fill("#text", ARTICLE)
    page.select_option("#method", "SUMMARY_METHOD_EXTRACTIVE")
    page.fill("#length", "2")
    page.click("#run")
    page.wait_for_selector("#status[data-state=done]")
    summary = page.input_value("#result")
    sentences = [s for s in summary.replace("\n", " ").split(". ") if s.strip()]
    assert len(sentences) == 2
    assert all(s.rstrip(".") in ARTICLE for s in sentences)
    assert "extractive" in page.text_content("#meta")
    _keep(page, "page-summarise.png")


def test_open_a_file(page, url: str, tmp_path: Path, swapcase) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "story.html"
    doc.write_text(f"<p>{EN}</p>")
    _ready(page, url)
    page.set_input_files("#file", str(doc))
    page.wait_for_function("document.getElementById('text').value.startsWith('<p>')")
    assert page.input_value("#format") == "TEXT_FORMAT_HTML"
    page.select_option("#target", "de")
    page.click("#run")
    page.wait_for_selector("#status[data-state=done]")
    assert page.input_value("#result") == f"<p>{swapcase(EN)}</p>"
