"""Build the model layer from a :class:`ServerConfig`, the same way for the server, the
in-process batch engine and Ray actors (models load on first use or on preload)."""

from __future__ import annotations

from dragoman.server.access import AccessControl
from dragoman.server.cache import SentenceCache
from dragoman.server.config import ServerConfig
from dragoman.server.glossary import GlossaryStore
from dragoman.server.registry import ModelRegistry
from dragoman.server.service import Dragoman, ServiceLimits
from dragoman.server.store import ModelStore


def build_service(config: ServerConfig) -> Dragoman:
    store = ModelStore(config.models_dir)
    registry = ModelRegistry(store, config.runtime(), config.batching_options(), config.routing())
    cache = SentenceCache(config.cache_entries, config.cache_mb * 1024 * 1024)
    limits = ServiceLimits(
        max_chars=config.max_chars,
        max_in_flight=config.max_in_flight,
        summary_sentences=config.summary_sentences,
        beam_size=config.beam_size,
        max_request_seconds=config.max_request_seconds,
    )
    access = AccessControl.from_settings(config.token, config.token_file, config.keys)
    return Dragoman(registry, cache, limits, access, GlossaryStore(config.models_dir))
