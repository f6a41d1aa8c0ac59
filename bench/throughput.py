"""Dragoman throughput benchmark: the service over gRPC as a ratio of raw CTranslate2.

    python bench/throughput.py [--quick]

In one run, on one OPUS-MT-sized random-weight model (built once into --workdir) and one
workload of article-sized documents made from stdlib docstrings:

(a) raw CTranslate2 ``translate_batch`` over all the workload's sentences (split and
    tokenised exactly as the service does), same decoding options and max_decoding_length
    rule as the engine, at a few ``max_batch_size`` token budgets; the best is the reference;
(b) ``dragoman serve`` in a subprocess, driven over real gRPC channels by 1, 8, 32 and 128
    concurrent clients (each sends its next document when the last one returns);
(c) the same server with batching off (one CTranslate2 call per request) at 32 clients;
(b') and (c') repeat (b) and (c) at 32 clients with one-sentence requests.

It prints throughput (source characters/s, target tokens/s) as ratios to (a), latency
percentiles, the server's RSS (VmRSS from /proc of the server process: idle after model
load, and the peak sampled every 10 ms under load), and the single-short-sentence latency
of the service at one client against a direct ``translate_batch`` call. The sentence cache
is off and no sentence repeats, so nothing is served from a cache. Other load on the
machine skews every number: run it on a quiet machine (see ``uptime``).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
import measure  # noqa: E402
import prepare  # noqa: E402

from dragoman.server.config import ServerConfig  # noqa: E402
from dragoman.server.engine import RuntimeOptions, Seq2SeqModel  # noqa: E402
from dragoman.server.store import ModelStore  # noqa: E402

logger = logging.getLogger("bench")

SHORT_SENTENCE = "The parser returns the list of tokens it found."
MB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    docs: int
    chars: int
    clients: tuple[int, ...]
    budgets: tuple[int, ...]
    unbatched_clients: int
    latency_repeats: int
    single_client_docs: int
    short_requests: int  # one-sentence requests for the (b')/(c') rows


FULL = Plan(docs=128, chars=2000, clients=(1, 8, 32, 128), budgets=(512, 1024, 2048, 4096),
            unbatched_clients=32, latency_repeats=40, single_client_docs=16, short_requests=640)
QUICK = Plan(docs=32, chars=1500, clients=(1, 8, 32), budgets=(512, 1024),
             unbatched_clients=32, latency_repeats=15, single_client_docs=6, short_requests=160)


def _config_default(name: str) -> object:
    return next(f.default for f in fields(ServerConfig) if f.name == name)


def _threads(text: str) -> tuple[int, int]:
    inter, _, intra = text.partition("x")
    return int(inter), int(intra)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _workload(store: Path, plan: Plan) -> tuple[list[measure.Doc], Seq2SeqModel]:
    installed = ModelStore(store).get(prepare.MODEL_NAME)
    model = Seq2SeqModel(installed.path, installed.manifest, RuntimeOptions(inter_threads=1, intra_threads=1))
    model.unload()  # only its tokenizer is needed here
    articles = corpus.articles(corpus.prose_paragraphs(), plan.docs, plan.chars)
    return measure.encode_docs(model, [(a.id, a.text) for a in articles]), model


def _one_sentence_requests(docs: list[measure.Doc], model: Seq2SeqModel, count: int) -> list[measure.Doc]:
    """The workload's first ``count`` sentences, each as its own request."""
    from dragoman.server.text.segment import split_document

    sentences = [s for d in docs for s in split_document(d.text, "en").sentences][:count]
    return measure.encode_docs(model, [(f"s-{i:05d}", s) for i, s in enumerate(sentences)])


def _server_flags(threads: tuple[int, int], budget: int, batching: bool, wait_ms: float) -> dict[str, object]:
    return {
        "preload": prepare.MODEL_NAME,
        "cache_entries": 0,  # every sentence is decoded: no cache can flatter the numbers
        "inter_threads": threads[0],
        "intra_threads": threads[1],
        "max_batch_tokens": budget,
        "batch_wait_ms": wait_ms,
        "batching": batching,
        "max_in_flight": 4096,
        "max_queued": 1_000_000,
        "grace": 5,
    }


def _start(store: Path, workdir: Path, name: str, flags: dict[str, object]) -> tuple[measure.ServerProcess, int]:
    server = measure.ServerProcess(store, flags, workdir / f"server-{name}.log")
    server.wait_ready()
    time.sleep(1.0)  # let start-up allocations settle before reading the idle RSS
    return server, server.rss()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller workload, fewer configurations")
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "dragoman-bench",
                        help="where the model store is built and server logs go")
    default_threads = f"{_config_default('inter_threads')}x{_config_default('intra_threads')}"
    parser.add_argument("--threads", default=default_threads,
                        help=f"INTERxINTRA CTranslate2 threads for raw and service (default {default_threads}, "
                             "the server's default on this host)")
    parser.add_argument("--budget", type=int, default=int(_config_default("max_batch_tokens")),  # type: ignore[call-overload]
                        help="the server's max_batch_tokens (default: the server's default)")
    parser.add_argument("--wait-ms", type=float, default=float(_config_default("batch_wait_ms")),  # type: ignore[arg-type]
                        help="the server's batch_wait_ms (default: the server's default)")
    parser.add_argument("--clients", help="comma-separated client counts for (b)")
    parser.add_argument("--budgets", help="comma-separated max_batch_size values tried for (a)")
    parser.add_argument("--docs", type=int, help="documents in the workload")
    parser.add_argument("--compare-threads", metavar="LIST",
                        help="instead of the main table, compare INTERxINTRA settings "
                             "(e.g. 1x2,2x1): raw and 32-client throughput, latency, RSS")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")

    plan = QUICK if args.quick else FULL
    if args.clients:
        plan = _replace(plan, clients=tuple(int(c) for c in args.clients.split(",")))
    if args.budgets:
        plan = _replace(plan, budgets=tuple(int(b) for b in args.budgets.split(",")))
    if args.docs:
        plan = _replace(plan, docs=args.docs)
    threads = _threads(args.threads)
    if args.compare_threads:
        return compare_threads(args, plan, [_threads(t) for t in args.compare_threads.split(",")])

    load = os.getloadavg()[0]
    print(f"# host: {os.cpu_count()} cores, load average {load:.2f} at start; threads "
          f"inter={threads[0]} intra={threads[1]}; server max_batch_tokens={args.budget}, "
          f"batch_wait_ms={args.wait_ms}")
    store = prepare.prepare(args.workdir)
    recipe = prepare.ModelRecipe()
    docs, model = _workload(store, plan)
    singles = _one_sentence_requests(docs, model, plan.short_requests)
    options = model.default_options()
    sentences = sum(len(d.sources) for d in docs)
    source_tokens = sum(len(s) for d in docs for s in d.sources)
    print(f"# model: random weights, {recipe.layers}+{recipe.layers} layers, d_model {recipe.d_model}, "
          f"{recipe.heads} heads, FFN {recipe.ffn}, vocabulary {recipe.vocab_size}, {recipe.quantization}; "
          f"beam {options.beam_size}; output length = input length")
    print(f"# workload: {len(docs)} documents, {sum(d.chars for d in docs)} characters, {sentences} sentences, "
          f"{source_tokens} source tokens (mean {source_tokens / sentences:.1f}/sentence, "
          f"{sum(d.chars for d in docs) / len(docs):.0f} characters/document)")

    # (a) raw CTranslate2
    tr = measure.translator(model.path, *threads)
    raw_base = measure.rss_bytes(os.getpid())  # budgets run in ascending order: peaks only grow
    raw_runs = []
    for budget in sorted(plan.budgets):
        run = measure.raw_run(tr, docs, options, budget)
        raw_runs.append(run)
        print(f"  {run.name}: {run.seconds:.1f}s, {run.tokens_per_s:.0f} target tokens/s")
    best = max(raw_runs, key=lambda r: r.tokens_per_s)
    short = model.encode(SHORT_SENTENCE, "en", "de").source
    direct = measure.raw_latencies(tr, short, options, plan.latency_repeats)
    del tr
    gc.collect()

    # (b) the service, batching on
    runs: list[measure.Run] = []
    flags = _server_flags(threads, args.budget, True, args.wait_ms)
    server, idle = _start(store, args.workdir, "batched", flags)
    with server:
        served = measure.service_latencies(server, SHORT_SENTENCE, plan.latency_repeats)
        for clients in plan.clients:
            subset = docs[: plan.single_client_docs] if clients == 1 else docs
            tokens = sum(len(s) for d in subset for s in d.sources)
            runs.append(measure.service_run(server, f"(b) service, {clients} client{'s' * (clients > 1)}",
                                            subset, clients, tokens))
            print(f"  {runs[-1].name}: {runs[-1].seconds:.1f}s")
        short_batched = measure.service_run(
            server, f"(b') service, {plan.unbatched_clients} clients, one-sentence requests", singles,
            plan.unbatched_clients, _tokens(singles))
        print(f"  {short_batched.name}: {short_batched.seconds:.1f}s")
        peak = max(r.peak_rss for r in [*runs, short_batched])

    # (c) the service, batching off
    flags = _server_flags(threads, args.budget, False, args.wait_ms)
    server, idle_off = _start(store, args.workdir, "unbatched", flags)
    with server:
        tokens = sum(len(s) for d in docs for s in d.sources)
        unbatched = measure.service_run(
            server, f"(c) request-by-request, {plan.unbatched_clients} clients", docs,
            plan.unbatched_clients, tokens)
        print(f"  {unbatched.name}: {unbatched.seconds:.1f}s")
        short_unbatched = measure.service_run(
            server, f"(c') request-by-request, {plan.unbatched_clients} clients, one-sentence requests",
            singles, plan.unbatched_clients, _tokens(singles))
        print(f"  {short_unbatched.name}: {short_unbatched.seconds:.1f}s")

    _report(best, raw_runs, runs, unbatched, idle, peak, idle_off, direct, served, len(short),
            load, os.getloadavg()[0], raw_base, (short_batched, short_unbatched))
    return 1 if any(r.errors for r in [*runs, unbatched, short_batched, short_unbatched]) else 0


def _tokens(docs: list[measure.Doc]) -> int:
    return sum(len(s) for d in docs for s in d.sources)


def compare_threads(args: argparse.Namespace, plan: Plan, settings: list[tuple[int, int]]) -> int:
    """The inter/intra trade-off: raw and 32-client throughput, latency and RSS per setting."""
    print(f"# host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          f"max_batch_tokens={args.budget}")
    store = prepare.prepare(args.workdir)
    docs, model = _workload(store, plan)
    options = model.default_options()
    short = model.encode(SHORT_SENTENCE, "en", "de").source
    tokens = sum(len(s) for d in docs for s in d.sources)
    print(f"# workload: {len(docs)} documents, {tokens} source tokens; beam {options.beam_size}")
    rows = []
    for threads in settings:
        tr = measure.translator(model.path, *threads)
        raw = measure.raw_run(tr, docs, options, args.budget)
        direct = statistics.median(measure.raw_latencies(tr, short, options, plan.latency_repeats))
        del tr
        gc.collect()
        flags = _server_flags(threads, args.budget, True, args.wait_ms)
        server, idle = _start(store, args.workdir, f"threads-{threads[0]}x{threads[1]}", flags)
        with server:
            served = statistics.median(measure.service_latencies(server, SHORT_SENTENCE, plan.latency_repeats))
            run = measure.service_run(server, "32 clients", docs, 32, tokens)
        rows.append((threads, raw, direct, run, served, idle))
        print(f"  {threads[0]}x{threads[1]} done")
    print()
    print("| inter x intra | raw tokens/s | raw tokens/CPU-s | service 32 clients tokens/s | x raw "
          "| service tokens/CPU-s | service p50 s | short sentence: direct ms | service ms "
          "| server idle RSS MB | server peak RSS MB | other load (raw, service) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for threads, raw, direct, run, served, idle in rows:
        print(f"| {threads[0]} x {threads[1]} | {raw.tokens_per_s:,.0f} | {raw.tokens_per_cpu_s:,.0f} "
              f"| {run.tokens_per_s:,.0f} | {run.tokens_per_s / raw.tokens_per_s:.2f} "
              f"| {run.tokens_per_cpu_s:,.0f} | {run.percentile(50):.2f} | {_ms(direct)} "
              f"| {_ms(served)} | {idle / MB:.0f} | {run.peak_rss / MB:.0f} "
              f"| {raw.other_cores:.2f}, {run.other_cores:.2f} |")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 1 if any(row[3].errors for row in rows) else 0


def _growth(run: measure.Run, base: int) -> str:
    return f"{(run.peak_rss - base) / MB:+.0f}"


def _replace(plan: Plan, **changes: object) -> Plan:
    from dataclasses import replace

    return replace(plan, **changes)  # type: ignore[arg-type]


def _report(best: measure.Run, raw_runs: list[measure.Run], runs: list[measure.Run],
            unbatched: measure.Run, idle: int, peak: int, idle_off: int, direct: list[float],
            served: list[float], short_tokens: int, load_start: float, load_end: float,
            raw_base: int, singles: tuple[measure.Run, measure.Run]) -> None:
    print()
    print("| configuration | requests | source chars/s | target tokens/s | x raw (chars) | x raw (tokens) "
          "| p50 latency s | p95 latency s | RSS growth MB | tokens/CPU-s | other load | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in [*raw_runs, *runs, unbatched, *singles]:
        is_raw = run in raw_runs
        name = ("(a) " if run is best else "    ") + run.name if is_raw else run.name
        p50 = "-" if is_raw else f"{run.percentile(50):.2f}"
        p95 = "-" if is_raw else f"{run.percentile(95):.2f}"
        errors = "-" if is_raw else str(run.errors)
        print(f"| {name} | {run.docs} | {run.chars_per_s:,.0f} | {run.tokens_per_s:,.0f} "
              f"| {run.chars_per_s / best.chars_per_s:.2f} | {run.tokens_per_s / best.tokens_per_s:.2f} "
              f"| {p50} | {p95} | {_growth(run, raw_base if is_raw else idle_off if run in (unbatched, singles[1]) else idle)} "
              f"| {run.tokens_per_cpu_s:,.0f} | {run.other_cores:.2f} | {errors} |")
    print()
    thirty_two = next((r for r in runs if r.name.endswith(" 32 clients")), None)
    d50, s50 = statistics.median(direct), statistics.median(served)
    print(f"single short sentence ({short_tokens} tokens), p50 of {len(served)}: service at 1 client "
          f"{_ms(s50)} ms, direct translate_batch {_ms(d50)} ms (+{_ms(s50 - d50)} ms)")
    print(f"server RSS (VmRSS of the `dragoman serve` process): idle after model load {idle / MB:.0f} MB; "
          f"peak under load {peak / MB:.0f} MB ({peak / idle:.2f}x idle); batching off: idle "
          f"{idle_off / MB:.0f} MB, peak {unbatched.peak_rss / MB:.0f} MB ({unbatched.peak_rss / idle_off:.2f}x)")
    print("RSS growth: peak VmRSS during the run minus the idle RSS (service: the server process "
          "after model load; raw: the benchmark process before its first raw run)")
    print("tokens/CPU-s: target tokens per CPU-second of the decoding process (raw: the benchmark "
          "process; service: the server process): the service's overhead, whatever else ran")
    print("other load: cores used on average by processes other than the benchmark and the server "
          "during the run (0.00 = quiet machine; anything else inflates the wall-clock numbers)")
    print(f"load average: {load_start:.2f} at start, {load_end:.2f} at end")
    print()
    print("targets (measured, not asserted):")
    if thirty_two is not None:
        ratio = thirty_two.tokens_per_s / best.tokens_per_s
        print(f"  service at 32 clients >= 0.90 x raw: {ratio:.2f} {'met' if ratio >= 0.9 else 'MISSED'}")
        speedup = thirty_two.tokens_per_s / unbatched.tokens_per_s
        print(f"  >= 3x request-by-request at 32 clients: {speedup:.2f}x {'met' if speedup >= 3 else 'MISSED'}"
              f" (article requests); {singles[0].tokens_per_s / singles[1].tokens_per_s:.2f}x "
              "with one-sentence requests")
    gap = (s50 - d50) * 1000
    print(f"  single short sentence p50 within 10 ms of direct: +{gap:.1f} ms {'met' if gap <= 10 else 'MISSED'}")
    print(f"  server RSS under load <= 1.5x idle: {peak / idle:.2f}x {'met' if peak <= 1.5 * idle else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
