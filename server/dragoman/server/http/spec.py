"""The OpenAPI 3 description served at ``/spec``: every HTTP endpoint of this server."""

from __future__ import annotations

from typing import Any

STRING = {"type": "string"}
ERROR_LT = {"type": "object", "properties": {"error": STRING}}
ERROR_DEEPL = {"type": "object", "properties": {"message": STRING}}
ERROR_NATIVE = {"type": "object", "properties": {"code": STRING, "message": STRING}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(schema: dict[str, Any], codes: dict[int, str]) -> dict[str, Any]:
    return {str(code): {"description": text, **_json(schema)} for code, text in codes.items()}


def _body(properties: dict[str, Any], required: list[str], *, form: bool = True) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    content = {"application/json": {"schema": schema}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": schema}
    return {"required": True, "content": content}


LT_ERRORS = {400: "Invalid request", 403: "Missing or invalid API key", 413: "Body too large",
             429: "Over a limit or quota", 500: "Translation error"}
DEEPL_ERRORS = {400: "Bad request", 403: "Authorization failed", 404: "Not found",
                413: "Request too large", 429: "Too many requests", 456: "Quota exceeded",
                500: "Internal error"}
NATIVE_ERRORS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND",
                 413: "Request too large", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}

DETECTION = {"type": "object", "properties": {
    "confidence": {"type": "number", "description": "0-100"}, "language": STRING}}
STRINGS = {"oneOf": [STRING, {"type": "array", "items": STRING}]}


def openapi(server_url: str, max_chars: int) -> dict[str, Any]:
    lt_translate = {
        "tags": ["LibreTranslate"], "summary": "Translate text",
        "requestBody": _body({
            "q": {**STRINGS, "description": f"text(s) to translate, {max_chars} characters at most in all"},
            "source": {**STRING, "description": "source language code, or auto"},
            "target": {**STRING, "description": "target language code"},
            "format": {"type": "string", "enum": ["text", "html"]},
            "alternatives": {"type": "integer", "description": "accepted; lists come back empty"},
            "api_key": STRING,
        }, ["q", "target"]),
        "responses": {"200": {"description": "Translation", **_json({"type": "object", "properties": {
            "translatedText": STRINGS,
            "detectedLanguage": {"oneOf": [DETECTION, {"type": "array", "items": DETECTION}]},
            "alternatives": {"type": "array"}}})}, **_errors(ERROR_LT, LT_ERRORS)},
    }
    deepl_translate = {
        "tags": ["DeepL"], "summary": "Translate text (DeepL API v2)",
        "parameters": [{"name": "Authorization", "in": "header", "schema": STRING,
                        "description": "DeepL-Auth-Key KEY"}],
        "requestBody": _body({
            "text": {"type": "array", "items": STRING},
            "source_lang": STRING, "target_lang": STRING,
            "tag_handling": {"type": "string", "enum": ["html", "xml"]},
            "split_sentences": {"type": "string", "enum": ["0", "1", "nonewlines"]},
            "preserve_formatting": {"type": "boolean"},
            "formality": {**STRING, "description": "accepted, not honoured"},
        }, ["text", "target_lang"]),
        "responses": {"200": {"description": "Translations", **_json({"type": "object", "properties": {
            "translations": {"type": "array", "items": {"type": "object", "properties": {
                "detected_source_language": STRING, "text": STRING,
                "billed_characters": {"type": "integer"}}}}}})},
            **_errors(ERROR_DEEPL, DEEPL_ERRORS)},
    }

    def native(summary: str, request: str, response: str) -> dict[str, Any]:
        return {"tags": ["Dragoman"], "summary": summary,
                "requestBody": _body({}, [], form=False) | {
                    "description": f"dragoman.v1.{request} in the protobuf JSON mapping"},
                "responses": {"200": {"description": f"dragoman.v1.{response}",
                                      **_json({"type": "object"})},
                              **_errors(ERROR_NATIVE, NATIVE_ERRORS)}}

    languages_lt = {"tags": ["LibreTranslate"], "summary": "Installed languages and their targets",
                    "responses": {"200": {"description": "Languages", **_json({
                        "type": "array", "items": {"type": "object", "properties": {
                            "code": STRING, "name": STRING,
                            "targets": {"type": "array", "items": STRING}}}})}}}
    deepl_languages = {"tags": ["DeepL"], "summary": "Source or target languages",
                       "parameters": [{"name": "type", "in": "query",
                                       "schema": {"type": "string", "enum": ["source", "target"]}}],
                       "responses": {"200": {"description": "Languages"},
                                     **_errors(ERROR_DEEPL, DEEPL_ERRORS)}}
    deepl_usage = {"tags": ["DeepL"], "summary": "Characters used and the limit",
                   "responses": {"200": {"description": "Usage", **_json({
                       "type": "object", "properties": {"character_count": {"type": "integer"},
                                                        "character_limit": {"type": "integer"}}})}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Dragoman HTTP API", "version": "1",
                 "description": "LibreTranslate- and DeepL-compatible APIs and Dragoman's own "
                                "JSON, over the same models, batches, cache, limits and keys "
                                "as the gRPC API."},
        "servers": [{"url": server_url}],
        "paths": {
            "/translate": {"post": lt_translate},
            "/detect": {"post": {
                "tags": ["LibreTranslate"], "summary": "Detect the language of a text",
                "requestBody": _body({"q": STRING, "api_key": STRING}, ["q"]),
                "responses": {"200": {"description": "Candidates", **_json(
                    {"type": "array", "items": DETECTION})}, **_errors(ERROR_LT, LT_ERRORS)}}},
            "/languages": {"get": languages_lt, "post": languages_lt},
            "/frontend/settings": {"get": {"tags": ["LibreTranslate"], "summary": "Frontend settings",
                                           "responses": {"200": {"description": "Settings"}}}},
            "/translate_file": {"post": {
                "tags": ["LibreTranslate"], "summary": "Translate a .txt, .md or .html file",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file", "target"], "properties": {
                        "file": {"type": "string", "format": "binary"}, "source": STRING,
                        "target": STRING, "api_key": STRING}}}}},
                "responses": {"200": {"description": "Where to download the translation", **_json({
                    "type": "object", "properties": {"translatedFileUrl": STRING}})},
                    **_errors(ERROR_LT, LT_ERRORS)}}},
            "/download_file/{filename}": {"get": {
                "tags": ["LibreTranslate"], "summary": "A translated file (kept for an hour)",
                "parameters": [{"name": "filename", "in": "path", "required": True, "schema": STRING}],
                "responses": {"200": {"description": "The file"}, "404": {"description": "Gone"}}}},
            "/v2/translate": {"post": deepl_translate},
            "/v2/languages": {"get": deepl_languages, "post": deepl_languages},
            "/v2/usage": {"get": deepl_usage, "post": deepl_usage},
            "/v1/translate": {"post": native("Translate", "TranslateRequest", "TranslateResponse")},
            "/v1/summarise": {"post": native("Summarise", "SummariseRequest", "SummariseResponse")},
            "/v1/detect": {"post": native("Detect the language", "DetectLanguageRequest",
                                          "DetectLanguageResponse")},
            "/v1/languages": {"get": {"tags": ["Dragoman"], "summary": "Pairs, models, summarisers",
                                      "responses": {"200": {"description": "ListLanguagesResponse"}}}},
            "/healthz": {"get": {"summary": "Readiness", "responses": {
                "200": {"description": "Serving"}, "503": {"description": "Shutting down"}}}},
            "/spec": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (text exposition format)",
                                 "responses": {"200": {"description": "Metrics"}}}},
        },
    }
