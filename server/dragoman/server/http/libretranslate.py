"""The LibreTranslate API (as LibreTranslate 1.9 documents it in its /spec).

Errors are ``{"error": "..."}``: 400 bad input (also an unsupported language, as LibreTranslate
answers), 403 missing or invalid key while keys are required, 429 over a limit or quota, 413
a body over the size limit, 500 otherwise (503 while shutting down).
``alternatives`` is accepted but not honoured: Dragoman decodes one best translation, so the
lists come back empty.
"""

from __future__ import annotations

import logging
from pathlib import PurePath
from typing import Any

from aiohttp import web

from dragoman.server.access import Principal, QuotaExceeded, Unauthenticated
from dragoman.server.errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelNotFound,
    Overloaded,
    Unavailable,
)
from dragoman.server.http.calls import Calls, TooLarge
from dragoman.server.http.common import Dialect, Params, read_params
from dragoman.server.http.keys import CALLS, FILES
from dragoman.server.service import TranslateInput
from dragoman.server.text.langdetect import Detection
from dragoman.server.text.languages import ISO_639_1, base_language
from dragoman.server.text.segment import TextFormat

logger = logging.getLogger(__name__)

STATUSES: dict[type[BaseException], int] = {
    TooLarge: 400,
    InvalidInput: 400,
    ModelNotFound: 400,
    Unauthenticated: 403,
    QuotaExceeded: 429,
    Overloaded: 429,
    Unavailable: 503,
    DeadlineExceeded: 504,
}

DIALECT = Dialect("libretranslate", STATUSES, lambda status, message, exc: {"error": message})

FORMATS = {"text": TextFormat.PLAIN, "html": TextFormat.HTML}
FILE_FORMATS = {
    ".txt": (TextFormat.PLAIN, "text/plain; charset=utf-8"),
    ".md": (TextFormat.MARKDOWN, "text/markdown; charset=utf-8"),
    ".markdown": (TextFormat.MARKDOWN, "text/markdown; charset=utf-8"),
    ".html": (TextFormat.HTML, "text/html; charset=utf-8"),
    ".htm": (TextFormat.HTML, "text/html; charset=utf-8"),
}


def language(code: str, what: str) -> str:
    """A LibreTranslate code ("en", "pt-BR", "zh-Hans") as the service's ISO 639-1 code."""
    if not code:
        raise InvalidInput(f"Invalid request: missing {what} parameter")
    iso = base_language(code)
    if iso not in ISO_639_1:
        raise InvalidInput(f"{code} is not supported")
    return iso


def confidence(value: float) -> float:
    """LibreTranslate reports 0-100."""
    return round(value * 100, 1)


def detected(det: Detection | None) -> dict[str, Any]:
    if det is None:
        return {"confidence": 0.0, "language": ""}
    return {"confidence": confidence(det.confidence), "language": det.language}


def _key(calls: Calls, params: Params) -> Principal:
    return calls.authenticate(params.text("api_key") or None)


@DIALECT.endpoint
async def translate(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    params = await read_params(request)
    principal = _key(calls, params)
    q = params.raw("q")
    if q is None or q == "" or q == []:
        raise InvalidInput("Invalid request: missing q parameter")
    batch = isinstance(q, list)
    texts = params.texts("q")
    source = params.text("source", "auto").strip() or "auto"
    target = language(params.text("target").strip(), "target")
    source_iso = "" if source.lower() == "auto" else language(source, "source")
    fmt_name = params.text("format", "text").strip().lower() or "text"
    if fmt_name not in FORMATS:
        raise InvalidInput(f"Invalid request: format must be text or html, not {fmt_name!r}")
    alternatives = params.integer("alternatives", 0)
    if alternatives < 0:
        raise InvalidInput("Invalid request: alternatives must not be negative")
    chars = calls.check_sizes(texts)

    async def work() -> dict[str, Any]:
        detections: list[Detection | None] = [None] * len(texts)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        outs = await calls.translate_all([
            TranslateInput(texts[i], target, source_iso, FORMATS[fmt_name]) for i in todo])
        translated = list(texts)
        for i, (out, found) in zip(todo, outs):
            translated[i] = out.text
            detections[i] = found
        body: dict[str, Any] = {"translatedText": translated if batch else translated[0]}
        if not source_iso:
            languages = [detected(d) for d in detections]
            body["detectedLanguage"] = languages if batch else languages[0]
        if alternatives:
            body["alternatives"] = [[] for _ in texts] if batch else []
        return body

    return web.json_response(await calls.charged(principal, chars, work))


@DIALECT.endpoint
async def detect(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    params = await read_params(request)
    principal = _key(calls, params)
    q = params.text("q")
    if not q.strip():
        raise InvalidInput("Invalid request: missing q parameter")
    chars = calls.check_sizes([q])

    async def work() -> list[dict[str, Any]]:
        det = await calls.detect(q)
        return [{"confidence": confidence(c.confidence), "language": c.language}
                for c in det.candidates]

    return web.json_response(await calls.charged(principal, chars, work))


async def language_table(calls: Calls) -> list[dict[str, Any]]:
    info = await calls.languages()
    targets: dict[str, set[str]] = {}
    for pair in info.pairs:
        targets.setdefault(pair.source_language, set()).add(pair.target_language)
        targets.setdefault(pair.target_language, set())
    return [{"code": code, "name": ISO_639_1.get(code, code), "targets": sorted(targets[code])}
            for code in sorted(targets)]


@DIALECT.endpoint
async def languages(request: web.Request) -> web.Response:
    return web.json_response(await language_table(request.app[CALLS]))


@DIALECT.endpoint
async def frontend_settings(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    table = await language_table(calls)
    targets = sorted({t for row in table for t in row["targets"]})
    target = "en" if "en" in targets else (targets[0] if targets else "en")
    return web.json_response({
        "charLimit": calls.max_chars,
        "frontendTimeout": 500,
        "apiKeys": calls.access.required,
        "keyRequired": calls.access.required,
        "suggestions": False,
        "filesTranslation": True,
        "supportedFilesFormat": sorted(FILE_FORMATS),
        "language": {
            "source": {"code": "auto", "name": "Auto Detect"},
            "target": {"code": target, "name": ISO_639_1.get(target, target)},
        },
    })


@DIALECT.endpoint
async def translate_file(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    params = await read_params(request)
    principal = _key(calls, params)
    upload = params.files.get("file")
    if upload is None:
        raise InvalidInput("Invalid request: missing file parameter")
    name = PurePath(upload.filename or "file.txt").name or "file.txt"
    suffix = PurePath(name).suffix.lower()
    if suffix not in FILE_FORMATS:
        raise InvalidInput(f"Invalid request: {suffix or 'a file without extension'} is not "
                           f"supported (use one of {', '.join(sorted(FILE_FORMATS))})")
    fmt, content_type = FILE_FORMATS[suffix]
    try:
        text = upload.file.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("Invalid request: the file is not UTF-8 text") from None
    source = params.text("source", "auto").strip() or "auto"
    source_iso = "" if source.lower() == "auto" else language(source, "source")
    target = language(params.text("target").strip(), "target")
    chars = calls.check_sizes([text])

    async def work() -> str:
        if not text.strip():
            return text
        return (await calls.translate(TranslateInput(text, target, source_iso, fmt))).text

    translated = await calls.charged(principal, chars, work)
    key = request.app[FILES].put(name, content_type, translated.encode("utf-8"))
    url = request.url.origin().join(request.app.router["download_file"].url_for(filename=key))
    return web.json_response({"translatedFileUrl": str(url)})


@DIALECT.endpoint
async def download_file(request: web.Request) -> web.Response:
    stored = request.app[FILES].get(request.match_info["filename"])
    if stored is None:
        return DIALECT.error(404, "file not found (translated files are kept for a limited time)")
    quoted = stored.name.replace('"', "")
    return web.Response(body=stored.data, headers={
        "Content-Type": stored.content_type,
        "Content-Disposition": f'attachment; filename="{quoted}"',
    })


def add_routes(app: web.Application) -> None:
    app.router.add_post("/translate", translate)
    app.router.add_post("/detect", detect)
    app.router.add_route("GET", "/languages", languages)
    app.router.add_post("/languages", languages)
    app.router.add_get("/frontend/settings", frontend_settings)
    app.router.add_post("/translate_file", translate_file)
    app.router.add_get("/download_file/{filename}", download_file, name="download_file")
