"""Building, running and stopping the gRPC server.

``create_server`` follows the grpc examples: it returns the (not yet started) server and the
bound port, so tests listen on port 0. ``serve`` is the process entry point: it starts
listening at once with health NOT_SERVING, loads the models, flips to SERVING, and on
SIGTERM/SIGINT refuses new calls and lets in-flight ones finish within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dragoman.server.access import AccessControl
from dragoman.server.build import build_service
from dragoman.server.config import ServerConfig
from dragoman.server.errors import DragomanError
from dragoman.server.http import observe as http_observe
from dragoman.server.http.app import HttpServer, create_app
from dragoman.server.http.tls import ReloadingContext
from dragoman.server.observability.metrics import Metrics
from dragoman.server.rpc.auth import AccessInterceptor
from dragoman.server.rpc.decoding import DecodeGuardInterceptor
from dragoman.server.rpc.observe import ObserveInterceptor
from dragoman.server.rpc.servicers import SummarisationServicer, TranslationServicer, _Calls
from dragoman.server.rpc.tls import CertificateFiles, TlsSettings
from dragoman.server.service import Dragoman
from dragoman.v1 import (
    summarisation_pb2,
    summarisation_pb2_grpc,
    translation_pb2,
    translation_pb2_grpc,
)

__all__ = ["ServerHandle", "ServerThread", "build_service", "create_server", "serve_forever", "start"]

logger = logging.getLogger(__name__)

SERVICE_NAMES = (
    translation_pb2.DESCRIPTOR.services_by_name["TranslationService"].full_name,
    summarisation_pb2.DESCRIPTOR.services_by_name["SummarisationService"].full_name,
)
MODEL_HEALTH_PREFIX = "dragoman.model."
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # replies (a translation may outgrow its source)
# Request fields other than the text (id, language codes, model name) and protobuf framing.
REQUEST_OVERHEAD_BYTES = 64 * 1024
HOUSEKEEPING_SECONDS = 5.0
# How long before the end of the grace period the calls still running are answered, so
# their answers go out before gRPC's own deadline.
DRAIN_POLL_SECONDS = 0.02  # how often a shutdown looks whether the documents in flight are done
STOP_MARGIN_SECONDS = 0.5
DEFAULT_HTTP_ADDRESS = next(f.default for f in fields(ServerConfig) if f.name == "http_address")


def receive_limit(max_chars: int) -> int:
    """The largest request message the server takes: the largest legal document (up to 4
    UTF-8 bytes per character) plus overhead. gRPC refuses a bigger one itself, from its
    length prefix, before buffering it, so an oversized call costs next to nothing."""
    return 4 * max_chars + REQUEST_OVERHEAD_BYTES


class _ForcedCancel(logging.Filter):
    """Drops gRPC's CancelledError traceback for a call it cancels at the end of the grace
    period; only added once shutting down, when our own calls have been answered."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, asyncio.CancelledError)
                    and record.getMessage().startswith("Exception not handled by"))


_FORCED_CANCEL = _ForcedCancel()


@dataclass
class ServerHandle:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service: Dragoman
    executor: ThreadPoolExecutor
    housekeeping: asyncio.Task[None] | None = None
    http: HttpServer | None = None  # the HTTP adapter on the same loop, when enabled
    tls: CertificateFiles | None = None  # reload_tls() re-reads them (SIGHUP)
    metrics: Metrics | None = None  # this server's Prometheus series
    metrics_server: http_observe.MetricsServer | None = None  # --metrics HOST:PORT
    translation: TranslationServicer | None = None  # its stream counters (tests, metrics)
    calls: _Calls | None = None  # the calls in flight, ended by the grace period
    reported: set[str] = field(default_factory=set)  # models with a health entry

    def reload_tls(self) -> None:
        if self.tls is not None:
            self.tls.request_reload()
        if self.http is not None and self.http.tls is not None:
            self.http.tls.request_reload()

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)
        await self.report_models()

    async def report_models(self) -> None:
        """Per-model health: SERVING when in memory, NOT_SERVING when installed but unloaded
        or broken (a model that fails to load, a folder without a readable manifest) or
        removed since it was last reported."""
        states = self.service.model_states()
        loaded = {s.name for s in states if s.loaded}
        names = {s.name for s in states}
        gone, self.reported = self.reported - names, names
        for name in sorted(names | gone):
            await self.health.set(
                MODEL_HEALTH_PREFIX + name,
                health_pb2.HealthCheckResponse.SERVING if name in loaded
                else health_pb2.HealthCheckResponse.NOT_SERVING,
            )

    async def keep_current(self, interval: float | None = None) -> None:
        """Pick up models installed or removed while running and keep per-model health true
        after LRU unloads."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval or HOUSEKEEPING_SECONDS)
            try:
                await loop.run_in_executor(self.executor, self.service.refresh)
                await self.report_models()
            except Exception:  # housekeeping must never stop the server
                logger.exception("housekeeping failed")

    async def stop(self, grace: float | None) -> bool:
        """Refuse new work, let in-flight calls finish: all within ``grace`` seconds.

        Every step shares one deadline: gRPC and HTTP drain together, the batchers stop
        waiting for company, calls still running just before the end are answered
        UNAVAILABLE by the servicers, and the model workers get what time is left. Returns
        False when a batch was still decoding at the end (CTranslate2 cannot be
        interrupted): the process should then exit without waiting for it.
        """
        deadline = None if grace is None else time.monotonic() + grace
        if self.housekeeping is not None:
            self.housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.housekeeping
        await self.set_serving(False)
        self.service.drain()  # refuses new calls; nobody will join a batch waiting for company
        drains = [self._drain_grpc(grace)]
        if self.http is not None:
            drains.append(self.http.stop())
        await asyncio.gather(*drains)
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        stopped = self.service.close(timeout=left)
        self.executor.shutdown(wait=False, cancel_futures=True)
        return stopped

    async def _drain_grpc(self, grace: float | None) -> None:
        started = time.monotonic()
        # gRPC stops accepting calls the moment it is told to stop, and a client then sees
        # CANCELLED, which it does not retry. So the port stays open while the documents in
        # flight finish: a call arriving meanwhile is answered UNAVAILABLE by the service
        # (closed above) and its client retries elsewhere.
        last_call = None if grace is None else grace - min(STOP_MARGIN_SECONDS, grace / 4)
        while self.service.in_flight and (
                last_call is None or time.monotonic() - started < last_call):
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        if grace is not None:
            grace = max(0.0, grace - (time.monotonic() - started))
        stopping = asyncio.ensure_future(self.server.stop(grace))
        if grace is not None and self.calls is not None:
            # Shortly before gRPC's own deadline, answer what still runs ourselves.
            early = grace - min(STOP_MARGIN_SECONDS, grace / 4)
            done, _ = await asyncio.wait({stopping}, timeout=early)
            if not done:
                ended = self.calls.abort_all()
                if ended:
                    logger.info("grace period over: %d call(s) still running answered "
                                "UNAVAILABLE", ended)
        # What gRPC still cancels itself (a client's open health Watch) must not look like a
        # crash in the log.
        logging.getLogger("grpc._cython.cygrpc").addFilter(_FORCED_CANCEL)
        await stopping


def create_server(
    service: Dragoman, address: str, *, workers: int = 32, tls: TlsSettings | None = None,
    reflection_enabled: bool = True, metrics: Metrics | None = None,
) -> ServerHandle:
    """Build the server and bind ``address`` (port 0 picks a free one); call inside a loop.

    Keys are checked by ``service.access``; ``tls`` serves TLS (mTLS with a client CA) from
    files that are re-read when they change.
    """
    # Outermost first: every call is observed; bad request bytes get INVALID_ARGUMENT.
    interceptors: list[grpc.aio.ServerInterceptor] = [
        ObserveInterceptor(metrics), DecodeGuardInterceptor()]
    if service.access.required:
        interceptors.append(AccessInterceptor(service.access))
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", receive_limit(service.limits.max_chars)),
            # A stream's window is one largest message and does not grow (no BDP probing):
            # gRPC buffers what arrives before a handler reads it, up to the window, so with
            # a growing window 20 oversized calls still cost 100-300 MB; this way ~5 MB.
            ("grpc.http2.lookahead_bytes", receive_limit(service.limits.max_chars)),
            ("grpc.http2.bdp_probe", 0),
            ("grpc.so_reuseport", 0),
        ],
    )
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare")
    calls = _Calls(service, executor)
    translation = TranslationServicer(calls)
    translation_pb2_grpc.add_TranslationServiceServicer_to_server(translation, server)
    summarisation_pb2_grpc.add_SummarisationServiceServicer_to_server(
        SummarisationServicer(calls), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflection_enabled:
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    files = CertificateFiles(tls) if tls is not None else None
    check_port_free(address)
    try:
        if files is not None:
            port = server.add_secure_port(address, files.credentials())
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise DragomanError(f"cannot listen on {address}: {exc}") from None
    if port == 0:
        raise DragomanError(f"cannot listen on {address}")
    return ServerHandle(server, port, health_servicer, service, executor, tls=files,
                        metrics=metrics, translation=translation, calls=calls)


def check_port_free(address: str) -> None:
    """Refuse a port in use before gRPC tries it: its C core would print a raw ``E... add_port``
    log line to stderr before our one-line error. Port 0 and unix sockets are not checked."""
    host, _, port_text = address.rpartition(":")
    if address.startswith("unix:") or not port_text.isdigit() or int(port_text) == 0:
        return
    try:
        candidates = socket.getaddrinfo(host.strip("[]") or None, int(port_text), type=socket.SOCK_STREAM,
                                        flags=socket.AI_PASSIVE)
    except OSError:
        return  # gRPC reports the unresolvable name itself
    for family, kind, proto, _name, sockaddr in candidates:
        with contextlib.closing(socket.socket(family, kind, proto)) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise DragomanError(
                        f"cannot listen on {address}: port {port_text} is already in use "
                        "(another `dragoman serve`? choose one with --address)") from None


def tls_settings(config: ServerConfig) -> TlsSettings | None:
    if not config.tls_cert:
        return None
    return TlsSettings(config.tls_cert, config.tls_key, config.tls_client_ca)


def models_to_preload(service: Dragoman, config: ServerConfig) -> list[str]:
    """--preload if given; otherwise every installed model when no memory limit is set."""
    if config.preload:
        return list(config.preload)
    if config.max_loaded_models or config.max_loaded_mb:
        return []
    return [s.name for s in service.model_states() if s.installed]


async def start(service: Dragoman, config: ServerConfig) -> ServerHandle:
    metrics = Metrics(service)
    service.observe(metrics)
    handle = create_server(service, config.address, workers=config.workers,
                           tls=tls_settings(config), reflection_enabled=config.reflection,
                           metrics=metrics)
    await handle.set_serving(False)
    await handle.server.start()
    logger.info("listening on %s (port %d, %s); models in %s", config.address, handle.port,
                "mTLS" if config.tls_client_ca else "TLS" if config.tls_cert else "plaintext",
                service.models_dir)
    logger.info("access: %s", service.access.describe())
    logger.info(
        "decoding: %d replica(s) x %d thread(s) per model, batches of up to %d tokens, "
        "batching %s, memory cap %s", config.inter_threads, config.intra_threads,
        config.max_batch_tokens, config.batching,
        f"{config.decode_memory_mb} MB" if config.decode_memory_mb else "none",
    )
    names = models_to_preload(service, config)
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(handle.executor, service.preload, names)
    except BaseException:
        await handle.stop(0)  # stopped on this loop, not by gRPC's __del__ after it closed
        raise
    states = service.model_states()
    in_memory = {s.name for s in states if s.loaded}
    loaded = [name for name in names if name in in_memory]
    logger.info("loaded %d model(s) in %.2fs: %s", len(loaded), time.monotonic() - started,
                ", ".join(loaded) or "none (extractive summaries only)")
    broken = [s.name for s in states if s.problem]
    if broken:
        logger.warning("not serving %d broken model(s): %s (see `dragoman models list`)",
                       len(broken), ", ".join(sorted(broken)))
    if config.http_enabled:
        try:
            handle.http = await start_http(handle, config)
        except BaseException:
            await handle.stop(0)  # do not leave gRPC listening when the start fails
            raise
    if config.metrics_address:
        try:
            handle.metrics_server = await http_observe.MetricsServer(
                metrics, config.metrics_address).start()
        except BaseException:
            await handle.stop(0)
            raise
        logger.info("Prometheus metrics on http://%s:%d/metrics", handle.metrics_server.host,
                    handle.metrics_server.port)
    await handle.set_serving(True)
    handle.housekeeping = asyncio.create_task(handle.keep_current())
    return handle


async def start_http(handle: ServerHandle, config: ServerConfig) -> HttpServer | None:
    """The HTTP adapter on this loop, sharing the service, its pool and its access check.

    Only an address the user chose is fatal when taken: the default one (LibreTranslate's
    port 5000) may be in use by something else, and gRPC should still start then."""
    access = getattr(handle.service, "access", None) or AccessControl(config.token)
    app = create_app(handle.service, handle.executor, access)
    http_observe.install(app, handle.metrics)  # request ids, counts by route, /metrics
    try:
        settings = tls_settings(config)
        https = ReloadingContext(settings) if settings is not None else None
        http = await HttpServer(app, config.http_address, config.grace, https).start()
    except DragomanError as exc:
        if config.http_address != DEFAULT_HTTP_ADDRESS:
            raise
        logger.warning("%s; serving gRPC only (set --http HOST:PORT, or --http off)", exc)
        return None
    logger.info("%s on %s (port %d): LibreTranslate and DeepL APIs, /v1 JSON, web page at /",
                "HTTPS" if https is not None else "HTTP", config.http_address, http.port)
    return http


async def serve_forever(config: ServerConfig, ready: threading.Event | None = None) -> bool:
    """Serve until SIGTERM/SIGINT, then stop within ``--grace``; returns ``ServerHandle.stop``'s
    verdict (False: a batch is still decoding, exit without waiting for it)."""
    service = build_service(config)
    handle = await start(service, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / platform
            pass
    try:
        loop.add_signal_handler(signal.SIGHUP, handle.reload_tls)
    except (NotImplementedError, RuntimeError, AttributeError):  # no SIGHUP here
        pass
    if ready is not None:
        ready.set()
    await stop.wait()
    logger.info("shutting down: finishing in-flight calls (grace %gs)", config.grace)
    stopped = await handle.stop(config.grace)
    logger.info("stopped" if stopped else
                "stopped (a batch still decoding at the end of the grace period is abandoned)")
    return stopped


class ServerThread:
    """A server on its own event loop in a background thread (tests, benchmarks, embedding)."""

    def __init__(self, service: Dragoman, config: ServerConfig) -> None:
        self.service = service
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.handle: ServerHandle | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dragoman-server", daemon=True)

    @property
    def port(self) -> int:
        assert self.handle is not None
        return self.handle.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP adapter (it must be enabled)."""
        assert self.handle is not None and self.handle.http is not None, "HTTP is off"
        return f"http://127.0.0.1:{self.handle.http.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def boot() -> None:
            try:
                self.handle = await start(self.service, self.config)
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc
            finally:
                self._ready.set()

        self.loop.run_until_complete(boot())
        if self._error is None:
            self.loop.run_forever()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self, grace: float | None = 5.0) -> None:
        if self.handle is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self.handle.stop(grace), self.loop)
        fut.result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.handle = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
