"""Throughput of `dragoman batch` (--local and --server) as a ratio of raw CTranslate2
``translate_batch`` over the same sentences with the same model and decoding options, plus
with --ray, the Ray engine on a local instance (2 CPUs) with 1 and 2 actors as ratios of it,
and the time a rerun of the finished Ray job takes.

    python bench/batch_throughput.py [--articles 1000] [--repeat 2] [--ray]

The model is the tiny swapcase copy model of tests/support/copymodel.py; articles are made of
distinct sentences so no sentence cache can flatter the numbers (and the cache is off).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import ctranslate2
import measure
import reporoot
import sentencepiece as spm

reporoot.put_on_path()  # tests.support, tests.conftest

from dragoman.server.batchjob.command import BatchSpec, build_job
from dragoman.server.batchjob.job import JobOptions
from dragoman.server.batchjob.local import LocalEngine
from dragoman.server.batchjob.runner import RunOptions
from dragoman.server.build import build_service
from dragoman.server.config import load_config
from dragoman.server.manifest import read_manifest
from dragoman.server.seq2seq import DecodingOptions, compute_type_for
from dragoman.server.text.segment import split_document
from tests.conftest import install_copy_model
from tests.support.sentences import COPY_CORPUS, NEWS_LINES
from tests.support.spmodels import train_sentencepiece

WORDS = sorted({w.strip('.,;:?!"') for line in NEWS_LINES[:60] if line.isascii()
                for w in line.split()} - {""})


def articles(count: int, seed: int = 11) -> list[dict[str, object]]:
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."

    return [{"id": i, "title": sentence(),
             "text": "\n\n".join(" ".join(sentence() for _ in range(3)) for _ in range(3))}
            for i in range(count)]


def raw_ctranslate2(model_dir: Path, docs: list[dict[str, object]], config) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """Seconds of raw translate_batch over every sentence the service translates.

    Returns (length-sorted token-budget batches, one call over everything, sentences). The
    first is the reference: the batches an ideal batcher would make, each decoded as
    ``measure.translate_raw`` does (the service's options and length cap, the batch's largest).
    One call over everything pays for the longest sentence's cap in every batch.
    """
    sp = spm.SentencePieceProcessor(model_file=str(model_dir / "sentencepiece.model"))
    sentences = [s for d in docs for field in ("text", "title")
                 for s in split_document(str(d[field]), "en").sentences]
    tokens = sorted((sp.encode(s, out_type=str) for s in sentences), key=len)
    # The compute type the service resolves for this model (its installed precision or the flag).
    compute_type = compute_type_for(config.compute_type, read_manifest(model_dir))
    translator = ctranslate2.Translator(str(model_dir), compute_type=compute_type,
                                        inter_threads=config.inter_threads,
                                        intra_threads=config.intra_threads)
    batches: list[list[list[str]]] = [[]]
    for tok in tokens:
        if (len(batches[-1]) + 1) * len(tok) > config.max_batch_tokens:
            batches.append([])
        batches[-1].append(tok)
    options = DecodingOptions(beam_size=2)
    started = time.perf_counter()
    for batch in batches:
        measure.translate_raw(translator, batch, options, config.max_batch_tokens)
    batched = time.perf_counter() - started
    started = time.perf_counter()
    measure.translate_raw(translator, tokens, options, config.max_batch_tokens)
    return batched, time.perf_counter() - started, len(sentences)


def run_local(source: Path, out: Path, config) -> float:  # type: ignore[no-untyped-def]
    service = build_service(config)
    service.preload(["copy-en-de"])
    job = JobOptions("translate", "de", "en")
    engine = LocalEngine(service, job, 32)
    spec = BatchSpec(source, out, job, run=RunOptions(window=32, restart=True))
    started = time.perf_counter()
    summary = build_job(spec, engine).run()
    elapsed = time.perf_counter() - started
    engine.close()
    assert summary.done == summary.total_done and summary.failed == 0, summary
    return elapsed


def run_server(source: Path, out: Path, config) -> float:  # type: ignore[no-untyped-def]
    from dragoman.client import Client
    from dragoman.server.batchjob.remote import RemoteEngine
    from dragoman.server.rpc.app import ServerThread, build_service

    job = JobOptions("translate", "de", "en")
    with ServerThread(build_service(config), config) as server, \
            Client(server.address) as client:
        engine = RemoteEngine(client, job, 64)
        spec = BatchSpec(source, out, job, engine="server",
                         run=RunOptions(window=64, restart=True))
        started = time.perf_counter()
        summary = build_job(spec, engine).run()
        elapsed = time.perf_counter() - started
    assert summary.failed == 0, summary
    return elapsed


def run_ray(source: Path, out: Path, store: Path, actors: int) -> tuple[float, float]:
    """(seconds of the job, seconds of a rerun of the finished job) on a local Ray instance
    that is already up; the job's time includes its actors loading the model."""
    from dragoman.server.batchjob.ray_engine import RayOptions, RaySpec, run_ray_job

    spec = RaySpec((str(source),), str(out), JobOptions("translate", "de", "en"),
                   models=str(store), restart=True,
                   options=RayOptions(actors=actors, actor_cpus=1 / actors,
                                      block_bytes=64 * 1024))
    started = time.perf_counter()
    summary = run_ray_job(spec)
    job = time.perf_counter() - started
    assert summary.failed == 0 and summary.done == summary.total_done, summary
    started = time.perf_counter()
    again = run_ray_job(replace(spec, restart=False))
    rerun = time.perf_counter() - started
    assert again.done == 0 and again.skipped == summary.done, again
    return job, rerun


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also time the Ray engine")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        sp = train_sentencepiece(COPY_CORPUS, work / "sp" / "copy", vocab_size=400)
        store = work / "models"
        model_dir = install_copy_model(store, sp, "copy-en-de", "en", "de", swap=True)
        docs = articles(args.articles)
        source = work / "articles.jsonl"
        source.write_text("".join(json.dumps(d) + "\n" for d in docs))
        config = load_config({"models": str(store), "address": "127.0.0.1:0", "cache_entries": 0},
                             env={})
        print(f"{args.articles} articles, beam 2, int8, "
              f"{config.inter_threads}x{config.intra_threads} threads", flush=True)
        for _ in range(args.repeat):
            raw, single, sentences = raw_ctranslate2(model_dir, docs, config)
            local = run_local(source, work / "local.jsonl", config)
            server = run_server(source, work / "server.jsonl", config)
            print(f"raw CTranslate2 translate_batch: {raw:6.2f}s  {sentences / raw:7.1f} "
                  f"sentences/s ({sentences} sentences, sorted token batches)", flush=True)
            print(f"raw, one call over everything  : {single:6.2f}s  {sentences / single:7.1f} "
                  "sentences/s", flush=True)
            for name, seconds in (("batch --local", local), ("batch --server", server)):
                print(f"{name:31}: {seconds:6.2f}s  {sentences / seconds:7.1f} sentences/s  "
                      f"ratio {raw / seconds:.2f}", flush=True)
        if args.ray:
            import ray

            # Raw CTranslate2 again, for the ratio: the same sentences, model and options.
            raw, _, sentences = raw_ctranslate2(model_dir, docs, config)
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            try:
                for actors in (1, 2):
                    job, rerun = run_ray(source, work / f"ray{actors}", store, actors)
                    label = f"batch --engine ray, {actors} actor{'s' if actors > 1 else ''}"
                    print(f"{label:31}: {job:6.2f}s  {sentences / job:7.1f} sentences/s  "
                          f"ratio {raw / job:.2f} (model loads included)", flush=True)
                    print(f"{'  rerun of the finished job':31}: {rerun:6.2f}s (reads the "
                          "success marker only)", flush=True)
            finally:
                ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
