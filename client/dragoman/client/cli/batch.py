"""`dragoman batch translate|summarise`: whole archives, resumable, on one machine or on Ray.

The job itself lives in the server package (``dragoman.server.batchjob``) and is imported only
when the command runs, so the client CLI starts fast and works where only the client is
installed (the command then says what to install).

Exit status: 0 when every document is in the output, 1 when any document ended in
OUTPUT.errors.jsonl (or the job stopped: rerun the same command to resume), 2 for usage
errors, 130 when interrupted (progress is kept).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from dragoman.client.api import ADDRESS_ENV, DEFAULT_ADDRESS
from dragoman.client.cli.common import (
    CliError,
    UsageError,
    client_security,
    describe_error,
    non_negative_int,
    positive_float,
    positive_int,
    server_address,
)
from dragoman.client.errors import DragomanError as ClientError
from dragoman.client.results import TEXT_FORMATS

MODELS_HELP = "model store for --local and --engine ray (default: $DRAGOMAN_MODELS, else the per-user data folder)"
INPUT_FORMATS = ("auto", "jsonl", "folder", "tar", "zip", "warc", "parquet")
OUTPUT_FORMATS = ("auto", "jsonl", "folder", "tar", "zip", "parquet")

DESCRIPTION = """\
Translate or summarise every document of INPUT into OUTPUT.

INPUT is a JSONL file (.jsonl, .jsonl.gz; one article object per line), a Parquet file
(one article per row), a folder of .txt/.md/.html files, a .tar/.tar.gz/.zip of such files,
or a WARC file (.warc, .warc.gz) of crawled pages. OUTPUT mirrors it: JSONL input gives
JSONL and Parquet input gives Parquet (every column kept) with result fields added to
each record (translate: "<text-field>_<LANG>" and "<title-field>_<LANG>", e.g. "text_de"
and "title_de", renamed with --output-field and --title-output-field; summarise: "summary",
or "summary_<LANG>" with --to, renamed with --output-field); files give the same folder or
archive layout with each file translated in its own format (Markdown and HTML keep their
markup). WARC input gives JSONL records (id, url, date, title, text and the results).

Documents that cannot be processed (malformed lines, empty or oversized text, binary files,
languages without a model) go to OUTPUT.errors.jsonl as {"id", "location", "code",
"reason"} and the job goes on. Progress is committed as it goes (OUTPUT.state.json): after
an interruption, rerun the same command to resume; every document ends up exactly once in
the output or the errors file.

Exit status: 0 every document done, 1 some failed (see OUTPUT.errors.jsonl) or the job
stopped early, 2 usage error, 130 interrupted."""


def register(subparsers: Any) -> None:
    """Add `dragoman batch` with its translate and summarise actions."""
    parser = subparsers.add_parser(
        "batch",
        help="translate or summarise a whole archive (JSONL, folder, tar/zip, WARC), resumably",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="batch_command", metavar="ACTION", required=True)

    translate = actions.add_parser(
        "translate", help="translate every document",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    translate.add_argument("--to", dest="target", required=True, metavar="LANG",
                           help="target language")
    translate.add_argument("--from", dest="source", default="", metavar="LANG",
                           help="source language of every document (default: detect each)")
    translate.add_argument("--beam-size", type=non_negative_int, default=0, metavar="N",
                           help="beam size (default: the model's)")
    translate.add_argument("--model", default="", metavar="NAME",
                           help="installed model to use when several serve the pair "
                           "(default: the service's choice)")
    _add_common(translate)
    translate.set_defaults(func=run, task="translate")

    summarise = actions.add_parser(
        "summarise", aliases=["summarize"], help="summarise every document",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    summarise.add_argument("--to", dest="target", default="", metavar="LANG",
                           help="language of the summaries (default: each article's)")
    summarise.add_argument("--language", dest="source", default="", metavar="LANG",
                           help="language of every document (default: detect each)")
    summarise.add_argument("--method", choices=("auto", "extractive", "abstractive"),
                           default="auto",
                           help="auto: abstractive where a summariser is installed, else extractive")
    length = summarise.add_mutually_exclusive_group()
    length.add_argument("--sentences", type=positive_int, default=0, metavar="N",
                        help="at most N sentences (default: the service's)")
    length.add_argument("--words", type=positive_int, default=0, metavar="N",
                        help="about N words at most")
    summarise.add_argument("--model", default="", metavar="NAME",
                           help="abstractive summariser to use (default: the service's choice)")
    _add_common(summarise)
    summarise.set_defaults(func=run, task="summarise", beam_size=0)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="JSONL(.gz), Parquet, folder, tar/zip or WARC(.gz)")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                        help="where the results go (see above)")
    fields = parser.add_argument_group("records (JSONL, Parquet and WARC)")
    fields.add_argument("--id-field", default="id", metavar="NAME", help="default: id")
    fields.add_argument("--text-field", default="text", metavar="NAME", help="default: text")
    translates = parser.prog.split()[-1] == "translate"  # summaries leave the title as it is
    fields.add_argument("--title-field", default="title", metavar="NAME",
                        help="translated too when present (default: title)" if translates else
                        "the title: kept as it is, not summarised (default: title)")
    fields.add_argument("--output-field", default="", metavar="NAME",
                        help="field for the result (default: text_LANG, or summary[_LANG])")
    if translates:
        fields.add_argument("--title-output-field", default="", metavar="NAME",
                            help="field for the translated title (default: title_LANG)")
    fields.add_argument("--format", choices=list(TEXT_FORMATS), default="plain",
                        help="format of JSONL text fields (files: from their suffix)")
    fields.add_argument("--warc-id", choices=("record", "uri"), default="record",
                        help="id of a WARC page: its WARC-Record-ID or its target URI")

    io = parser.add_argument_group("input and output")
    io.add_argument("--input-format", choices=INPUT_FORMATS, default="auto",
                    help="default: from INPUT's name (a folder, or its suffix)")
    io.add_argument("--output-format", choices=OUTPUT_FORMATS, default="auto",
                    help="default: from OUTPUT's suffix (.jsonl[.gz], .tar[.gz], .zip), else "
                         "the same kind as INPUT")
    io.add_argument("--max-document-bytes", type=positive_int, default=16 * 1024 * 1024,
                    metavar="N", help="larger documents become errors unread (default: 16 MiB)")
    io.add_argument("--restart", action="store_true",
                    help="discard earlier progress and overwrite OUTPUT")
    io.add_argument("--progress", choices=("auto", "bar", "log", "none"), default="auto",
                    help="auto: a bar on a terminal, else a log line every --log-interval")
    io.add_argument("--log-interval", type=positive_float, default=30.0, metavar="SECONDS",
                    help="seconds between progress lines (default: 30)")
    io.add_argument("--commit-interval", type=positive_float, default=2.0, metavar="SECONDS",
                    help="seconds between commits of progress (default: 2)")

    engine = parser.add_argument_group("engine")
    engine.add_argument("--engine", choices=("server", "local", "ray"), default="server",
                        help="server: a Dragoman server (--server); local: in this process; "
                             "ray: Ray Data (pip install 'dragoman[cluster]')")
    engine.add_argument("--local", dest="engine", action="store_const", const="local",
                        help="same as --engine local: no server, models from --models")
    engine.add_argument("--server", metavar="HOST:PORT", default=argparse.SUPPRESS,
                        help=f"server address (default: ${ADDRESS_ENV}, else {DEFAULT_ADDRESS})")
    engine.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                        default=argparse.SUPPRESS,
                        help="deadline of each summary call (translations stream without one)")
    engine.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log more (-v: info, -vv: debug)")
    engine.add_argument("--log-format", choices=("text", "json"), default=None,
                        help="log lines as text or JSON objects (default: $DRAGOMAN_LOG_FORMAT, "
                             "else text)")
    engine.add_argument("--models", metavar="DIR", help=MODELS_HELP)
    engine.add_argument("--in-flight", type=positive_int, default=32, metavar="N",
                        help="documents in flight at once (default: 32)")

    ray = parser.add_argument_group("ray (--engine ray; OUTPUT is a folder of part files, "
                                    "resumable block by block)")
    ray.add_argument("--ray-address", metavar="ADDR",
                     help="cluster to join, e.g. ray://head:10001 or auto (default: $RAY_ADDRESS, "
                          "else start a local instance)")
    ray.add_argument("--ray-cpus", type=positive_int, metavar="N",
                     help="CPUs of a local instance (default: all)")
    ray.add_argument("--actors", type=positive_int, default=1, metavar="N",
                     help="model actors, each loading the models once (default: 1)")
    ray.add_argument("--actor-cpus", type=positive_float, default=1.0, metavar="N",
                     help="CPUs reserved per actor (default: 1)")
    ray.add_argument("--ray-block-docs", "--ray-batch-size", dest="ray_block_docs",
                     type=positive_int, default=1000, metavar="N",
                     help="documents per block of a folder, tar/zip or WARC input (default: 1000)")
    ray.add_argument("--ray-block-kb", type=positive_int, default=32 * 1024, metavar="KB",
                     help="kilobytes per block of a JSONL file; Parquet blocks are its row "
                          "groups, a .gz file is one block (default: 32768)")
    ray.add_argument("--ray-attempts", type=positive_int, default=3, metavar="N",
                     help="tries of a block before its documents go to the errors file "
                          "(default: 3)")


def _batch_modules() -> Any:
    from dragoman.server.batchjob import command

    return command


def _progress(args: argparse.Namespace) -> Any:
    from dragoman.server.batchjob.progress import BarProgress, LogProgress
    from dragoman.server.batchjob.runner import NoProgress

    mode = args.progress
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "log"
    if mode == "bar":
        return BarProgress(sys.stderr)
    if mode == "log":
        return LogProgress(sys.stderr, interval=args.log_interval, wants_total=True)
    return NoProgress()


def run(args: argparse.Namespace) -> int:
    command = _batch_modules()
    from dragoman.server.errors import DragomanError, InvalidInput, ModelNotFound
    from dragoman.server.observability.logs import configure_logging

    log_format = args.log_format or os.environ.get("DRAGOMAN_LOG_FORMAT") or "text"
    if log_format not in ("text", "json"):
        raise UsageError(f"DRAGOMAN_LOG_FORMAT must be text or json, not {log_format!r}")
    configure_logging(log_format)  # rate-limited, and routed around the progress bar

    folder = Path(args.output).expanduser().absolute().parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {args.output}: folder {folder} does not exist")
    try:
        if args.engine == "ray":
            report = _run_ray(args)
        else:
            report = command.run_batch(_spec(args, command), _progress(args))
    except KeyboardInterrupt:
        print("batch: interrupted; what was done is saved: rerun the same command to resume "
              "(--restart starts over)", file=sys.stderr, flush=True)
        raise
    except (InvalidInput, ModelNotFound) as error:
        raise UsageError(str(error)) from None
    except DragomanError as error:
        raise CliError(str(error)) from None
    except ClientError as error:
        address = server_address(args)
        raise CliError(
            f"{describe_error(error, address, local=True)}; progress is saved: rerun the same "
            "command to resume"
        ) from None
    _report(report)
    return report.exit_status


def _job(args: argparse.Namespace) -> Any:
    from dragoman.server.batchjob.job import FieldOptions, JobOptions

    job = JobOptions(
        task=args.task,
        target_language=args.target,
        source_language=args.source,
        method=getattr(args, "method", "auto"),
        max_sentences=getattr(args, "sentences", 0),
        max_words=getattr(args, "words", 0),
        beam_size=args.beam_size,
        model=args.model,
    )
    fields = FieldOptions(
        id_field=args.id_field,
        text_field=args.text_field,
        title_field=args.title_field,
        output_field=args.output_field,
        title_output_field=getattr(args, "title_output_field", ""),
        text_format=args.format,
    )
    return job, fields


def _spec(args: argparse.Namespace, command: Any) -> Any:
    from dragoman.server.batchjob.readers import ReaderOptions
    from dragoman.server.batchjob.runner import RunOptions

    job, fields = _job(args)
    return command.BatchSpec(
        input=Path(args.input),
        output=Path(args.output),
        job=job,
        reader=ReaderOptions(fields, args.max_document_bytes, args.warc_id),
        input_format=args.input_format,
        output_format=args.output_format,
        run=RunOptions(window=args.in_flight, commit_interval=args.commit_interval,
                       restart=args.restart),
        engine=args.engine,
        server=getattr(args, "server", None),
        timeout=getattr(args, "timeout", None),
        client_options=tuple(client_security(args).items()),
        models=args.models,
    )


def _run_ray(args: argparse.Namespace) -> Any:
    from dragoman.server.batchjob.ray_engine import RayOptions, RaySpec, run_ray_job

    job, fields = _job(args)
    if args.output_format not in ("auto",):
        raise UsageError("--engine ray writes a folder of part files: Parquet for Parquet "
                         "input, JSONL for the rest")
    spec = RaySpec(
        inputs=(args.input,),
        output=args.output,
        job=job,
        fields=fields,
        input_format=args.input_format,
        models=args.models,
        max_document_bytes=args.max_document_bytes,
        warc_id=args.warc_id,
        restart=args.restart,
        options=RayOptions(
            address=args.ray_address,
            local_cpus=args.ray_cpus,
            actors=args.actors,
            actor_cpus=args.actor_cpus,
            block_docs=args.ray_block_docs,
            block_bytes=args.ray_block_kb * 1024,
            attempts=args.ray_attempts,
            window=args.in_flight,
        ),
    )
    return run_ray_job(spec, _progress(args))


def _report(report: Any) -> None:
    rate = report.chars / report.seconds if report.seconds > 0 else 0.0
    parts = [f"{report.done} done", f"{report.failed} failed",
             f"{report.skipped} skipped (done by an earlier run)"]
    line = f"batch: {', '.join(parts)} in {report.seconds:.1f}s ({rate:,.0f} chars/s)"
    if report.total_done != report.done or report.total_failed != report.failed:
        line += f"; job total: {report.total_done} done, {report.total_failed} failed"
    print(line, file=sys.stderr)
    print(f"batch: output: {report.output}", file=sys.stderr)
    if report.errors:
        print(f"batch: errors: {report.errors}", file=sys.stderr)
    from dragoman.server.batchjob.report import error_codes, report_table

    print(report_table(report, error_codes(report.errors)), file=sys.stderr)
    sys.stderr.flush()
