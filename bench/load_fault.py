"""Dragoman load-and-fault benchmark: overload, hostile input and kill -9, on loopback only.

    python bench/load_fault.py [--smoke] [--workdir DIR]

Runs ``dragoman serve`` in a subprocess on 127.0.0.1 (the OPUS-MT-sized random model of
``prepare.py``; ``--smoke``: a toy model and a few documents) and, each phase bounded in calls
and seconds:

1. normal load: a few clients send articles one after another (latency p50/p99, peak RSS);
2. overload: a burst of concurrent article calls with an ordinary deadline; reports how many
   the server held (admitted), how many it refused with RESOURCE_EXHAUSTED and how fast,
   how many ran out of time anyway (DEADLINE_EXCEEDED), and the recovery time: from the end
   of the burst until a fresh call is answered again;
3. hostile input: oversized messages, bytes that are not a protobuf, invalid UTF-8, many at
   once; peak RSS against the peak under normal load;
4. kill -9 of the server in the middle of a ``dragoman batch translate --server`` job, then of
   the batch job itself; each rerun resumes; counts documents lost or duplicated.

Figures are measured, not asserted (targets printed beside them). Other load on the machine
skews them: run on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus
import grpc
import measure
import prepare

from dragoman.v1 import translation_pb2 as pb
from dragoman.v1 import translation_pb2_grpc as pb_grpc

MB = 1024 * 1024
TRANSLATE = "/dragoman.v1.TranslationService/Translate"


@dataclass(frozen=True)
class Plan:
    chars: int  # characters per article
    articles: int  # distinct articles (reused with new ids; the cache is off)
    normal_clients: int
    normal_calls: int
    burst: int  # concurrent calls in the overload burst
    probes: int  # single calls sent one after another while the burst holds the server
    deadline: float  # their deadline, seconds
    hostile_calls: int  # concurrent oversized calls
    hostile_mb: int  # size of each
    batch_docs: int  # documents of the kill -9 batch job
    phase_seconds: float  # hard bound on any phase


FULL = Plan(chars=1200, articles=48, normal_clients=8, normal_calls=48, burst=200, probes=30,
            deadline=10.0, hostile_calls=20, hostile_mb=60, batch_docs=150, phase_seconds=300)
SMOKE = Plan(chars=500, articles=6, normal_clients=2, normal_calls=8, burst=24, probes=3,
             deadline=5.0,
             hostile_calls=4, hostile_mb=2, batch_docs=24, phase_seconds=120)
SMOKE_RECIPE = prepare.ModelRecipe(layers=1, d_model=128, heads=2, ffn=256, vocab_size=None,
                                   sentencepiece_pieces=2000)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def ms(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _request(text: str, doc_id: str) -> pb.TranslateRequest:
    return pb.TranslateRequest(id=doc_id, text=text, source_language="en", target_language="de")


async def _one(stub: pb_grpc.TranslationServiceStub, text: str, doc_id: str,
               timeout: float) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        await stub.Translate(_request(text, doc_id), timeout=timeout)
        code = "OK"
    except grpc.aio.AioRpcError as exc:
        code = exc.code().name
    return code, time.perf_counter() - started


# -- phases ----------------------------------------------------------------------------------


async def normal_load(address: str, texts: list[str], plan: Plan) -> list[float]:
    """``normal_clients`` callers, each sending its next article when the last returns."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(plan.normal_calls):
        queue.put_nowait(n)
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    stop = time.monotonic() + plan.phase_seconds
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.TranslationServiceStub(channel)

        async def client() -> None:
            while not queue.empty() and time.monotonic() < stop:
                n = queue.get_nowait()
                code, took = await _one(stub, texts[n % len(texts)], f"n{n}",
                                        max(1.0, stop - time.monotonic()))
                if code == "OK":
                    latencies.append(took)
                else:
                    failures[code] += 1

        await asyncio.gather(*(client() for _ in range(plan.normal_clients)))
    if failures:
        print(f"  normal load failures: {dict(failures)}")
    return latencies


@dataclass
class Burst:
    outcomes: Counter[str]
    probes: Counter[str]  # sequential calls while the burst held the server
    probe_refused: list[float]  # their RESOURCE_EXHAUSTED latencies
    refused: list[float]  # RESOURCE_EXHAUSTED latencies in the burst (client queueing included)
    served: list[float]  # OK latencies
    held_peak: int  # calls the server held at once (admitted, not yet answered)
    seconds: float
    recovery: float


async def overload(address: str, texts: list[str], plan: Plan) -> Burst:
    """All ``burst`` calls at once, then probes until a fresh call is answered."""
    channels = [grpc.aio.insecure_channel(address) for _ in range(8)]
    outcomes: Counter[str] = Counter()
    refused: list[float] = []
    served: list[float] = []
    try:
        for channel in channels:
            await channel.channel_ready()
        stubs = [pb_grpc.TranslationServiceStub(c) for c in channels]

        async def call(n: int) -> None:
            code, took = await _one(stubs[n % len(stubs)], texts[n % len(texts)], f"b{n}",
                                    plan.deadline)
            outcomes[code] += 1
            if code == "RESOURCE_EXHAUSTED":
                refused.append(took)
            elif code == "OK":
                served.append(took)

        started = time.perf_counter()
        calls = [asyncio.create_task(call(n)) for n in range(plan.burst)]
        await asyncio.sleep(1.0)  # refusals are answered by now; the rest are held
        probes: Counter[str] = Counter()
        probe_refused: list[float] = []
        for n in range(plan.probes):  # one at a time, as a new caller would arrive
            if all(t.done() for t in calls):
                break
            code, took = await _one(stubs[n % len(stubs)], texts[n % len(texts)], f"p{n}",
                                    plan.deadline)
            probes[code] += 1
            if code == "RESOURCE_EXHAUSTED":
                probe_refused.append(took)
            await asyncio.sleep(0.02)
        await asyncio.wait_for(asyncio.gather(*calls), plan.deadline + plan.phase_seconds)
        held_peak = plan.burst - outcomes["RESOURCE_EXHAUSTED"]
        burst_end = time.perf_counter()
        # Recovery: a fresh short call with a 5 s deadline, tried until it is served.
        stub = stubs[0]
        recovery = float("nan")
        give_up = burst_end + plan.phase_seconds
        while time.perf_counter() < give_up:
            code, _ = await _one(stub, texts[0][:300], "probe", 5.0)
            if code == "OK":
                recovery = time.perf_counter() - burst_end
                break
            await asyncio.sleep(0.05)
        return Burst(outcomes, probes, probe_refused, refused, served, held_peak,
                     burst_end - started, recovery)
    finally:
        for channel in channels:
            await channel.close()


def hostile(address: str, plan: Plan) -> Counter[str]:
    """Oversized messages (many at once), non-protobuf bytes and invalid UTF-8, each sent as
    raw bytes so the client library's own checks are bypassed."""
    outcomes: Counter[str] = Counter()
    big = b"\n\x00" + b"x" * (plan.hostile_mb * MB)  # field 1, then far more than declared
    oversized = pb.TranslateRequest(text="x" * (plan.hostile_mb * MB),
                                    target_language="de").SerializeToString()
    bad_utf8 = b"\x12\x04\xff\xfe\xfd\xfc\x1a\x02de"  # text = 4 bytes of invalid UTF-8
    with grpc.insecure_channel(address, options=[
            ("grpc.max_send_message_length", -1)]) as channel:
        raw = channel.unary_unary(TRANSLATE)
        futures = [raw.future(oversized, timeout=60)
                   for _ in range(plan.hostile_calls)]
        futures += [raw.future(big, timeout=60) for _ in range(2)]
        futures += [raw.future(b"\xff" * 64, timeout=10) for _ in range(50)]
        futures += [raw.future(bad_utf8, timeout=10) for _ in range(50)]
        for fut in futures:
            try:
                fut.result()
                outcomes["OK"] += 1
            except grpc.RpcError as exc:
                outcomes[exc.code().name] += 1
    return outcomes


# -- kill -9 ---------------------------------------------------------------------------------


def _batch(address: str, source: Path, output: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(measure.REPO / "client"), str(measure.REPO / "server")]))
    return subprocess.Popen(
        [sys.executable, "-m", "dragoman.client.cli", "--server", address, "--timeout", "120",
         "batch", "translate", "--from", "en", "--to", "de", "--progress", "none",
         "--commit-interval", "0.2", "--in-flight", "16", str(source), "-o", str(output)],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def _wait_for_lines(path: Path, count: int, proc: subprocess.Popen[bytes], limit: float) -> None:
    give_up = time.monotonic() + limit
    while _lines(path) < count and proc.poll() is None and time.monotonic() < give_up:
        time.sleep(0.05)


def _exactly_once(output: Path, ids: list[str]) -> tuple[int, int, int]:
    """(lost, duplicated, failed) over the output and its errors file."""
    seen: Counter[str] = Counter()
    for line in output.read_text().splitlines():
        seen[str(json.loads(line)["id"])] += 1
    errors = Path(str(output) + ".errors.jsonl")
    failed = 0
    if errors.exists():
        for line in errors.read_text().splitlines():
            seen[str(json.loads(line)["id"])] += 1
            failed += 1
    lost = sum(1 for i in ids if seen[i] == 0)
    duplicated = sum(n - 1 for n in seen.values() if n > 1)
    return lost, duplicated, failed


def kill_runs(store: Path, flags: dict[str, object], workdir: Path, texts: list[str],
              plan: Plan) -> dict[str, tuple[int, int, int, int, int]]:
    """Kill -9 the server, then the batch job, mid-run; rerun until done. Returns per case
    (lost, duplicated, failed records, reruns, documents written when killed)."""
    source = workdir / "kill-input.jsonl"
    ids = [f"k{n}" for n in range(plan.batch_docs)]
    short = [t.split("\n\n")[0][:600] for t in texts]  # the job, not the text, is tested
    source.write_text("".join(json.dumps({"id": i, "text": short[n % len(short)]}) + "\n"
                              for n, i in enumerate(ids)))
    results: dict[str, tuple[int, int, int, int, int]] = {}
    for case in ("server", "batch job"):
        output = workdir / f"kill-{case.replace(' ', '-')}.jsonl"
        for leftover in workdir.glob(output.name + "*"):
            leftover.unlink()
        log = workdir / f"kill-{case.replace(' ', '-')}.log"
        server = measure.ServerProcess(store, flags, workdir / f"server-kill-{case[0]}.log")
        server.wait_ready()
        job = _batch(server.address, source, output, log)
        _wait_for_lines(output, plan.batch_docs // 3, job, plan.phase_seconds)
        at_kill = _lines(output)
        if case == "server":
            os.kill(server.pid, signal.SIGKILL)
            server.stop()
            job.wait(plan.phase_seconds)
            server = measure.ServerProcess(store, flags, workdir / "server-kill-s2.log")
            server.wait_ready()
        else:
            os.kill(job.pid, signal.SIGKILL)
            job.wait(30)
        reruns = 0
        while reruns < 5:
            reruns += 1
            job = _batch(server.address, source, output, log)
            if job.wait(plan.phase_seconds) == 0:
                break
        server.stop()
        results[case] = (*_exactly_once(output, ids), reruns, at_kill)
    return results


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="a toy model and a few calls: checks the script runs (tests use "
                             "it); its numbers mean nothing")
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "dragoman-bench",
                        help="where the model store is built and logs go")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    workdir = args.workdir / "smoke" if args.smoke else args.workdir
    store = prepare.prepare(workdir, SMOKE_RECIPE if args.smoke else prepare.ModelRecipe())
    texts = [a.text for a in corpus.articles(corpus.prose_paragraphs(), plan.articles, plan.chars)]
    flags: dict[str, object] = {"cache_entries": 0}
    print(f"# host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"{'smoke run (toy model)' if args.smoke else 'OPUS-MT-sized random model'}; "
          f"articles of ~{plan.chars} characters; server flags {flags}")

    with measure.ServerProcess(store, flags, workdir / "server-load.log") as server:
        server.wait_ready()
        time.sleep(1.0)  # start-up allocations settle
        idle = server.rss()
        with measure.PeakSampler(server.pid) as normal_peak:
            latencies = asyncio.run(normal_load(server.address, texts, plan))
        with measure.PeakSampler(server.pid) as burst_peak:
            burst = asyncio.run(overload(server.address, texts, plan))
        with measure.PeakSampler(server.pid) as hostile_peak:
            hostile_outcomes = hostile(server.address, plan)
        alive = server.proc.poll() is None
    kills = kill_runs(store, flags, workdir, texts, plan)

    normal = max(normal_peak.peak, 1)
    rows = [
        ("normal load", f"{plan.normal_clients} clients, {len(latencies)} calls: p50 "
         f"{ms(pct(latencies, 50))}, p99 {ms(pct(latencies, 99))}"),
        ("overload burst", f"{plan.burst} concurrent calls, deadline {plan.deadline:g} s: "
         + ", ".join(f"{k} {v}" for k, v in sorted(burst.outcomes.items()))),
        ("concurrent calls held", f"{burst.held_peak} of the burst admitted"),
        ("RESOURCE_EXHAUSTED latency", f"new calls while overloaded: p50 "
         f"{ms(pct(burst.probe_refused, 50))}, p99 {ms(pct(burst.probe_refused, 99))} ("
         + ", ".join(f"{k} {v}" for k, v in sorted(burst.probes.items())) + "); within the "
         f"burst itself (this client's own queueing included): p50 {ms(pct(burst.refused, 50))}, "
         f"p99 {ms(pct(burst.refused, 99))}"),
        ("served during overload", f"p50 {ms(pct(burst.served, 50))}, p99 "
         f"{ms(pct(burst.served, 99))}"),
        ("recovery time", f"{ms(burst.recovery)} from the end of the burst to a served call"),
        ("RSS idle / peak normal", f"{idle / MB:.0f} MB / {normal / MB:.0f} MB"),
        ("peak RSS overload", f"{burst_peak.peak / MB:.0f} MB ({burst_peak.peak / normal:.2f}x normal)"),
        ("peak RSS hostile input", f"{hostile_peak.peak / MB:.0f} MB ({hostile_peak.peak / normal:.2f}x "
         f"normal); " + ", ".join(f"{k} {v}" for k, v in sorted(hostile_outcomes.items()))
         + ("" if alive else "; THE SERVER DIED")),
    ]
    for case, (lost, dup, failed, reruns, at_kill) in kills.items():
        rows.append((f"kill -9 of the {case}", f"{plan.batch_docs} documents, killed at "
                     f"{at_kill} written: lost {lost}, duplicated {dup}, error records "
                     f"{failed}, reruns {reruns}"))
    width = max(len(r[0]) for r in rows)
    print()
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")
    print()
    print("targets (measured, not asserted): overload answered with RESOURCE_EXHAUSTED in under "
          "50 ms; peak RSS under hostile input within 1.5x of normal load; nothing lost or "
          "duplicated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
