"""Server configuration: one table feeds the dataclass, the ``DRAGOMAN_*`` environment
variables and the ``dragoman serve`` flags, so the three can never disagree.

Precedence: flag > environment > default.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from dragoman.server.batcher import BATCHING_MODES, BatchingOptions
from dragoman.server.errors import InvalidInput
from dragoman.server.registry import RoutingOptions
from dragoman.server.seq2seq import DEFAULT_MAX_BATCH_TOKENS, RuntimeOptions


def _default_threads() -> tuple[int, int]:
    """(inter, intra) for this host: one single-threaded replica per core (up to 8 cores).

    The batcher feeds every replica its own batch and splits a lone document across idle
    replicas, so replicas scale throughput; intra-op threads pay synchronisation on
    decoder-sized matrices (on 2 cores, 2x1 beat 1x2 in throughput and even in single-sentence
    latency: bench/README.md). Past 8 cores, two threads per replica halve the batches in
    flight, which bounds activation memory (each replica decodes its own batch)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    cores = max(1, cores)
    intra = 1 if cores <= 8 else 2
    return max(1, cores // intra), intra


def _opt(
    default: Any, help: str, *, parse: Callable[[str], Any] | None = None,
    aliases: tuple[str, ...] = (), shown: str | None = None,
) -> Any:
    """One setting; ``shown`` describes the default in --help when its value says nothing."""
    return field(default=default, metadata={"help": help, "parse": parse, "aliases": aliases,
                                            "shown": shown})


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


@dataclass(frozen=True)
class ServerConfig:
    address: str = _opt("localhost:50051", "host:port to listen on")
    models: str = _opt("", "model store folder (must exist when given)",
                       shown="the per-user data folder, e.g. ~/.local/share/dragoman/models")
    device: str = _opt("cpu", "CTranslate2 device: cpu, cuda or auto")
    compute_type: str = _opt(
        "auto", "CTranslate2 compute type (int8, int8_float32, float32, ...); auto: each model "
        "at the precision it was installed with (int8 where its manifest records none)")
    inter_threads: int = _opt(_default_threads()[0], "model replicas decoding in parallel")
    intra_threads: int = _opt(_default_threads()[1], "threads per replica")
    beam_size: int = _opt(0, "beam size for every call (0: each model's default)")
    max_batch_tokens: int = _opt(
        DEFAULT_MAX_BATCH_TOKENS, "source tokens per CTranslate2 batch (CPU; activation memory grows with it)")
    decode_memory_mb: int = _opt(
        0, "cap on the estimated memory of the batches being decoded, all replicas together, "
        "in MB (0: no cap); batches shrink to fit it")
    batch_wait_ms: float = _opt(2.0, "how long a short queue waits for more sentences")
    batching: str = _opt(
        "dynamic", "dynamic: all requests' sentences share CTranslate2 calls; request or "
        "paragraph: one call per request or per paragraph (the naive ways, to compare against)")
    max_queued: int = _opt(20000, "sentences queued per model before new calls are refused")
    max_chars: int = _opt(200_000, "largest document accepted, in characters")
    max_in_flight: int = _opt(512, "documents processed at once before new calls are refused")
    cache_entries: int = _opt(100_000, "sentence cache size in entries (0 disables it)")
    cache_mb: int = _opt(64, "sentence cache size in MB of text")
    summary_sentences: int = _opt(3, "sentences in a summary when the request does not say")
    max_loaded_models: int = _opt(0, "models kept in memory at once (0: no limit)")
    max_loaded_mb: int = _opt(0, "memory budget for loaded models in MB (0: no limit)")
    preload: tuple[str, ...] = _opt((), "models to load at start and keep loaded", parse=_csv)
    install: tuple[str, ...] = _opt(
        (), "language pairs to install models for before serving, e.g. en:de,de:en (Argos "
        "index first, then OPUS-MT from the Hugging Face Hub; what cannot be fetched is logged)",
        parse=_csv)
    max_model_mb: int = _opt(8192, "largest model folder an install may write, in MB")
    prefer: str = _opt("bilingual", "bilingual or multilingual models first for a pair")
    pivot: str = _opt("en", "pivot language when no direct model exists ('' disables)")
    grace: float = _opt(30.0, "seconds to finish in-flight calls on shutdown")
    token: str = _opt("", "require this bearer token from clients ('' disables auth; visible "
                      "in the process list: prefer --token-file or --keys)")
    token_file: str = _opt("", "file holding the bearer token (instead of --token)")
    keys: str = _opt("", "API key store (SQLite from `dragoman keys add`, or a JSON file); "
                     "every call then needs a key (health stays open)")
    tls_cert: str = _opt("", "PEM certificate chain: serve TLS (reloaded on SIGHUP or change)")
    tls_key: str = _opt("", "PEM private key of --tls-cert")
    tls_client_ca: str = _opt("", "PEM CA bundle: require client certificates it signed (mTLS)")
    reflection: bool = _opt(True, "serve gRPC server reflection (grpcurl without .proto files)")
    max_request_seconds: float = _opt(
        300.0, "cap on any one call's time in the server, queue and decoding (0: no cap); "
        "past it: DEADLINE_EXCEEDED and its work is dropped")
    http_address: str = _opt(
        "localhost:5000", "host:port of the HTTP server (LibreTranslate and DeepL APIs, JSON, "
        "web page); 'off' disables it", aliases=("--http",))
    workers: int = _opt(32, "threads preparing requests (segmenting, tokenising)")
    log_format: str = _opt("text", "log lines as text or json (one object per line, with "
                           "timestamp, level, logger, message and request_id)")
    metrics_address: str = _opt(
        "", "host:port serving Prometheus metrics at /metrics ('' : only on the HTTP "
        "server's /metrics)", aliases=("--metrics",))

    def __post_init__(self) -> None:
        if self.batching not in BATCHING_MODES:
            raise InvalidInput(f"batching must be one of {', '.join(BATCHING_MODES)}")
        if self.log_format not in ("text", "json"):
            raise InvalidInput("log_format must be text or json")
        if self.prefer not in ("bilingual", "multilingual"):
            raise InvalidInput("prefer must be 'bilingual' or 'multilingual'")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise InvalidInput("--tls-cert and --tls-key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise InvalidInput("--tls-client-ca (mTLS) needs --tls-cert and --tls-key")
        for name in ("inter_threads", "max_batch_tokens", "max_chars", "max_in_flight",
                     "max_queued", "workers", "summary_sentences", "max_model_mb"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1")
        for name in ("intra_threads", "decode_memory_mb", "cache_entries", "cache_mb",
                     "max_loaded_models", "max_loaded_mb", "beam_size", "max_request_seconds"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must not be negative")

    @property
    def http_enabled(self) -> bool:
        return self.http_address.strip().lower() not in ("", "off", "none", "0")

    @property
    def models_dir(self) -> Path:
        if self.models:
            return Path(self.models).expanduser()
        from dragoman.server.store import default_store_dir

        return default_store_dir()

    def check_models_dir(self) -> None:
        """Refuse a store named by --models or DRAGOMAN_MODELS that does not exist: a typo
        would read as an empty store. The default folder may be missing (nothing installed)."""
        if self.models and not self.models_dir.is_dir():
            raise InvalidInput(
                f"model store folder {self.models_dir} does not exist (check --models and "
                f"${env_name('models')}; without either, the default folder is used)")

    def runtime(self) -> RuntimeOptions:
        return RuntimeOptions(
            device=self.device,
            compute_type=self.compute_type,
            inter_threads=self.inter_threads,
            intra_threads=self.intra_threads,
            max_batch_tokens=self.max_batch_tokens,
        )

    def batching_options(self) -> BatchingOptions:
        return BatchingOptions(
            max_batch_tokens=self.max_batch_tokens,
            wait_ms=self.batch_wait_ms,
            max_queued=self.max_queued,
            workers=self.inter_threads,
            mode=self.batching,
            max_batch_bytes=self.decode_memory_mb * 1024 * 1024 // self.inter_threads,
        )

    def routing(self) -> RoutingOptions:
        return RoutingOptions(
            prefer=self.prefer,
            pivot_language=self.pivot,
            max_loaded_models=self.max_loaded_models,
            max_loaded_bytes=self.max_loaded_mb * 1024 * 1024,
        )


def env_name(field_name: str) -> str:
    return "DRAGOMAN_" + field_name.upper()


def _parser_for(f: Any) -> Callable[[str], Any]:
    custom = f.metadata.get("parse")
    if custom:
        return custom
    if isinstance(f.default, bool):
        return _bool
    return type(f.default)


def add_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per config field; defaults stay None so env can fill them."""
    for f in fields(ServerConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        env = env_name(f.name)
        shown = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        shown = f.metadata.get("shown") or repr(shown)
        parser.add_argument(
            flag,
            *f.metadata.get("aliases", ()),
            dest=f.name,
            default=None,
            type=_parser_for(f),
            metavar=f.name.upper() if not isinstance(f.default, bool) else "BOOL",
            help=f"{f.metadata['help']} (env {env}; default {shown})",
        )


def load_config(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> ServerConfig:
    """Build the config from flags (values None = not given), then env, then defaults."""
    flags = flags or {}
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(ServerConfig):
        if flags.get(f.name) is not None:
            values[f.name] = flags[f.name]
            continue
        raw = env.get(env_name(f.name))
        if raw is not None and raw != "":
            try:
                values[f.name] = _parser_for(f)(raw)
            except ValueError as exc:
                raise InvalidInput(f"{env_name(f.name)}={raw!r}: {exc}") from None
    return ServerConfig(**values)
