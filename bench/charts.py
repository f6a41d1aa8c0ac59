"""PNG charts of a throughput run: where people would rather look than read.

    python bench/throughput.py --quick --naive-clients 1,8,32 --results bench/results/throughput.json
    python bench/charts.py bench/results/throughput.json -o bench/charts

Draws, from the results JSON that ``throughput.py --results`` writes:

* ``throughput.png``: target tokens/s against concurrent clients for the service (dynamic
  batching), one CTranslate2 call per paragraph (the Argos way) and per request, with raw
  CTranslate2 ``translate_batch`` on the same sentences as the reference line;
* ``latency.png``: p50 and p95 request latency against concurrent clients, same modes;
* ``memory.png``: the server's peak RSS against concurrent clients (idle dotted), and
  throughput against peak RSS for the ``--decode-memory-mb`` caps.

Needs matplotlib (``pip install ./client '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# (run-name prefix, legend, colour) of the modes drawn against clients
MODES = (
    ("(b) ", "service (dynamic batching)", "tab:blue"),
    ("(c) ", "one call per paragraph (Argos way)", "tab:orange"),
    ("(c2) ", "one call per request", "tab:green"),
    ("(c3) ", "per paragraph, Argos's threads", "tab:red"),
)


def _series(results: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    runs = [r for s in results["sessions"] for r in s["runs"]
            if r["name"].startswith(prefix) and r.get("clients")]
    return sorted(runs, key=lambda r: r["clients"])


def _raw_best(results: dict[str, Any]) -> dict[str, Any]:
    best = results["raw"]["best"]
    return next(r for r in results["raw"]["runs"] if r["name"] == best)


def _subtitle(results: dict[str, Any]) -> str:
    host = results.get("host", {})
    threads = results.get("threads") or ["?", "?"]
    return (f"{results.get('plan', '?')} run {results.get('when', '?')}, {host.get('cores', '?')} cores, "
            f"threads {threads[0]}x{threads[1]}, load average {host.get('load_start', '?')} at start")


def _clients_axis(ax: Any, clients: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(clients)
    ax.set_xticklabels([str(c) for c in clients])
    ax.set_xlabel("concurrent clients")
    ax.grid(True, which="major", alpha=0.3)


def throughput_chart(results: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    raw = _raw_best(results)
    clients: set[int] = set()
    for prefix, label, colour in MODES:
        runs = _series(results, prefix)
        if not runs:
            continue
        xs = [r["clients"] for r in runs]
        clients.update(xs)
        ax.plot(xs, [r["tokens_per_s"] for r in runs], marker="o", label=label, color=colour)
        if prefix == "(b) ":
            for r in runs:
                ax.annotate(f"{r['tokens_per_s'] / raw['tokens_per_s']:.2f}x raw",
                            (r["clients"], r["tokens_per_s"]), textcoords="offset points",
                            xytext=(0, 7), ha="center", fontsize=8, color=colour)
    ax.axhline(raw["tokens_per_s"], color="black", linestyle="--",
               label=f"raw CTranslate2 translate_batch ({raw['tokens_per_s']:,.0f} tokens/s)")
    _clients_axis(ax, sorted(clients))
    ax.set_ylim(0, 1.15 * ax.get_ylim()[1])
    ax.set_ylabel("target tokens / s")
    ax.set_title("Throughput against concurrent clients\n" + _subtitle(results), fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def latency_chart(results: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    clients: set[int] = set()
    for prefix, label, colour in MODES:
        runs = [r for r in _series(results, prefix) if r.get("p50_s") is not None]
        if not runs:
            continue
        xs = [r["clients"] for r in runs]
        clients.update(xs)
        ax.plot(xs, [r["p50_s"] for r in runs], marker="o", color=colour, label=f"{label}, p50")
        ax.plot(xs, [r["p95_s"] for r in runs], marker="^", color=colour, linestyle="--",
                label=f"{label}, p95")
    single = results.get("single_sentence_ms")
    if single:
        ax.text(0.01, 0.98, f"one short sentence at 1 client: service {single['service_p50']:.1f} ms, "
                f"direct translate_batch {single['direct_p50']:.1f} ms (p50)",
                transform=ax.transAxes, va="top", fontsize=8)
    _clients_axis(ax, sorted(clients))
    ax.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter

    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_ylabel("request latency, s (log scale)")
    ax.set_title("Latency against concurrent clients (article-sized requests)\n"
                 + _subtitle(results), fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def memory_chart(results: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    clients: set[int] = set()
    sessions = {s["label"]: s for s in results["sessions"]}
    for prefix, label, colour in MODES:
        runs = _series(results, prefix)
        if not runs:
            continue
        xs = [r["clients"] for r in runs]
        clients.update(xs)
        left.plot(xs, [r["peak_rss_mb"] for r in runs], marker="o", color=colour, label=label)
    default = sessions.get("dynamic (default)")
    if default is not None:
        left.axhline(default["idle_rss_mb"], color="grey", linestyle=":",
                     label=f"idle after model load ({default['idle_rss_mb']:.0f} MB)")
    _clients_axis(left, sorted(clients))
    left.set_ylim(bottom=0)
    left.set_ylabel("server peak RSS, MB")
    left.set_title("Memory against load", fontsize=10)
    left.legend(fontsize=8, loc="lower right")

    raw = _raw_best(results)
    points = []
    for s in results["sessions"]:
        match = re.search(r"--decode-memory-mb (\d+)", s["label"])
        runs = [r for r in s["runs"] if r["name"].startswith("(m) ")]
        if match and runs:
            points.append((f"cap {match.group(1)} MB", runs[0]))
    at_32 = [r for r in _series(results, "(b) ") if r["clients"] == 32] or _series(results, "(b) ")[-1:]
    if at_32:
        points.append(("no cap (default)", at_32[0]))
    for label, run in points:
        right.scatter(run["peak_rss_mb"], run["tokens_per_s"] / raw["tokens_per_s"], s=40)
        right.annotate(label, (run["peak_rss_mb"], run["tokens_per_s"] / raw["tokens_per_s"]),
                       textcoords="offset points", xytext=(5, 5), fontsize=8)
    right.set_xlabel("server peak RSS, MB")
    right.set_ylabel("throughput, x raw CTranslate2")
    if points:
        right.set_xlim(0, 1.2 * max(run["peak_rss_mb"] for _, run in points))
        right.set_ylim(0, 1.2 * max(run["tokens_per_s"] / raw["tokens_per_s"] for _, run in points))
    right.grid(True, alpha=0.3)
    right.set_title("--decode-memory-mb: memory against throughput", fontsize=10)
    fig.suptitle(_subtitle(results), fontsize=9)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def render(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the three charts into ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    return [throughput_chart(results, out_dir / "throughput.png"),
            latency_chart(results, out_dir / "latency.png"),
            memory_chart(results, out_dir / "memory.png")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="JSON from throughput.py --results")
    parser.add_argument("-o", "--out", type=Path, default=HERE / "charts", help="output folder")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"charts: cannot read {args.results}: {exc}", file=sys.stderr)
        return 2
    for path in render(results, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
