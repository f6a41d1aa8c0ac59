"""The HTTP adapter over a real socket (port 0) against the tiny copy models: every endpoint of
the LibreTranslate and DeepL dialects and of Dragoman's own JSON, every error status, string
and array ``q``, HTML kept, ``auto`` source detection, and the dialects' own client libraries
used unchanged."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import requests

from dragoman.server.access import AccessControl, Principal, QuotaExceeded
from dragoman.server.rpc.app import ServerThread, build_service
from dragoman.server.text.segment import split_document
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc
from tests.conftest import server_config
from tests.support.http import HttpThread

EN = "The city council approved the new budget on Tuesday evening. Prices rose by 12% last year."
EN2 = "Police are asking witnesses to come forward with any information."
DE = "Der Stadtrat hat den neuen Haushalt am Dienstag beschlossen. Die Polizei sucht Zeugen."
HTML = '<p>The city council <b>approved</b> the <a href="https://example.org/Budget">new budget</a>.</p>'
ARTICLE = (
    "The city council approved the new budget on Tuesday evening. Prices for electricity rose by "
    "12% compared with last year. Police are asking witnesses to come forward with any "
    "information. The museum will reopen its doors after two years of renovation. Local farmers "
    "are worried about the long period of dry weather."
)


@pytest.fixture(scope="module")
def server(copy_store: Path) -> Iterator[ServerThread]:
    config = server_config(copy_store, http_address="127.0.0.1:0", max_chars=2000)
    with ServerThread(build_service(config), config) as running:
        yield running


@pytest.fixture(scope="module")
def url(server: ServerThread) -> str:
    return server.http_url


@pytest.fixture(scope="module")
def expected(swapcase: Callable[[str], str]) -> Callable[[str], str]:
    """What the en->de swapcase model makes of a plain-text document."""

    def translate(text: str) -> str:
        doc = split_document(text, "en")
        return doc.rebuild([swapcase(s) for s in doc.sentences])

    return translate


# -- LibreTranslate -----------------------------------------------------------------------------


def test_lt_translate_string_with_auto_detection(url: str, expected) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(f"{url}/translate", json={"q": EN, "source": "auto", "target": "de"}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["translatedText"] == expected(EN)
    assert body["translatedText"] != EN
    assert body["detectedLanguage"]["language"] == "en"
    assert 50 < body["detectedLanguage"]["confidence"] <= 100  # LibreTranslate's 0-100 scale
    assert "alternatives" not in body


def test_lt_translate_array_keeps_order_and_shape(url: str, expected) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(f"{url}/translate", json={"q": [EN, EN2], "source": "en", "target": "de"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"translatedText": [expected(EN), expected(EN2)]}
    auto = requests.post(f"{url}/translate", json={"q": [EN, DE], "source": "auto", "target": "en"},
                         timeout=30).json()
    assert auto["translatedText"] == [EN, DE]  # en->en is the text itself; de->en copies
    assert [d["language"] for d in auto["detectedLanguage"]] == ["en", "de"]


def test_lt_translate_form_body_as_libretranslate_clients_send(url: str, expected) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(f"{url}/translate", data={"q": EN, "source": "en", "target": "de"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["translatedText"] == expected(EN)


def test_lt_html_keeps_tags_and_attributes(url: str, swapcase) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(f"{url}/translate", json={"q": HTML, "source": "en", "target": "de",
                                                "format": "html"}, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["translatedText"]
    assert out.startswith("<p>") and out.endswith("</p>")
    assert "<b>" + swapcase("approved").strip() + "</b>" in out or "<b>APPROVED</b>" in out
    assert 'href="https://example.org/Budget"' in out  # attributes untouched
    assert "tHE CITY COUNCIL" in out


def test_lt_alternatives_are_accepted_and_empty(url: str) -> None:
    one = requests.post(f"{url}/translate", json={"q": EN, "source": "en", "target": "de",
                                                  "alternatives": 3}, timeout=30).json()
    assert one["alternatives"] == []
    many = requests.post(f"{url}/translate", json={"q": [EN, EN2], "source": "en", "target": "de",
                                                   "alternatives": 2}, timeout=30).json()
    assert many["alternatives"] == [[], []]


def test_lt_detect(url: str) -> None:
    r = requests.post(f"{url}/detect", data={"q": DE}, timeout=30)
    assert r.status_code == 200, r.text
    found = r.json()
    assert found[0]["language"] == "de" and 50 < found[0]["confidence"] <= 100
    assert all(set(d) == {"language", "confidence"} for d in found)


def test_lt_languages_and_frontend_settings(url: str) -> None:
    langs = requests.get(f"{url}/languages", timeout=30).json()
    assert langs == [{"code": "de", "name": "German", "targets": ["en"]},
                     {"code": "en", "name": "English", "targets": ["de"]}]
    settings = requests.get(f"{url}/frontend/settings", timeout=30).json()
    assert settings["charLimit"] == 2000 and settings["keyRequired"] is False
    assert settings["filesTranslation"] is True and ".html" in settings["supportedFilesFormat"]
    assert settings["language"]["source"]["code"] == "auto"


@pytest.mark.parametrize("name, content, check", [
    ("story.txt", EN + "\n\n" + EN2 + "\n", lambda out, exp: out == exp(EN) + "\n\n" + exp(EN2) + "\n"),
    ("story.md", "# Budget\n\n" + EN + "\n\n`code stays`\n", lambda out, exp: "`code stays`" in out and "# bUDGET" in out),
    ("page.html", HTML, lambda out, exp: 'href="https://example.org/Budget"' in out and "<b>" in out and "tHE" in out),
])
def test_lt_translate_file_then_download(url: str, expected, name, content, check) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(f"{url}/translate_file", data={"source": "en", "target": "de"},
                      files={"file": (name, content.encode())}, timeout=30)
    assert r.status_code == 200, r.text
    link = r.json()["translatedFileUrl"]
    assert link.startswith(url + "/download_file/") and link.endswith(name)
    got = requests.get(link, timeout=30)
    assert got.status_code == 200
    assert name in got.headers["Content-Disposition"]
    assert check(got.content.decode(), expected), got.text


def test_lt_translate_file_refuses_other_formats(url: str) -> None:
    r = requests.post(f"{url}/translate_file", data={"target": "de"},
                      files={"file": ("slides.pdf", b"%PDF-1.4")}, timeout=30)
    assert r.status_code == 400
    assert ".pdf is not supported" in r.json()["error"]
    assert requests.get(f"{url}/download_file/nope.txt", timeout=30).status_code == 404


def test_spec_describes_every_endpoint(url: str, server: ServerThread) -> None:
    spec = requests.get(f"{url}/spec", timeout=30).json()
    assert spec["openapi"].startswith("3.")
    routes = {r.resource.canonical for r in server.handle.http.app.router.routes()  # type: ignore[union-attr]
              if r.resource is not None and not r.resource.canonical.startswith("/static")}
    assert routes - {"/"} <= set(spec["paths"]), routes - set(spec["paths"])


@pytest.mark.parametrize("body, message", [
    ({"source": "en", "target": "de"}, "missing q parameter"),
    ({"q": EN, "source": "en"}, "missing target parameter"),
    ({"q": EN, "source": "xx", "target": "de"}, "xx is not supported"),
    ({"q": EN, "source": "en", "target": "fr"}, "no model translates en->fr"),
    ({"q": EN, "source": "en", "target": "de", "format": "pdf"}, "format must be text or html"),
    ({"q": "x" * 2001, "source": "en", "target": "de"}, "limit is 2000"),
    ({"q": ["x" * 1500, "y" * 1500], "source": "en", "target": "de"}, "limit is 2000 per request"),
    ({"q": [EN, 3], "source": "en", "target": "de"}, "string or an array of strings"),
])
def test_lt_bad_requests_are_400_with_error(url: str, body, message) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(f"{url}/translate", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


def test_lt_bad_json_and_unknown_path(url: str) -> None:
    r = requests.post(f"{url}/translate", data=b"{not json", headers={"Content-Type": "application/json"},
                      timeout=30)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = requests.get(f"{url}/no/such/thing", timeout=30)
    assert r.status_code == 404 and r.json() == {"error": "Not found"}


# -- DeepL ----------------------------------------------------------------------------------------


def test_deepl_translate_form_with_repeated_text(url: str, expected) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(f"{url}/v2/translate", data=[("text", EN), ("text", EN2), ("target_lang", "DE")],
                      headers={"Authorization": "DeepL-Auth-Key anything"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"translations": [
        {"detected_source_language": "EN", "text": expected(EN), "billed_characters": len(EN)},
        {"detected_source_language": "EN", "text": expected(EN2), "billed_characters": len(EN2)},
    ]}


def test_deepl_translate_json_with_regional_target(url: str) -> None:
    r = requests.post(f"{url}/v2/translate", json={"text": [DE], "source_lang": "DE", "target_lang": "EN-US",
                                                   "formality": "more", "preserve_formatting": True,
                                                   "context": "news"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["translations"] == [{"detected_source_language": "DE", "text": DE,
                                         "billed_characters": len(DE)}]
    gb = requests.post(f"{url}/v2/translate", data={"text": DE, "target_lang": "en-gb"}, timeout=30).json()
    assert gb["translations"][0]["detected_source_language"] == "DE"


@pytest.mark.parametrize("tags", ["html", "xml"])
def test_deepl_tag_handling_keeps_markup(url: str, tags: str) -> None:
    r = requests.post(f"{url}/v2/translate", data={"text": HTML, "target_lang": "DE", "source_lang": "EN",
                                                   "tag_handling": tags}, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["translations"][0]["text"]
    assert out.startswith("<p>") and 'href="https://example.org/Budget"' in out and "tHE" in out


def test_deepl_split_sentences_nonewlines_reflows_wrapped_lines(url: str, expected) -> None:  # type: ignore[no-untyped-def]
    wrapped = "The city council approved the new\nbudget on Tuesday evening."
    one = requests.post(f"{url}/v2/translate", data={"text": wrapped, "target_lang": "DE", "source_lang": "EN",
                                                     "split_sentences": "nonewlines"}, timeout=30).json()
    lines = requests.post(f"{url}/v2/translate", data={"text": wrapped, "target_lang": "DE", "source_lang": "EN"},
                          timeout=30).json()
    assert one["translations"][0]["text"] != lines["translations"][0]["text"]
    assert lines["translations"][0]["text"] == expected(wrapped)


def test_deepl_languages_and_usage(url: str) -> None:
    source = requests.get(f"{url}/v2/languages", timeout=30).json()
    assert source == [{"language": "DE", "name": "German"}, {"language": "EN", "name": "English"}]
    target = requests.post(f"{url}/v2/languages", data={"type": "target"}, timeout=30).json()
    assert [t["language"] for t in target] == ["DE", "EN-GB", "EN-US"]
    assert all(t["supports_formality"] is False for t in target)
    assert requests.get(f"{url}/v2/languages?type=glossary", timeout=30).status_code == 400
    usage = requests.get(f"{url}/v2/usage", timeout=30).json()
    assert usage["character_count"] >= 0 and usage["character_limit"] > 10**9


@pytest.mark.parametrize("body, status, message", [
    ({"target_lang": "DE"}, 400, "Parameter 'text' not specified."),
    ({"text": EN}, 400, "Parameter 'target_lang' not specified."),
    ({"text": EN, "target_lang": "XX"}, 400, "Value for 'target_lang' not supported."),
    ({"text": EN, "target_lang": "DE", "tag_handling": "markdown"}, 400, "tag_handling"),
    ({"text": EN, "target_lang": "DE", "glossary_id": "g1"}, 400, "glossaries are not supported"),
    ({"text": "x" * 2001, "target_lang": "DE"}, 413, "limit is 2000"),
    ({"text": ["x" * 1500, "y" * 1500], "target_lang": "DE"}, 413, "per request"),
])
def test_deepl_errors(url: str, body, status, message) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(f"{url}/v2/translate", data=body, timeout=30)
    assert r.status_code == status, r.text
    assert message in r.json()["message"]


def test_deepl_unknown_path_is_404(url: str) -> None:
    r = requests.post(f"{url}/v2/glossaries", data={}, timeout=30)
    assert r.status_code == 404 and r.json() == {"message": "Not found"}


# -- Dragoman's own JSON --------------------------------------------------------------------------


def test_native_translate_summarise_detect_languages(url: str, expected) -> None:  # type: ignore[no-untyped-def]
    t = requests.post(f"{url}/v1/translate", json={"id": "a1", "text": EN, "targetLanguage": "de"}, timeout=30)
    assert t.status_code == 200, t.text
    body = t.json()
    assert body["id"] == "a1" and body["text"] == expected(EN)
    assert body["sourceLanguage"] == "en" and body["detected"] is True and body["model"] == "copy-en-de"
    html = requests.post(f"{url}/v1/translate", json={"text": HTML, "source_language": "en",
                                                      "target_language": "de", "format": "TEXT_FORMAT_HTML"},
                         timeout=30).json()
    assert 'href="https://example.org/Budget"' in html["text"]
    s = requests.post(f"{url}/v1/summarise", json={"text": ARTICLE, "maxSentences": 2,
                                                   "method": "SUMMARY_METHOD_EXTRACTIVE"}, timeout=30)
    assert s.status_code == 200, s.text
    summary = s.json()
    assert summary["method"] == "SUMMARY_METHOD_EXTRACTIVE" and summary["sentences"] == 2
    assert all(sentence in ARTICLE for sentence in split_document(summary["summary"], "en").sentences)
    cross = requests.post(f"{url}/v1/summarise", json={"text": ARTICLE, "maxSentences": 1,
                                                       "targetLanguage": "de"}, timeout=30).json()
    assert cross["targetLanguage"] == "de" and cross["models"] == ["extractive", "copy-en-de"]
    d = requests.post(f"{url}/v1/detect", json={"text": DE}, timeout=30).json()
    assert d["language"] == "de"
    langs = requests.get(f"{url}/v1/languages", timeout=30).json()
    assert {(p["sourceLanguage"], p["targetLanguage"]) for p in langs["pairs"]} == {("de", "en"), ("en", "de")}


@pytest.mark.parametrize("path, body, status, code", [
    ("/v1/translate", '{"text": "x", "nope": 1}', 400, "INVALID_ARGUMENT"),
    ("/v1/translate", '{"text": "The budget.", "targetLanguage": "fr", "sourceLanguage": "en"}', 404, "NOT_FOUND"),
    ("/v1/summarise", '{"text": ""}', 400, "INVALID_ARGUMENT"),
    ("/v1/nothing", "{}", 404, "NOT_FOUND"),
])
def test_native_errors(url: str, path, body, status, code) -> None:  # type: ignore[no-untyped-def]
    r = requests.post(url + path, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code


def test_http_and_grpc_share_the_cache(server: ServerThread, url: str) -> None:
    """One service behind both adapters: a sentence gRPC translated is a cache hit over HTTP."""
    text = "The harbour master counted forty ships before noon."
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranslationServiceStub(channel)
        first = stub.Translate(pb.TranslateRequest(text=text, source_language="en", target_language="de"),
                               timeout=30)
    assert first.cached_sentences == 0
    again = requests.post(f"{url}/v1/translate", json={"text": text, "sourceLanguage": "en",
                                                       "targetLanguage": "de"}, timeout=30).json()
    assert again["cachedSentences"] == 1 and again["text"] == first.text


def test_page_and_health(url: str) -> None:
    page = requests.get(url + "/", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "<textarea" in page.text and "/static/app.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline
    for name in ("app.js", "style.css"):
        static = requests.get(f"{url}/static/{name}", timeout=30)
        assert static.status_code == 200 and "https://" not in static.text
    assert requests.get(url + "/healthz", timeout=30).json() == {"status": "SERVING"}


def test_cors_preflight_for_browser_extensions(url: str) -> None:
    r = requests.options(f"{url}/translate", headers={"Origin": "moz-extension://x",
                                                      "Access-Control-Request-Method": "POST"}, timeout=30)
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "*"


# -- the clients people already use ----------------------------------------------------------


def test_libretranslatepy_client_unchanged(url: str, expected) -> None:  # type: ignore[no-untyped-def]
    from libretranslatepy import LibreTranslateAPI

    lt = LibreTranslateAPI(url)
    assert lt.translate(EN, "en", "de") == expected(EN)
    assert lt.translate(DE, "auto", "en") == DE
    assert lt.detect(DE)[0]["language"] == "de"
    assert {lang["code"] for lang in lt.languages()} == {"de", "en"}


def test_official_deepl_client_unchanged(url: str, expected) -> None:  # type: ignore[no-untyped-def]
    import deepl

    translator = deepl.Translator("any-key", server_url=url)
    result = translator.translate_text(EN, target_lang="DE")
    assert result.text == expected(EN) and result.detected_source_lang == "EN"
    many = translator.translate_text([DE, DE], source_lang="DE", target_lang="EN-US")
    assert [r.text for r in many] == [DE, DE]
    html = translator.translate_text(HTML, source_lang="EN", target_lang="DE", tag_handling="html")
    assert 'href="https://example.org/Budget"' in html.text
    assert {lang.code for lang in translator.get_source_languages()} == {"DE", "EN"}
    assert {lang.code for lang in translator.get_target_languages()} == {"DE", "EN-GB", "EN-US"}
    usage = translator.get_usage()
    assert usage.character.valid and not usage.any_limit_reached


# -- keys, quotas, overload, size limits, internal errors ---------------------------------------


class QuotaAccess(AccessControl):
    """Keys "good" (unlimited) and "poor" (no characters left): the access interface the
    adapters rely on, with a quota to exceed."""

    def __init__(self) -> None:
        super().__init__("good")
        self.charged: list[tuple[str, int]] = []

    def authenticate(self, key: str | None) -> Principal:
        if key == "poor":
            return Principal("poor")
        return super().authenticate(key)

    def charge(self, principal: Principal, chars: int) -> None:
        if principal.name == "poor":
            raise QuotaExceeded(f"key {principal.name!r} has no characters left")
        self.charged.append((principal.name, chars))


@pytest.fixture(scope="module")
def guarded(copy_store: Path) -> Iterator[HttpThread]:
    config = server_config(copy_store, max_chars=100, max_in_flight=2)
    with HttpThread(build_service(config), QuotaAccess()) as running:
        yield running


def test_lt_keys(guarded: HttpThread) -> None:
    url = guarded.url
    for body in ({"q": EN[:50], "target": "de"}, {"q": EN[:50], "target": "de", "api_key": "wrong"}):
        r = requests.post(f"{url}/translate", json=body, timeout=30)
        assert r.status_code == 403, r.text
        assert "API key" in r.json()["error"]
    ok = requests.post(f"{url}/translate", json={"q": EN[:50], "source": "en", "target": "de", "api_key": "good"},
                       timeout=30)
    assert ok.status_code == 200, ok.text
    assert guarded.access.charged[-1] == ("token", 50)  # type: ignore[union-attr]
    assert requests.get(f"{url}/languages", timeout=30).status_code == 200  # open, as in LibreTranslate
    assert requests.get(f"{url}/frontend/settings", timeout=30).json()["keyRequired"] is True
    r = requests.post(f"{url}/translate", json={"q": EN[:50], "target": "de", "api_key": "poor"}, timeout=30)
    assert r.status_code == 429 and "no characters left" in r.json()["error"]


def test_deepl_keys_quota_and_legacy_auth_key(guarded: HttpThread) -> None:
    url = guarded.url
    assert requests.post(f"{url}/v2/translate", data={"text": "x", "target_lang": "DE"},
                         timeout=30).status_code == 403
    assert requests.get(f"{url}/v2/usage", headers={"Authorization": "DeepL-Auth-Key wrong"},
                        timeout=30).status_code == 403
    ok = requests.post(f"{url}/v2/translate", data={"text": EN[:40], "target_lang": "DE", "source_lang": "EN"},
                       headers={"Authorization": "DeepL-Auth-Key good"}, timeout=30)
    assert ok.status_code == 200, ok.text
    legacy = requests.post(f"{url}/v2/translate", data={"text": EN[:40], "target_lang": "DE",
                                                        "source_lang": "EN", "auth_key": "good"}, timeout=30)
    assert legacy.status_code == 200, legacy.text
    r = requests.post(f"{url}/v2/translate", data={"text": "x", "target_lang": "DE"},
                      headers={"Authorization": "DeepL-Auth-Key poor"}, timeout=30)
    assert r.status_code == 456 and "no characters left" in r.json()["message"]


def test_native_keys(guarded: HttpThread) -> None:
    url = guarded.url
    r = requests.post(f"{url}/v1/translate", json={"text": "x", "targetLanguage": "de"}, timeout=30)
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHENTICATED"
    ok = requests.post(f"{url}/v1/translate", json={"text": EN[:40], "sourceLanguage": "en", "targetLanguage": "de"},
                       headers={"Authorization": "Bearer good"}, timeout=30)
    assert ok.status_code == 200, ok.text


def test_in_flight_limit_is_429_before_any_work(guarded: HttpThread) -> None:
    url = guarded.url
    r = requests.post(f"{url}/translate", json={"q": ["a b c"] * 3, "source": "en", "target": "de",
                                                "api_key": "good"}, timeout=30)
    assert r.status_code == 429 and "in flight" in r.json()["error"]
    r = requests.post(f"{url}/v2/translate", data=[("text", "a b c")] * 3 + [("target_lang", "DE")],
                      headers={"Authorization": "DeepL-Auth-Key good"}, timeout=30)
    assert r.status_code == 429 and "in flight" in r.json()["message"]


def test_oversized_body_is_413_before_parsing(guarded: HttpThread) -> None:
    big = b"q=" + b"x" * (3 * 1024 * 1024)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    r = requests.post(f"{guarded.url}/translate", data=big, headers=headers, timeout=30)
    assert r.status_code == 413 and "too large" in r.json()["error"]
    r = requests.post(f"{guarded.url}/v2/translate", data=big, headers=headers, timeout=30)
    assert r.status_code == 413 and "too large" in r.json()["message"]


class BrokenAccess(AccessControl):
    def charge(self, principal: Principal, chars: int) -> None:
        raise RuntimeError("the quota database is on fire")


def test_unexpected_failure_is_500_without_a_traceback(copy_store: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    config = server_config(copy_store)
    with HttpThread(build_service(config), BrokenAccess()) as running:
        r = requests.post(f"{running.url}/translate", json={"q": EN, "target": "de"}, timeout=30)
        assert r.status_code == 500
        assert r.json() == {"error": "internal error (see the server log)"}
        r = requests.post(f"{running.url}/v2/translate", data={"text": EN, "target_lang": "DE"}, timeout=30)
        assert r.status_code == 500 and "fire" not in r.text
    assert "the quota database is on fire" in caplog.text


def test_concurrent_http_requests_all_answered(url: str, expected) -> None:  # type: ignore[no-untyped-def]
    """Many clients at once (they meet in the batcher); every answer is its own."""
    texts = [f"The council met {n} times before the budget passed." for n in range(24)]
    results: dict[int, str] = {}

    def one(n: int) -> None:
        r = requests.post(f"{url}/translate", json={"q": texts[n], "source": "en", "target": "de"}, timeout=60)
        results[n] = r.json()["translatedText"]

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == {n: expected(t) for n, t in enumerate(texts)}
