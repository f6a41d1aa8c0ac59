"""Dragoman latency under load: documents finished in arrival order, interactive beside bulk.

    python bench/latency.py [--full] [--repeat 3] [--docs 32] [--interactive 12] [--smoke]

In one run, on the OPUS-MT-sized random-weight model of ``throughput.py`` (built once into
--workdir) and its article-sized documents:

(a)  raw CTranslate2 ``translate_batch`` over the burst's sentences (the reference);
(a1) 32 clients each send one article at the same instant: per-article latency p50 and p95
     as fractions of the pass's wall time (first-come-first-served finishes half of them in
     the first half), and the pass's throughput against (a);
(b0) one interactive client on an idle server: single articles, one every second (the next
     when the last returned, if that took longer);
(b)  the same client while a bulk ``TranslateStream`` (priority BULK) keeps the server
     saturated: its p50/p95 against (b0), and the throughput of the bulk stream alone and
     of both together against raw CTranslate2.

The stream sends documents (the corpus, cycled under new ids) until the interactive client
is done, so the server is saturated for all of it. Against a server without the priority
field the stream simply competes first-come-first-served (the "before" figures). Raw
CTranslate2 runs between the passes on the same (then idle) machine: each burst pass is
compared with the faster raw run beside it, and ``--repeat N`` gives the median of N passes,
because this kind of VM drifts by up to 20% between runs a minute apart. Prints ratios;
nothing here is a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus
import grpc
import measure
import prepare
import throughput

from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc

logger = logging.getLogger("bench")

# Older servers (the "before" figures) have no priority field: the requests then carry none.
HAS_PRIORITY = "priority" in pb.TranslateRequest.DESCRIPTOR.fields_by_name


@dataclass(frozen=True)
class LatencyPlan:
    docs: int  # the burst: one article per client, all at once
    chars: int
    interactive: int  # articles the interactive client sends (idle, then beside the stream)
    every: float  # seconds between the interactive client's articles
    bulk_docs: int  # distinct documents the stream cycles through
    min_stream: int  # the stream sends at least this many documents
    ahead: int = 128  # stream documents sent and not yet answered (the server holds 64)


FULL = LatencyPlan(docs=32, chars=2000, interactive=12, every=1.0, bulk_docs=96, min_stream=2000)
MODERATE = LatencyPlan(docs=32, chars=1500, interactive=10, every=1.0, bulk_docs=64, min_stream=0)
SMOKE = LatencyPlan(docs=4, chars=500, interactive=2, every=0.05, bulk_docs=4, min_stream=6,
                   ahead=8)


SMALL_RECIPE = prepare.ModelRecipe(layers=3, d_model=256, heads=4, ffn=1024)


def _request(doc: measure.Doc, priority: str = "") -> pb.TranslateRequest:
    req = pb.TranslateRequest(text=doc.text, source_language="en", target_language="de", id=doc.id)
    if priority and HAS_PRIORITY:
        req.priority = pb.Priority.Value(f"PRIORITY_{priority}")
    return req


async def _burst(address: str, docs: list[measure.Doc]) -> tuple[list[float], float, int]:
    """Every document from its own client at the same instant; (latencies, wall, errors)."""
    channels = [grpc.aio.insecure_channel(address) for _ in docs]
    errors = 0
    try:
        for channel in channels:
            await channel.channel_ready()
        started = time.perf_counter()

        async def one(channel: grpc.aio.Channel, doc: measure.Doc) -> float:
            nonlocal errors
            try:
                await pb_grpc.TranslationServiceStub(channel).Translate(_request(doc), timeout=3600)
            except grpc.aio.AioRpcError as exc:
                errors += 1
                logger.warning("%s failed: %s", doc.id, exc.details())
            return time.perf_counter() - started

        latencies = await asyncio.gather(*(one(c, d) for c, d in zip(channels, docs)))
        wall = time.perf_counter() - started
    finally:
        for channel in channels:
            await channel.close()
    return list(latencies), wall, errors


async def _interactive(stub: pb_grpc.TranslationServiceStub, docs: list[measure.Doc],
                       every: float) -> tuple[list[float], int]:
    """One client: an article every ``every`` seconds (the next when the last returned)."""
    latencies: list[float] = []
    errors = 0
    for doc in docs:
        started = time.perf_counter()
        try:
            await stub.Translate(_request(doc, "INTERACTIVE"), timeout=3600)
            latencies.append(time.perf_counter() - started)
        except grpc.aio.AioRpcError as exc:
            errors += 1
            logger.warning("interactive %s failed: %s", doc.id, exc.details())
        await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))
    return latencies, errors


@dataclass
class Beside:
    interactive: list[float]
    errors: int
    bulk_docs: int
    bulk_tokens: int
    interactive_tokens: int
    seconds: float


async def _beside(address: str, bulk: list[measure.Doc], interactive: list[measure.Doc],
                  plan: LatencyPlan) -> Beside:
    """The interactive client while one bulk TranslateStream saturates the server."""
    tokens = {d.id: sum(len(s) for s in d.sources) for d in bulk}
    done = asyncio.Event()
    started_bulk = asyncio.Event()
    ahead = asyncio.Semaphore(plan.ahead)  # documents sent but not answered
    sent = 0

    async def documents():  # type: ignore[no-untyped-def]
        nonlocal sent
        n = 0
        while not done.is_set() or sent < plan.min_stream:
            await ahead.acquire()
            doc = bulk[n % len(bulk)]
            req = _request(doc, "BULK")
            req.id = f"{doc.id}#{n}"
            n += 1
            sent += 1
            yield req

    async with grpc.aio.insecure_channel(address) as bulk_channel, \
            grpc.aio.insecure_channel(address) as channel:
        await bulk_channel.channel_ready()
        await channel.channel_ready()
        stub = pb_grpc.TranslationServiceStub(channel)
        started = time.perf_counter()
        bulk_tokens = bulk_docs = errors = 0

        async def drain() -> None:
            nonlocal bulk_tokens, bulk_docs, errors
            call = pb_grpc.TranslationServiceStub(bulk_channel).TranslateStream(documents())
            async for resp in call:
                started_bulk.set()
                ahead.release()
                if resp.error.code:
                    errors += 1
                    logger.warning("bulk %s failed: %s", resp.id, resp.error.message)
                    continue
                bulk_docs += 1
                bulk_tokens += tokens[resp.id.split("#")[0]]

        stream = asyncio.create_task(drain())
        await started_bulk.wait()  # the stream holds the server before the client starts
        latencies, ierrors = await _interactive(stub, interactive, plan.every)
        done.set()
        await stream
        seconds = time.perf_counter() - started
    return Beside(latencies, errors + ierrors, bulk_docs, bulk_tokens,
                  sum(len(s) for d in interactive for s in d.sources), seconds)


@dataclass
class Pass:
    """One burst: per-article latencies, the pass's wall time, errors, throughput x raw."""

    latencies: list[float]
    wall: float
    errors: int
    throughput: float


def _pct(values: list[float], q: float) -> float:
    return measure.Run("", 0, 0, 0, 1.0, list(values)).percentile(q)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="a toy model and a few documents: checks the script runs (tests use it)")
    parser.add_argument("--full", action="store_true",
                        help="the issue's plan: a stream of at least 2,000 documents")
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "dragoman-bench")
    default_threads = (f"{throughput._config_default('inter_threads')}x"
                       f"{throughput._config_default('intra_threads')}")
    parser.add_argument("--threads", default=default_threads)
    parser.add_argument("--budget", type=int,
                        default=int(throughput._config_default("max_batch_tokens")))  # type: ignore[call-overload]
    parser.add_argument("--docs", type=int, help="clients (one article each) in the burst")
    parser.add_argument("--interactive", type=int, help="articles the interactive client sends")
    parser.add_argument("--chars", type=int, help="characters per article")
    parser.add_argument("--small-model", action="store_true",
                        help="3+3 layers, d_model 256 (same vocabulary): for a loaded machine")
    parser.add_argument("--bulk-docs", type=int, help="distinct articles the bulk stream cycles")
    parser.add_argument("--repeat", type=int, default=1,
                        help="burst passes, each beside its own raw runs; the table gives medians")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    plan = SMOKE if args.smoke else FULL if args.full else MODERATE
    if args.docs:
        plan = throughput._replace(plan, docs=args.docs)  # type: ignore[arg-type]
    if args.interactive:
        plan = throughput._replace(plan, interactive=args.interactive)  # type: ignore[arg-type]
    if args.chars:
        plan = throughput._replace(plan, chars=args.chars)  # type: ignore[arg-type]
    if args.bulk_docs:
        plan = throughput._replace(plan, bulk_docs=args.bulk_docs)  # type: ignore[arg-type]
    recipe = (throughput.SMOKE_RECIPE if args.smoke else SMALL_RECIPE if args.small_model
              else prepare.ModelRecipe())
    threads = throughput._threads(args.threads)
    load = os.getloadavg()[0]
    print(f"# host: {os.cpu_count()} cores, load average {load:.2f} at start; threads "
          f"{threads[0]}x{threads[1]}; max_batch_tokens={args.budget}; priority field: "
          f"{'yes' if HAS_PRIORITY else 'no (server before issue 16)'}")
    store = prepare.prepare(args.workdir, recipe)
    installed = throughput.ModelStore(store).get(prepare.MODEL_NAME)
    model = throughput.Seq2SeqModel(installed.path, installed.manifest,
                                    throughput.RuntimeOptions(inter_threads=1, intra_threads=1))
    model.unload()
    articles = corpus.articles(corpus.prose_paragraphs(),
                               plan.docs + plan.bulk_docs + plan.interactive, plan.chars)
    docs = measure.encode_docs(model, [(a.id, a.text) for a in articles])
    burst, bulk = docs[:plan.docs], docs[plan.docs:plan.docs + plan.bulk_docs]
    interactive = docs[plan.docs + plan.bulk_docs:]
    options = model.default_options()
    tokens = throughput._tokens(burst)
    print(f"# model: {recipe.layers}+{recipe.layers} layers, d_model {recipe.d_model}, vocabulary "
          f"{recipe.vocab_size}, {recipe.quantization}, beam {options.beam_size}")
    print(f"# burst: {len(burst)} articles, {tokens} source tokens; interactive: "
          f"{len(interactive)} articles, one every {plan.every:g} s; bulk stream cycles "
          f"{len(bulk)} articles ({plan.chars} characters each)")

    translator = measure.translator(model.path, *threads)

    def raw(which: list[measure.Doc]) -> float:
        return measure.raw_run(translator, which, options, args.budget).tokens_per_s

    # Raw CTranslate2 runs beside the service's, on the same idle machine (the server waits,
    # unused): each burst pass is compared with the faster of the raw runs just before and
    # just after it, and the stream with the faster of a run before and one after, so a
    # machine that slowed down meanwhile cannot flatter the service. This VM's speed drifts
    # by up to 20% between runs a minute apart: --repeat takes the median of several passes.
    raw_bulk_before = raw(bulk)
    raw_burst = [raw(burst)]
    print(f"  raw: {raw_burst[0]:.0f} tokens/s (burst), {raw_bulk_before:.0f} (bulk docs)")

    flags = throughput._server_flags(threads, args.budget, "dynamic", 2.0)
    flags["max_request_seconds"] = 0  # a saturating stream is the point: no time cap
    server, _ = throughput._start(store, args.workdir, "latency", flags)
    passes: list[Pass] = []
    with server:
        measure.service_latencies(server, throughput.SHORT_SENTENCE, 1)  # warm up
        for n in range(args.repeat):
            latencies, wall, errors = asyncio.run(_burst(server.address, burst))
            raw_burst.append(raw(burst))
            passes.append(Pass(latencies, wall, errors, tokens / wall / max(raw_burst[-2:])))
            print(f"  (a1) burst {n + 1}: {wall:.1f}s, {passes[-1].throughput:.2f}x raw (raw "
                  f"after it: {raw_burst[-1]:.0f} tokens/s); articles finished at "
                  + " ".join(f"{t / wall:.2f}" for t in sorted(latencies)) + " of it")

        async def idle() -> tuple[list[float], int]:
            async with grpc.aio.insecure_channel(server.address) as channel:
                return await _interactive(pb_grpc.TranslationServiceStub(channel), interactive,
                                          plan.every)

        idle_lat, idle_errors = asyncio.run(idle())
        print(f"  (b0) idle: p50 {statistics.median(idle_lat):.2f}s")
        beside = asyncio.run(_beside(server.address, bulk, interactive, plan))
        print(f"  (b) beside the stream: {beside.seconds:.1f}s, {beside.bulk_docs} bulk documents")

    raw_bulk_after = raw(bulk)
    print(f"  raw: {raw_bulk_after:.0f} tokens/s (bulk docs)")
    raw_bulk = max(raw_bulk_before, raw_bulk_after)
    burst_errors = sum(p.errors for p in passes)
    p50 = statistics.median(_pct(p.latencies, 50) / p.wall for p in passes)
    p95 = statistics.median(_pct(p.latencies, 95) / p.wall for p in passes)
    ratio = statistics.median(p.throughput for p in passes)
    wall = statistics.median(p.wall for p in passes)

    bulk_rate = beside.bulk_tokens / beside.seconds
    both_rate = (beside.bulk_tokens + beside.interactive_tokens) / beside.seconds
    i50, i95 = _pct(beside.interactive, 50), _pct(beside.interactive, 95)
    d50, d95 = _pct(idle_lat, 50), _pct(idle_lat, 95)
    each = len(passes) > 1
    median = f"median of {len(passes)} passes" if each else "one pass"

    def per_pass(values: list[float]) -> str:
        return f" ({', '.join(f'{v:.2f}' for v in values)})" if each else ""

    print()
    print("| row | measured | ratio |")
    print("|---|---:|---:|")
    print(f"| (a) raw translate_batch, burst sentences ({len(raw_burst)} runs around the passes: "
          f"{' / '.join(f'{r:,.0f}' for r in raw_burst)} tokens/s) | "
          f"{statistics.median(raw_burst):,.0f} tokens/s | 1.00 |")
    print(f"| (a1) {len(burst)} clients at once: wall time, {median} | {wall:.2f} s | - |")
    print(f"| (a1) p50 latency / wall time{per_pass([_pct(p.latencies, 50) / p.wall for p in passes])}"
          f" | - | {p50:.2f} |")
    print(f"| (a1) p95 latency / wall time{per_pass([_pct(p.latencies, 95) / p.wall for p in passes])}"
          f" | - | {p95:.2f} |")
    print(f"| (a1) throughput x raw (each pass against the faster raw run beside it)"
          f"{per_pass([p.throughput for p in passes])} | {tokens / wall:,.0f} tokens/s | {ratio:.2f} |")
    print(f"| (b0) interactive alone, p50 / p95 | {d50:.2f} / {d95:.2f} s | 1.00 |")
    print(f"| (b) interactive beside bulk, p50 x idle | {i50:.2f} s | {i50 / d50:.2f} |")
    print(f"| (b) interactive beside bulk, p95 x idle | {i95:.2f} s | {i95 / d95:.2f} |")
    print(f"| (c) raw translate_batch, bulk documents (faster of before {raw_bulk_before:,.0f} "
          f"/ after {raw_bulk_after:,.0f}) | {raw_bulk:,.0f} tokens/s | 1.00 |")
    print(f"| (c) bulk stream throughput x raw | {bulk_rate:,.0f} tokens/s | "
          f"{bulk_rate / raw_bulk:.2f} |")
    print(f"| (c) bulk + interactive throughput x raw | {both_rate:,.0f} tokens/s | "
          f"{both_rate / raw_bulk:.2f} |")
    print()
    print(f"bulk stream: {beside.bulk_docs} documents in {beside.seconds:.1f} s; errors: burst "
          f"{burst_errors}, idle {idle_errors}, beside {beside.errors}; load average "
          f"{load:.2f} at start, {os.getloadavg()[0]:.2f} at end")

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print("targets (measured, not asserted):")
    print(f"  32 clients: p50 <= 0.6 of wall time: {p50:.2f} {verdict(p50 <= 0.6)}")
    print(f"  32 clients: throughput >= 0.95 x raw: {ratio:.2f} {verdict(ratio >= 0.95)}")
    print(f"  interactive beside bulk: p50 within 2x idle: {i50 / d50:.2f} {verdict(i50 <= 2 * d50)}")
    alone, both = bulk_rate / raw_bulk, both_rate / raw_bulk
    print(f"  beside interactive, the bulk stream >= 0.85 x raw: {alone:.2f} {verdict(alone >= 0.85)}"
          f" (with the interactive client's work: {both:.2f} {verdict(both >= 0.85)})")
    return 1 if burst_errors or idle_errors or beside.errors else 0


if __name__ == "__main__":
    sys.exit(main())
