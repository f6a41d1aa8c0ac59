"""One batch job from its options: pick the reader, writer and engine, and run it.

The CLI turns flags into a ``BatchSpec`` and calls ``run_batch``; tests and scripts can do
the same without a command line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dragoman.server.batchjob.job import Engine, JobOptions
from dragoman.server.batchjob.readers import (
    ReaderOptions,
    detect_input_format,
    open_reader,
)
from dragoman.server.batchjob.runner import (
    BatchJob,
    ProgressReporter,
    RunOptions,
    RunReport,
    job_fingerprint,
)
from dragoman.server.batchjob.state import StateFile, state_path
from dragoman.server.batchjob.writers import (
    ErrorLog,
    errors_path,
    open_sink,
    output_format,
)
from dragoman.server.errors import InvalidInput, ModelNotFound

logger = logging.getLogger(__name__)

ENGINES = ("server", "local")


@dataclass(frozen=True)
class BatchSpec:
    input: Path
    output: Path
    job: JobOptions
    reader: ReaderOptions = field(default_factory=ReaderOptions)
    input_format: str = "auto"
    output_format: str = "auto"
    run: RunOptions = field(default_factory=RunOptions)
    engine: str = "server"
    # server engine: address (None: $DRAGOMAN_SERVER, else localhost:50051) and call deadline
    server: str | None = None
    timeout: float | None = None
    # and the client's API key and TLS settings (Client keyword arguments; unset: environment)
    client_options: tuple[tuple[str, object], ...] = ()
    # local engine: model store folder (None: $DRAGOMAN_MODELS, else the per-user folder)
    models: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidInput(f"engine must be one of {', '.join(ENGINES)}")


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def build_job(spec: BatchSpec, engine: Engine | None,
              progress: ProgressReporter | None = None) -> BatchJob:
    fmt = detect_input_format(spec.input) if spec.input_format == "auto" else spec.input_format
    reader = open_reader(spec.input, fmt, spec.reader)
    out_fmt = (output_format(spec.output, reader.kind) if spec.output_format == "auto"
               else spec.output_format)
    if _same_file(spec.input, spec.output):
        raise InvalidInput("the output must not be the input")
    sink = open_sink(spec.output, out_fmt, reader.kind, spec.reader.fields, spec.job,
                     getattr(reader, "schema", None))
    fingerprint = job_fingerprint(reader, spec.job, spec.reader.fields, out_fmt,
                                  spec.reader.max_document_bytes)
    return BatchJob(reader, sink, ErrorLog(errors_path(spec.output)),
                    StateFile(state_path(spec.output)), engine, spec.job, fingerprint,
                    spec.run, progress)


@contextmanager
def open_engine(spec: BatchSpec) -> Iterator[Engine]:
    """The engine the spec asks for, closed (models freed, channel closed) on exit; either
    fails at once, before any input is read, when nothing installed can serve the job."""
    if spec.engine == "local":
        from dragoman.server.batchjob.local import open_local_engine
        from dragoman.server.config import load_config

        config = load_config({"models": spec.models})
        config.check_models_dir()
        local = open_local_engine(config, spec.job, spec.run.window)
        try:
            check_servable(local.service.languages(), spec.job)
            yield local
        finally:
            local.close()
        return
    from dragoman.client import Client
    from dragoman.server.batchjob.remote import RemoteEngine

    with Client(spec.server, timeout=spec.timeout, **dict(spec.client_options)) as client:  # type: ignore[arg-type]
        check_servable(client.languages(), spec.job)
        remote = RemoteEngine(client, spec.job, spec.run.window)
        try:
            yield remote
        finally:
            remote.close()


class _Pair(Protocol):
    @property
    def source_language(self) -> str: ...
    @property
    def target_language(self) -> str: ...


class _Model(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def task(self) -> str: ...


class Listing(Protocol):
    """What is installed: the server's ``ListLanguages`` answer (``dragoman.client``'s
    ``Languages``) or the in-process service's (``LanguagesInfo``), which have this shape."""

    @property
    def pairs(self) -> Sequence[_Pair]: ...
    @property
    def summarisation_languages(self) -> Sequence[str]: ...
    @property
    def models(self) -> Sequence[_Model]: ...


def check_servable(installed: Listing, job: JobOptions) -> None:
    """Fail before reading any input when nothing installed can serve the job: otherwise
    every document of the archive becomes a NOT_FOUND record. Pairs include pivot routes; a
    job without a source language needs some pair into its target (documents detected as
    the target's language alone would pass)."""
    tasks = {m.name: m.task for m in installed.models}
    if job.model and job.model not in tasks:
        raise ModelNotFound(f"no model named {job.model!r} is installed; installed: "
                            f"{', '.join(sorted(tasks)) or 'none'}")
    if job.model and tasks[job.model] != job.task:
        kind = "summariser" if job.task == "summarise" else "translation model"
        raise InvalidInput(f"model {job.model!r} is not a {kind} (its task: "
                           f"{tasks[job.model]})")
    pairs = {(p.source_language, p.target_language) for p in installed.pairs}
    have = ", ".join(sorted(f"{s}->{t}" for s, t in pairs)) or "none"
    source, target = job.source_language, job.target_language
    if job.task == "summarise":
        readers = set(installed.summarisation_languages)
        if job.method == "abstractive" and not job.model and (
                not readers or (source and source not in readers)):
            read = f" for {source!r}" if source else ""
            raise ModelNotFound(f"no abstractive summariser{read} is installed (summarisers "
                                f"read: {', '.join(sorted(readers)) or 'none'}; use --method "
                                "auto or extractive)")
        if not target:
            return
    elif job.model:
        return  # the named model serves the pair, or says why not on the first document
    if source and source != target and (source, target) not in pairs:
        raise ModelNotFound(f"no model translates {source}->{target}; installed pairs: {have}")
    if not source and not any(t == target for _, t in pairs):
        raise ModelNotFound(f"no model translates into {target}; installed pairs: {have}")


def run_batch(spec: BatchSpec, progress: ProgressReporter | None = None) -> RunReport:
    """Run (or resume) the job; see ``RunReport.exit_status`` for the outcome."""
    job = build_job(spec, None, progress)
    if not job.needs_engine():
        logger.info("%s is complete; nothing to do", spec.output)
        return job.run()
    with open_engine(spec) as engine:
        job.engine = engine
        return job.run()
