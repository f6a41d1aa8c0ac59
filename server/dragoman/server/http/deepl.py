"""The DeepL API v2 (as DeepL's API reference documents it): /v2/translate, /v2/languages,
/v2/usage.

Errors are ``{"message": "..."}``: 400 bad input or unsupported language, 403 missing or
invalid key while keys are required, 404 unknown path, 413 a request over the size limits,
429 too many requests in flight, 456 the key's character quota used up, 500 otherwise (503
while shutting down). Regional codes (EN-GB, EN-US, PT-BR, PT-PT, ZH-HANS, ...) map onto the
installed base language; answers use DeepL's upper-case codes.

Accepted but not honoured (documented in the README): ``formality``, ``context``,
``split_sentences=0``, ``outline_detection``, ``non_splitting_tags``, ``splitting_tags``,
``ignore_tags``, ``model_type``, ``tag_handling_version``, ``custom_instructions``,
``style_id``, ``show_billed_characters`` (billed characters are always reported).
``preserve_formatting`` is always on. ``glossary_id`` is refused: a glossary cannot be applied.
"""

from __future__ import annotations

import logging
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
from dragoman.server.http.keys import CALLS
from dragoman.server.service import TranslateInput
from dragoman.server.text.languages import ISO_639_1, base_language
from dragoman.server.text.segment import TextFormat

logger = logging.getLogger(__name__)

STATUSES: dict[type[BaseException], int] = {
    TooLarge: 413,
    InvalidInput: 400,
    ModelNotFound: 400,
    Unauthenticated: 403,
    QuotaExceeded: 456,
    Overloaded: 429,
    Unavailable: 503,
    DeadlineExceeded: 504,
}

DIALECT = Dialect("deepl", STATUSES, lambda status, message, exc: {"message": message})

# What a client without a quota sees as its limit (DeepL reports this for unlimited plans).
UNLIMITED = 1_000_000_000_000

# Target variants DeepL lists for a base language; every other language is its code in capitals.
VARIANTS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (("EN-GB", "English (British)"), ("EN-US", "English (American)")),
    "pt": (("PT-BR", "Portuguese (Brazilian)"), ("PT-PT", "Portuguese (European)")),
    "zh": (("ZH", "Chinese"), ("ZH-HANS", "Chinese (simplified)")),
}
SPLIT_SENTENCES = ("0", "1", "nonewlines")


def language(code: str, what: str) -> str:
    iso = base_language(code)
    if iso not in ISO_639_1:
        raise InvalidInput(f"Value for '{what}' not supported.")
    return iso


def _principal(request: web.Request, calls: Calls, params: Params) -> Principal:
    """``Authorization: DeepL-Auth-Key KEY``, or the legacy ``auth_key`` parameter."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "deepl-auth-key":
        key = params.text("auth_key")
    return calls.authenticate(key.strip() or None)


def _format(params: Params) -> TextFormat:
    tags = params.text("tag_handling").strip().lower()
    if tags not in ("", "html", "xml"):
        raise InvalidInput("Value for 'tag_handling' not supported.")
    split = params.text("split_sentences", "1").strip().lower() or "1"
    if split not in SPLIT_SENTENCES:
        raise InvalidInput("Value for 'split_sentences' not supported.")
    if tags:
        return TextFormat.HTML  # XML is translated as markup too: tags and attributes kept
    return TextFormat.WRAPPED if split == "nonewlines" else TextFormat.PLAIN


@DIALECT.endpoint
async def translate(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    params = await read_params(request)
    principal = _principal(request, calls, params)
    texts = params.texts("text")
    if not texts:
        raise InvalidInput("Parameter 'text' not specified.")
    target_code = params.text("target_lang").strip()
    if not target_code:
        raise InvalidInput("Parameter 'target_lang' not specified.")
    target = language(target_code, "target_lang")
    source_code = params.text("source_lang").strip()
    source = language(source_code, "source_lang") if source_code else ""
    if params.raw("glossary_id") not in (None, ""):
        raise InvalidInput("glossaries are not supported by this server")
    fmt = _format(params)
    chars = calls.check_sizes(texts)

    async def work() -> dict[str, Any]:
        todo = [i for i, text in enumerate(texts) if text.strip()]
        outs = await calls.translate_all(
            [TranslateInput(texts[i], target, source, fmt) for i in todo])
        results = [{"detected_source_language": source.upper(), "text": text,
                    "billed_characters": len(text)} for text in texts]
        for i, (out, _) in zip(todo, outs):
            results[i]["text"] = out.text
            results[i]["detected_source_language"] = out.source_language.upper()
        return {"translations": results}

    return web.json_response(await calls.charged(principal, chars, work))


@DIALECT.endpoint
async def languages(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    params = await read_params(request)
    _principal(request, calls, params)
    kind = params.text("type", "source").strip().lower() or "source"
    if kind not in ("source", "target"):
        raise InvalidInput("Value for 'type' not supported.")
    info = await calls.languages()
    out: list[dict[str, Any]] = []
    if kind == "source":
        for code in sorted({p.source_language for p in info.pairs}):
            out.append({"language": code.upper(), "name": ISO_639_1.get(code, code)})
    else:
        for code in sorted({p.target_language for p in info.pairs}):
            for variant, name in VARIANTS.get(code, ((code.upper(), ISO_639_1.get(code, code)),)):
                out.append({"language": variant, "name": name, "supports_formality": False})
    return web.json_response(out)


@DIALECT.endpoint
async def usage(request: web.Request) -> web.Response:
    calls = request.app[CALLS]
    params = await read_params(request)
    principal = _principal(request, calls, params)
    used, limit = calls.usage(principal)
    return web.json_response({"character_count": used,
                              "character_limit": UNLIMITED if limit is None else limit})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v2/translate", translate)
    for method in ("GET", "POST"):
        app.router.add_route(method, "/v2/languages", languages)
        app.router.add_route(method, "/v2/usage", usage)
