"""Application keys shared by the HTTP modules (aiohttp's typed app storage)."""

from __future__ import annotations

from aiohttp import web

from dragoman.server.http.calls import Calls
from dragoman.server.http.files import FileStore

CALLS = web.AppKey("calls", Calls)
FILES = web.AppKey("files", FileStore)
