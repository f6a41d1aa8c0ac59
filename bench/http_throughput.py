"""The HTTP adapter's throughput: the LibreTranslate-compatible ``POST /translate`` against the
gRPC ``Translate`` call of the same server process and raw CTranslate2, on the same texts.

    python bench/http_throughput.py [--quick | --smoke]

One ``dragoman serve`` subprocess (sentence cache off, so nothing is served from a cache)
listens on both ports; at 1, 8 and 32 concurrent clients (each sends its next document when
its last one returns) the gRPC run and the HTTP run alternate on the same documents. Raw
CTranslate2 ``translate_batch`` over all the workload's sentences, split and tokenised as the
service does, is the reference. Prints throughput as ratios to raw and HTTP as a ratio of
gRPC. Other load on the machine skews every number (see the "other load" column).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import measure
import prepare
from throughput import SMOKE_RECIPE, _config_default, _server_flags, _threads, _tokens, _workload

logger = logging.getLogger("bench.http")


@dataclass(frozen=True)
class Plan:
    docs: int
    chars: int
    clients: tuple[int, ...]
    budgets: tuple[int, ...]
    single_client_docs: int
    rounds: int  # gRPC/HTTP alternations per client count (the best of each is kept)


FULL = Plan(docs=128, chars=2000, clients=(1, 8, 32), budgets=(512, 1024, 2048, 4096),
            single_client_docs=16, rounds=2)
QUICK = Plan(docs=48, chars=1500, clients=(1, 8, 32), budgets=(512, 1024), single_client_docs=6,
             rounds=1)
SMOKE = Plan(docs=4, chars=600, clients=(1, 2), budgets=(512,), single_client_docs=2, rounds=1)


async def _http_clients(url: str, docs: Sequence[measure.Doc], clients: int,
                        timeout: float) -> tuple[list[float], int, float]:
    queue: asyncio.Queue[measure.Doc] = asyncio.Queue()
    for doc in docs:
        queue.put_nowait(doc)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:

        async def client() -> None:
            nonlocal errors
            while True:
                try:
                    doc = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                async with session.post(f"{url}/translate", json={
                        "q": doc.text, "source": "en", "target": "de"}) as resp:
                    body = await resp.json()
                if resp.status != 200 or not str(body.get("translatedText", "")).strip():
                    errors += 1
                    logger.warning("%s failed: %s %s", doc.id, resp.status, body)
                    continue
                latencies.append(time.perf_counter() - started)

        async with session.get(f"{url}/healthz") as warm:  # one connection up before timing
            await warm.read()
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - started
    return latencies, errors, seconds


def http_run(server: measure.ServerProcess, url: str, name: str, docs: Sequence[measure.Doc],
             clients: int, target_tokens: int, timeout: float = 3600.0) -> measure.Run:
    """Like ``measure.service_run``, over LibreTranslate's ``POST /translate``."""
    with measure.PeakSampler(server.pid) as sampler, \
            measure.CpuMeter(server.pid, [server.pid, os.getpid()]) as cpu:
        latencies, errors, seconds = asyncio.run(_http_clients(url, docs, clients, timeout))
    return measure.Run(name, len(docs), sum(d.chars for d in docs), target_tokens, seconds,
                       latencies, errors, sampler.peak, cpu.decoder_cpu, cpu.other)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller workload, one round")
    parser.add_argument("--smoke", action="store_true",
                        help="a toy model and a few documents: checks the script runs (tests use "
                             "it); its numbers mean nothing")
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "dragoman-bench")
    default_threads = f"{_config_default('inter_threads')}x{_config_default('intra_threads')}"
    parser.add_argument("--threads", default=default_threads, help="INTERxINTRA CTranslate2 threads")
    parser.add_argument("--docs", type=int, help="documents in the workload")
    parser.add_argument("--clients", help="comma-separated client counts")
    parser.add_argument("--rounds", type=int, help="gRPC/HTTP alternations per client count")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.docs:
        plan = replace(plan, docs=args.docs)
    if args.clients:
        plan = replace(plan, clients=tuple(int(c) for c in args.clients.split(",")))
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    recipe = SMOKE_RECIPE if args.smoke else prepare.ModelRecipe()
    threads = _threads(args.threads)
    load = os.getloadavg()[0]
    print(f"# host: {os.cpu_count()} cores, load average {load:.2f} at start; threads "
          f"inter={threads[0]} intra={threads[1]}")
    store = prepare.prepare(args.workdir, recipe)
    docs, model = _workload(store, plan)  # type: ignore[arg-type]
    options = model.default_options()
    print(f"# workload: {len(docs)} documents, {sum(d.chars for d in docs)} characters, "
          f"{sum(len(d.sources) for d in docs)} sentences; beam {options.beam_size}")

    tr = measure.translator(model.path, *threads)
    raw = max((measure.raw_run(tr, docs, options, b) for b in sorted(plan.budgets)),
              key=lambda r: r.tokens_per_s)
    print(f"  raw: {raw.name}: {raw.seconds:.1f}s")
    del tr
    gc.collect()

    flags = _server_flags(threads, int(_config_default("max_batch_tokens")), "dynamic",  # type: ignore[call-overload]
                          float(_config_default("batch_wait_ms")))  # type: ignore[arg-type]
    http_address = f"127.0.0.1:{measure.free_port()}"
    flags["http_address"] = http_address
    server = measure.ServerProcess(store, flags, args.workdir / "server-http.log")
    rows: list[tuple[int, measure.Run, measure.Run]] = []
    with server:
        server.wait_ready()
        url = f"http://{http_address}"
        for n in plan.clients:
            subset = docs[: plan.single_client_docs] if n == 1 else docs
            tokens = _tokens(subset)
            best_grpc: measure.Run | None = None
            best_http: measure.Run | None = None
            for _ in range(plan.rounds):
                g = measure.service_run(server, f"gRPC Translate, {n} client{'s' * (n > 1)}", subset, n, tokens)
                h = http_run(server, url, f"HTTP POST /translate, {n} client{'s' * (n > 1)}", subset, n, tokens)
                print(f"  {n} clients: gRPC {g.seconds:.1f}s, HTTP {h.seconds:.1f}s")
                best_grpc = g if best_grpc is None or g.tokens_per_s > best_grpc.tokens_per_s else best_grpc
                best_http = h if best_http is None or h.tokens_per_s > best_http.tokens_per_s else best_http
            assert best_grpc is not None and best_http is not None
            rows.append((n, best_grpc, best_http))

    print()
    print("| configuration | requests | source chars/s | target tokens/s | x raw (tokens) | HTTP / gRPC "
          "| p50 latency s | p95 latency s | tokens/CPU-s | other load | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| (a) {raw.name} | {raw.docs} | {raw.chars_per_s:,.0f} | {raw.tokens_per_s:,.0f} | 1.00 | - "
          f"| - | - | {raw.tokens_per_cpu_s:,.0f} | {raw.other_cores:.2f} | - |")
    for _n, g, h in rows:
        for run, versus in ((g, "-"), (h, f"{h.tokens_per_s / g.tokens_per_s:.2f}")):
            print(f"| {run.name} | {run.docs} | {run.chars_per_s:,.0f} | {run.tokens_per_s:,.0f} "
                  f"| {run.tokens_per_s / raw.tokens_per_s:.2f} | {versus} | {run.percentile(50):.2f} "
                  f"| {run.percentile(95):.2f} | {run.tokens_per_cpu_s:,.0f} | {run.other_cores:.2f} "
                  f"| {run.errors} |")
    print()
    print(f"load average: {load:.2f} at start, {os.getloadavg()[0]:.2f} at end; best of "
          f"{plan.rounds} alternating round(s) per row")
    print("targets (measured, not asserted):")
    top = max(rows, key=lambda r: r[0])
    ratio = top[2].tokens_per_s / top[1].tokens_per_s
    print(f"  HTTP at {top[0]} clients within 10% of gRPC: {ratio:.2f} "
          f"{'met' if ratio >= 0.9 else 'MISSED'}")
    return 1 if any(r.errors for _, g, h in rows for r in (g, h)) else 0


if __name__ == "__main__":
    sys.exit(main())
