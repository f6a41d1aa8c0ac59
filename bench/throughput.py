"""Dragoman throughput benchmark: the service over gRPC as a ratio of raw CTranslate2.

    python bench/throughput.py [--quick]

In one run, on one OPUS-MT-sized random-weight model (built once into --workdir) and one
workload of article-sized documents made from stdlib docstrings:

(a) raw CTranslate2 ``translate_batch`` over all the workload's sentences (split and
    tokenised exactly as the service does), same decoding options and max_decoding_length
    rule as seq2seq.py, at a few ``max_batch_size`` token budgets; the best is the reference;
(b) ``dragoman serve`` in a subprocess, driven over real gRPC channels by 1, 8, 32 and 128
    concurrent clients (each sends its next document when the last one returns);
(m) the service at 32 clients with ``--decode-memory-mb`` caps (``--memory-mb``);
(c) no cross-request batching, one CTranslate2 call per paragraph (``--batching paragraph``,
    what Argos Translate does behind LibreTranslate) at 32 clients; (c2) one call per request;
    (c3) per paragraph with Argos's thread setting (one replica over every core; full run only);
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
import json
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus
import measure
import prepare

from dragoman.server.config import ServerConfig
from dragoman.server.seq2seq import RuntimeOptions, Seq2SeqModel
from dragoman.server.store import ModelStore

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
    argos_threads: bool  # also measure (c3): per paragraph with Argos's default threads


FULL = Plan(docs=128, chars=2000, clients=(1, 8, 32, 128), budgets=(512, 1024, 2048, 4096),
            unbatched_clients=32, latency_repeats=40, single_client_docs=16, short_requests=640,
            argos_threads=True)
SMOKE = Plan(docs=4, chars=600, clients=(1, 2), budgets=(512,), unbatched_clients=2,
             latency_repeats=2, single_client_docs=2, short_requests=6, argos_threads=False)
SMOKE_RECIPE = prepare.ModelRecipe(layers=1, d_model=128, heads=2, ffn=256, vocab_size=None,
                                   sentencepiece_pieces=2000)
QUICK = Plan(docs=32, chars=1500, clients=(1, 8, 32), budgets=(512, 1024),
             unbatched_clients=32, latency_repeats=15, single_client_docs=6, short_requests=160,
             argos_threads=False)


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


def _server_flags(threads: tuple[int, int], budget: int, batching: str, wait_ms: float,
                  memory_mb: int = 0) -> dict[str, object]:
    return {
        "preload": prepare.MODEL_NAME,
        "cache_entries": 0,  # every sentence is decoded: no cache can flatter the numbers
        "inter_threads": threads[0],
        "intra_threads": threads[1],
        "max_batch_tokens": budget,
        "batch_wait_ms": wait_ms,
        "batching": batching,
        "decode_memory_mb": memory_mb,
        "max_in_flight": 4096,
        "max_queued": 1_000_000,
        "grace": 5,
    }


@dataclass
class Session:
    """One server process and the runs measured against it."""

    label: str
    idle: int  # RSS after model load, bytes
    runs: list[measure.Run]
    clients: dict[str, int] = field(default_factory=dict)  # run name -> concurrent clients

    @property
    def peak(self) -> int:
        return max((r.peak_rss for r in self.runs), default=self.idle)

    def measure(self, server: measure.ServerProcess, name: str, docs: list[measure.Doc],
                clients: int) -> None:
        """Drive ``server`` with ``clients`` concurrent callers over ``docs``; keep the run."""
        run = measure.service_run(server, name, docs, clients, _tokens(docs))
        self.runs.append(run)
        self.clients[run.name] = clients
        print(f"  {run.name}: {run.seconds:.1f}s")


def _start(store: Path, workdir: Path, name: str, flags: dict[str, object]) -> tuple[measure.ServerProcess, int]:
    server = measure.ServerProcess(store, flags, workdir / f"server-{name}.log")
    server.wait_ready()
    time.sleep(1.0)  # let start-up allocations settle before reading the idle RSS
    return server, server.rss()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller workload, fewer configurations")
    parser.add_argument("--smoke", action="store_true",
                        help="a toy model and a few documents: checks the script runs (tests use it); "
                             "its numbers mean nothing")
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
    parser.add_argument("--memory-mb", default="48,96",
                        help="comma-separated --decode-memory-mb values, one memory-capped "
                             "server (m) each ('' skips them)")
    parser.add_argument("--clients", help="comma-separated client counts for (b)")
    parser.add_argument("--budgets", help="comma-separated max_batch_size values tried for (a)")
    parser.add_argument("--docs", type=int, help="documents in the workload")
    parser.add_argument("--compare-threads", metavar="LIST",
                        help="instead of the main table, compare INTERxINTRA settings "
                             "(e.g. 1x2,2x1): raw and 32-client throughput, latency, RSS")
    parser.add_argument("--naive-clients",
                        help="comma-separated client counts for (c) and (c2) (default: 32 only; "
                             "the charts draw lines where there are several)")
    parser.add_argument("--results", type=Path, metavar="JSON",
                        help="also write every measurement here, for bench/charts.py")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")

    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    recipe = SMOKE_RECIPE if args.smoke else prepare.ModelRecipe()
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
    store = prepare.prepare(args.workdir, recipe)
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

    clients = plan.unbatched_clients
    naive_clients = ([int(c) for c in args.naive_clients.split(",")] if args.naive_clients
                     else [clients])
    sessions: list[Session] = []

    def session(label: str, flags: dict[str, object]) -> tuple[Session, measure.ServerProcess]:
        server, idle = _start(store, args.workdir, f"server-{len(sessions)}", flags)
        sessions.append(Session(label, idle, []))
        return sessions[-1], server

    # (b) the service as configured by default
    default, server = session("dynamic (default)", _server_flags(threads, args.budget, "dynamic", args.wait_ms))
    with server:
        served = measure.service_latencies(server, SHORT_SENTENCE, plan.latency_repeats)
        for n in plan.clients:
            subset = docs[: plan.single_client_docs] if n == 1 else docs
            default.measure(server, f"(b) service, {n} client{'s' * (n > 1)}", subset, n)
        default.measure(server, f"(b') service, {clients} clients, one-sentence requests", singles, clients)

    # (m) the service with a decoding-memory cap
    for cap in [int(m) for m in args.memory_mb.split(",") if m.strip()]:
        bounded, server = session(f"dynamic, --decode-memory-mb {cap}",
                                  _server_flags(threads, args.budget, "dynamic", args.wait_ms, cap))
        with server:
            bounded.measure(server, f"(m) service, --decode-memory-mb {cap}, {clients} clients", docs, clients)

    # (c) no cross-request batching: one call per paragraph (Argos Translate) or per request
    naive, server = session("paragraph", _server_flags(threads, args.budget, "paragraph", args.wait_ms))
    with server:
        for n in naive_clients:
            naive.measure(server, f"(c) one call per paragraph (Argos), {n} client{'s' * (n > 1)}",
                          docs[: plan.single_client_docs] if n == 1 else docs, n)
        naive.measure(server, f"(c') one call per request, {clients} clients, one-sentence requests",
                      singles, clients)
    per_request, server = session("request", _server_flags(threads, args.budget, "request", args.wait_ms))
    with server:
        for n in naive_clients:
            per_request.measure(server, f"(c2) one call per request, {n} client{'s' * (n > 1)}",
                                docs[: plan.single_client_docs] if n == 1 else docs, n)
    if plan.argos_threads:
        cores = os.cpu_count() or 1
        argos, server = session(f"paragraph, threads 1x{cores}",
                                _server_flags((1, cores), args.budget, "paragraph", args.wait_ms))
        with server:
            argos.measure(server, f"(c3) one call per paragraph, Argos's threads (1 x {cores}), "
                                  f"{clients} clients", docs, clients)

    _report(best, raw_runs, sessions, direct, served, len(short), load, os.getloadavg()[0], raw_base)
    if args.results:
        _write_results(args.results, "smoke" if args.smoke else "quick" if args.quick else "full",
                       threads, best, raw_runs, sessions, direct, served,
                       raw_base, load)
    return 1 if any(r.errors for s in sessions for r in s.runs) else 0


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
        flags = _server_flags(threads, args.budget, "dynamic", args.wait_ms)
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


def _report(best: measure.Run, raw_runs: list[measure.Run], sessions: list[Session],
            direct: list[float], served: list[float], short_tokens: int, load_start: float,
            load_end: float, raw_base: int) -> None:
    print()
    print("| configuration | requests | source chars/s | target tokens/s | x raw (chars) | x raw (tokens) "
          "| p50 latency s | p95 latency s | RSS growth MB | tokens/CPU-s | other load | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [(run, raw_base) for run in raw_runs] + [(run, s.idle) for s in sessions for run in s.runs]
    for run, base in rows:
        is_raw = base == raw_base and run in raw_runs
        name = ("(a) " if run is best else "    ") + run.name if is_raw else run.name
        p50 = "-" if is_raw else f"{run.percentile(50):.2f}"
        p95 = "-" if is_raw else f"{run.percentile(95):.2f}"
        errors = "-" if is_raw else str(run.errors)
        print(f"| {name} | {run.docs} | {run.chars_per_s:,.0f} | {run.tokens_per_s:,.0f} "
              f"| {run.chars_per_s / best.chars_per_s:.2f} | {run.tokens_per_s / best.tokens_per_s:.2f} "
              f"| {p50} | {p95} | {_growth(run, base)} "
              f"| {run.tokens_per_cpu_s:,.0f} | {run.other_cores:.2f} | {errors} |")
    print()
    d50, s50 = statistics.median(direct), statistics.median(served)
    print(f"single short sentence ({short_tokens} tokens), p50 of {len(served)}: service at 1 client "
          f"{_ms(s50)} ms, direct translate_batch {_ms(d50)} ms (+{_ms(s50 - d50)} ms)")
    print("server RSS (VmRSS of the `dragoman serve` process), idle after model load -> peak under load:")
    for session in sessions:
        print(f"  {session.label}: {session.idle / MB:.0f} MB -> {session.peak / MB:.0f} MB "
              f"({session.peak / session.idle:.2f}x)")
    print("RSS growth: peak VmRSS during the run minus the idle RSS (service: the server process "
          "after model load; raw: the benchmark process before its first raw run)")
    print("tokens/CPU-s: target tokens per CPU-second of the decoding process (raw: the benchmark "
          "process; service: the server process): the service's overhead, whatever else ran")
    print("other load: cores used on average by processes other than the benchmark and the server "
          "during the run (0.00 = quiet machine; anything else inflates the wall-clock numbers)")
    print(f"load average: {load_start:.2f} at start, {load_end:.2f} at end")
    print()

    def find(prefix: str) -> measure.Run | None:
        """The run named ``prefix...``; of several (naive modes at several client counts),
        the one at 32 clients."""
        found = [r for s in sessions for r in s.runs if r.name.startswith(prefix)]
        at_32 = [r for r in found if r.name.endswith(", 32 clients")]
        return (at_32 or found or [None])[0]

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print("targets (measured, not asserted):")
    b32 = find("(b) service, 32 clients")
    if b32 is not None:
        ratio = b32.tokens_per_s / best.tokens_per_s
        print(f"  service at 32 clients >= 0.90 x raw: {ratio:.2f} {verdict(ratio >= 0.9)}")
        for prefix, what in (("(c) ", "one call per paragraph, the Argos way"),
                             ("(c2)", "one call per request"), ("(c3)", "per paragraph, Argos's threads")):
            naive = find(prefix)
            if naive is not None:
                speedup = b32.tokens_per_s / naive.tokens_per_s
                print(f"  >= 3x request-by-request at 32 clients ({what}): {speedup:.2f}x {verdict(speedup >= 3)}")
        singles = find("(b')"), find("(c')")
        if singles[0] is not None and singles[1] is not None:
            print(f"  ... with one-sentence requests: {singles[0].tokens_per_s / singles[1].tokens_per_s:.2f}x")
    gap = (s50 - d50) * 1000
    print(f"  single short sentence p50 within 10 ms of direct: +{gap:.1f} ms {verdict(gap <= 10)}")
    default = sessions[0]
    print(f"  server RSS under load <= 1.5x idle: {default.peak / default.idle:.2f}x "
          f"{verdict(default.peak <= 1.5 * default.idle)} (defaults)")
    for bounded in sessions:
        m = next((r for r in bounded.runs if r.name.startswith("(m)")), None)
        if m is not None:
            print(f"  ... {bounded.label.split(', ')[1]}: {bounded.peak / bounded.idle:.2f}x "
                  f"{verdict(bounded.peak <= 1.5 * bounded.idle)}, at {m.tokens_per_s / best.tokens_per_s:.2f} x raw")


def _run_record(run: measure.Run, clients: int | None, base: int) -> dict[str, object]:
    def number(x: float) -> float | None:
        return None if x != x else round(x, 4)  # NaN -> null

    return {
        "name": run.name, "clients": clients, "requests": run.docs, "chars": run.chars,
        "seconds": round(run.seconds, 4), "chars_per_s": round(run.chars_per_s, 2),
        "tokens_per_s": round(run.tokens_per_s, 2), "tokens_per_cpu_s": number(run.tokens_per_cpu_s),
        "p50_s": number(run.percentile(50)), "p95_s": number(run.percentile(95)),
        "peak_rss_mb": round(run.peak_rss / MB, 1), "rss_growth_mb": round((run.peak_rss - base) / MB, 1),
        "other_cores": round(run.other_cores, 3), "errors": run.errors,
    }


def _write_results(path: Path, plan: str, threads: tuple[int, int], best: measure.Run,
                   raw_runs: list[measure.Run], sessions: list[Session], direct: list[float],
                   served: list[float], raw_base: int, load_start: float) -> None:
    """Every measurement of the run as JSON (bench/charts.py draws it)."""
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cores": os.cpu_count(), "load_start": round(load_start, 2),
                 "load_end": round(os.getloadavg()[0], 2)},
        "plan": plan,
        "threads": list(threads),
        "raw": {"best": best.name,
                "runs": [_run_record(r, None, raw_base) for r in raw_runs]},
        "single_sentence_ms": {"direct_p50": round(statistics.median(direct) * 1000, 2),
                               "service_p50": round(statistics.median(served) * 1000, 2)},
        "sessions": [
            {"label": s.label, "idle_rss_mb": round(s.idle / MB, 1),
             "peak_rss_mb": round(s.peak / MB, 1),
             "runs": [_run_record(r, s.clients.get(r.name), s.idle) for r in s.runs]}
            for s in sessions
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    sys.exit(main())
