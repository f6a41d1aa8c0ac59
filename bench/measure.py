"""The measurements behind ``throughput.py``: raw CTranslate2, the server as a subprocess
driven over gRPC, and process memory read from ``/proc``."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import ctranslate2
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dragoman.server.seq2seq import DecodingOptions, Encoded, Seq2SeqModel, decoding_cap
from dragoman.server.text.segment import split_document, split_to_fit
from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Doc:
    """One article and what the service will decode for it."""

    id: str
    text: str
    sources: tuple[tuple[str, ...], ...]  # encoded sentences, as the service queues them

    @property
    def chars(self) -> int:
        return len(self.text)


def encode_docs(model: Seq2SeqModel, articles: Sequence[tuple[str, str]], lang: str = "en",
                target: str = "de") -> list[Doc]:
    """Split and tokenise like ``Dragoman._translate_leg`` and ``LoadedModel.run``:
    per-document de-duplication, sentences over the model window split to fit, then
    ``model.encode``."""
    docs = []
    for doc_id, text in articles:
        sources: list[tuple[str, ...]] = []
        for sentence in dict.fromkeys(split_document(text, lang).sentences):
            pieces = [sentence] if model.fits(sentence) else split_to_fit(sentence, model.fits)
            sources.extend(model.encode(p.strip(), lang, target).source for p in pieces if p.strip())
        docs.append(Doc(doc_id, text, tuple(sources)))
    return docs


@dataclass
class Run:
    """One measured configuration."""

    name: str
    docs: int
    chars: int
    target_tokens: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    peak_rss: int = 0  # bytes; 0 when not sampled
    cpu_seconds: float = 0.0  # CPU time of the decoding process (raw: this one; service: the server)
    other_cpu: float = 0.0  # CPU seconds used meanwhile by processes other than bench and server

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.target_tokens / self.seconds

    @property
    def tokens_per_cpu_s(self) -> float:
        """Throughput per CPU-second of the decoding process: overhead, independent of how
        much of the machine other processes took."""
        return self.target_tokens / self.cpu_seconds if self.cpu_seconds else float("nan")

    @property
    def other_cores(self) -> float:
        """Average cores other processes used during the run (0 on a quiet machine)."""
        return self.other_cpu / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[round(q) - 1]


# -- memory ----------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS) from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads) from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy() -> float:
    """CPU seconds all processes have used since boot (every non-idle column of /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as stat:
        cols = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = cols[:8]
    return (user + nice + system + irq + softirq + steal) / _TICK


class CpuMeter:
    """CPU used during a block by ``decoder`` and by every process outside ``ours``."""

    def __init__(self, decoder: int, ours: Sequence[int]) -> None:
        self.decoder = decoder
        self.ours = list(ours)
        self.decoder_cpu = 0.0
        self.other = 0.0

    def __enter__(self) -> CpuMeter:
        self._busy = machine_busy()
        self._ours = {pid: process_cpu(pid) for pid in self.ours}
        return self

    def __exit__(self, *exc: object) -> None:
        busy = machine_busy() - self._busy
        used = {pid: process_cpu(pid) - start for pid, start in self._ours.items()}
        self.decoder_cpu = used[self.decoder]
        self.other = max(0.0, busy - sum(used.values()))


class PeakSampler:
    """Polls a process's RSS every few milliseconds while active; keeps the maximum."""

    def __init__(self, pid: int, every: float = 0.01) -> None:
        self.pid = pid
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return
            self._stop.wait(self.every)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- raw CTranslate2 -------------------------------------------------------------------------


def translator(model_dir: Path, inter: int, intra: int, compute_type: str = "int8") -> ctranslate2.Translator:
    return ctranslate2.Translator(str(model_dir), device="cpu", compute_type=compute_type,
                                  inter_threads=inter, intra_threads=intra)


def translate_raw(tr: ctranslate2.Translator, sources: Sequence[Sequence[str]],
                  options: DecodingOptions, budget: int) -> list[list[str]]:
    """``translate_batch`` with seq2seq.py's options and its length cap (``decoding_cap``:
    one call at the largest cap of the batch, as the service decodes)."""
    cap = max(decoding_cap(Encoded(tuple(s)), options, 0) for s in sources)
    results = tr.translate_batch(
        [list(s) for s in sources],
        max_batch_size=budget,
        batch_type="tokens",
        beam_size=options.beam_size,
        length_penalty=options.length_penalty,
        repetition_penalty=options.repetition_penalty,
        no_repeat_ngram_size=options.no_repeat_ngram_size,
        min_decoding_length=options.min_decoding_length,
        max_decoding_length=cap,
        max_input_length=0,
    )
    return [r.hypotheses[0] for r in results]


def raw_run(tr: ctranslate2.Translator, docs: Sequence[Doc], options: DecodingOptions,
            budget: int) -> Run:
    """All sentences of ``docs`` in one ``translate_batch`` call (CTranslate2 sorts them by
    length and cuts ``budget``-token batches): the reference the service is measured against."""
    sources = [s for d in docs for s in d.sources]
    with PeakSampler(os.getpid()) as sampler, CpuMeter(os.getpid(), [os.getpid()]) as cpu:
        started = time.perf_counter()
        outputs = translate_raw(tr, sources, options, budget)
        seconds = time.perf_counter() - started
    wrong = sum(len(o) != len(s) for o, s in zip(outputs, sources, strict=True))
    if wrong:
        raise RuntimeError(f"{wrong} outputs differ in length from their source: the bench "
                           "model must end each output with its source")
    return Run(f"raw translate_batch, max_batch_size={budget}", len(docs),
               sum(d.chars for d in docs), sum(len(o) for o in outputs), seconds,
               peak_rss=sampler.peak, cpu_seconds=cpu.decoder_cpu, other_cpu=cpu.other)


def raw_latencies(tr: ctranslate2.Translator, source: Sequence[str], options: DecodingOptions,
                  repeats: int) -> list[float]:
    translate_raw(tr, [source], options, 4096)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        translate_raw(tr, [source], options, 4096)
        times.append(time.perf_counter() - started)
    return times


# -- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``dragoman serve`` in a subprocess: the only thing in that process is the server."""

    def __init__(self, store: Path, flags: dict[str, object], log: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "dragoman.client.cli", "serve", "--models", str(store),
                "--address", self.address]
        for name, value in flags.items():
            args += ["--" + name.replace("_", "-"), str(value).lower() if isinstance(value, bool) else str(value)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO / "client"), str(REPO / "server"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self._log = open(log, "w")  # closed in stop()
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.proc.returncode}; see {self._log.name}")
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"the server was not ready within {timeout:.0f}s")

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _clients(address: str, docs: Sequence[Doc], clients: int, source: str, target: str,
                   timeout: float) -> tuple[list[float], int, float]:
    queue: asyncio.Queue[Doc] = asyncio.Queue()
    for doc in docs:
        queue.put_nowait(doc)
    latencies: list[float] = []
    errors = 0
    channels = [grpc.aio.insecure_channel(address) for _ in range(clients)]

    async def client(channel: grpc.aio.Channel) -> None:
        nonlocal errors
        stub = pb_grpc.TranslationServiceStub(channel)
        while True:
            try:
                doc = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            req = pb.TranslateRequest(text=doc.text, source_language=source,
                                      target_language=target, id=doc.id)
            started = time.perf_counter()
            try:
                resp = await stub.Translate(req, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                errors += 1
                logger.warning("%s failed: %s %s", doc.id, exc.code().name, exc.details())
                continue
            latencies.append(time.perf_counter() - started)
            if resp.id != doc.id or not resp.text.strip():
                errors += 1
                logger.warning("%s: wrong or empty response", doc.id)

    try:
        for channel in channels:
            await channel.channel_ready()
        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in channels))
        seconds = time.perf_counter() - started
    finally:
        for channel in channels:
            await channel.close()
    return latencies, errors, seconds


def service_run(server: ServerProcess, name: str, docs: Sequence[Doc], clients: int,
                target_tokens: int, timeout: float = 3600.0) -> Run:
    """``clients`` concurrent callers, each sending the next document when its last returns.

    ``target_tokens`` is what these documents decode to (the bench model's output length is
    its input length, checked in the raw runs); the response text cannot be re-counted.
    """
    with PeakSampler(server.pid) as sampler, CpuMeter(server.pid, [server.pid, os.getpid()]) as cpu:
        latencies, errors, seconds = asyncio.run(
            _clients(server.address, docs, clients, "en", "de", timeout))
    return Run(name, len(docs), sum(d.chars for d in docs), target_tokens, seconds,
               latencies, errors, sampler.peak, cpu.decoder_cpu, cpu.other)


def service_latencies(server: ServerProcess, text: str, repeats: int) -> list[float]:
    """Sequential single-sentence calls on one channel (after one warm-up call)."""
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranslationServiceStub(channel)
        req = pb.TranslateRequest(text=text, source_language="en", target_language="de")
        stub.Translate(req, timeout=60)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            stub.Translate(req, timeout=60)
            times.append(time.perf_counter() - started)
    return times
