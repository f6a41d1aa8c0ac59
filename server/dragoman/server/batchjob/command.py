"""One batch job from its options: pick the reader, writer and engine, and run it.

The CLI turns flags into a ``BatchSpec`` and calls ``run_batch``; tests and scripts can do
the same without a command line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from dragoman.client.results import Languages

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
    """The engine the spec asks for, closed (models freed, channel closed) on exit."""
    if spec.engine == "local":
        from dragoman.server.batchjob.local import open_local_engine
        from dragoman.server.config import load_config

        config = load_config({"models": spec.models})
        engine: Engine = open_local_engine(config, spec.job, spec.run.window)
        try:
            yield engine
        finally:
            engine.close()
        return
    from dragoman.client import Client
    from dragoman.server.batchjob.remote import RemoteEngine

    with Client(spec.server, timeout=spec.timeout, **dict(spec.client_options)) as client:  # type: ignore[arg-type]
        check_remote_route(client.languages(), spec.job)
        remote = RemoteEngine(client, spec.job, spec.run.window)
        try:
            yield remote
        finally:
            remote.close()


def check_remote_route(languages: Languages, job: JobOptions) -> None:
    """Fail before reading any input when the server has no model for the job, as the local
    engine does: otherwise every document of the archive becomes a NOT_FOUND record."""
    names = {m.name for m in languages.models}
    if job.model and job.model not in names:
        raise ModelNotFound(f"no model named {job.model!r} is installed on the server; "
                            f"installed: {', '.join(sorted(names)) or 'none'}")
    source, target = job.source_language, job.target_language
    if job.task == "translate" and not job.model and source and source != target:
        pairs = {(p.source_language, p.target_language) for p in languages.pairs}
        if (source, target) not in pairs:
            have = ", ".join(sorted(f"{s}->{t}" for s, t in pairs)) or "none"
            raise ModelNotFound(f"no model on the server translates {source}->{target}; its "
                                f"pairs: {have}")
    if (job.task == "summarise" and job.method == "abstractive" and not job.model
            and not languages.summarisation_languages):
        raise ModelNotFound("no abstractive summariser is installed on the server (use "
                            "--method auto or extractive)")


def run_batch(spec: BatchSpec, progress: ProgressReporter | None = None) -> RunReport:
    """Run (or resume) the job; see ``RunReport.exit_status`` for the outcome."""
    job = build_job(spec, None, progress)
    if not job.needs_engine():
        logger.info("%s is complete; nothing to do", spec.output)
        return job.run()
    with open_engine(spec) as engine:
        job.engine = engine
        return job.run()
