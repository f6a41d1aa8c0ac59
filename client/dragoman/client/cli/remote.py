"""CLI commands that talk to a running server: translate, summarise, detect, languages, health."""

from __future__ import annotations

import argparse
from typing import Any

from dragoman.client.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    STDIN,
    UsageError,
    format_table,
    infer_format,
    make_client,
    non_negative_int,
    positive_float,
    positive_int,
    read_input,
    to_json,
    write_output,
)
from dragoman.client.cli.local import add_local_options, client_for
from dragoman.client.results import SUMMARY_METHODS, TEXT_FORMATS, Languages


def register(subparsers: Any) -> None:
    """Add the remote commands to the `dragoman` parser."""
    _register_translate(subparsers)
    _register_summarise(subparsers)
    _register_detect(subparsers)
    _register_languages(subparsers)
    _register_health(subparsers)


def _add_io(parser: argparse.ArgumentParser, *, output: bool = True) -> None:
    parser.add_argument(
        "file", nargs="?", metavar="FILE",
        help="UTF-8 text file to read; '-' or omitted: stdin (FILE is always a file name: "
        "give text itself with --text)",
    )
    parser.add_argument(
        "-t", "--text", metavar="TEXT", help="the text itself, instead of FILE or stdin"
    )
    add_local_options(parser)
    if output:
        parser.add_argument(
            "-o", "--output", metavar="FILE", help="write here (atomically) instead of stdout"
        )
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=list(TEXT_FORMATS),
        help="text structure (default: from the suffix .html/.htm/.md/.markdown, else plain)",
    )


def _register_translate(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "translate",
        help="translate a document",
        description="Translate a document, keeping paragraphs and HTML/Markdown markup.",
    )
    parser.add_argument(
        "--to", dest="target", required=True, metavar="LANG", help="target language"
    )
    parser.add_argument(
        "--from", dest="source", metavar="LANG", help="source language (default: detect)"
    )
    _add_format(parser)
    parser.add_argument(
        "--beam-size",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="beam size (default: the model's)",
    )
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="installed model to use when several serve the pair (default: the server's choice;"
        " see `dragoman languages`)",
    )
    parser.add_argument(
        "--keep", action="append", default=[], metavar="TERM",
        help="a term to leave untranslated, byte for byte (repeatable; URLs, e-mail addresses,"
        " @mentions, #hashtags and inline code always are)",
    )
    parser.add_argument(
        "--term", action="append", default=[], metavar="SOURCE=TARGET",
        help="a glossary term the translation must use (repeatable)",
    )
    parser.add_argument(
        "--glossary", metavar="NAME", help="a glossary stored on the server (`dragoman glossaries`)"
    )
    _add_priority(parser)
    _add_io(parser)
    parser.set_defaults(func=run_translate)


def _add_priority(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--priority", choices=("interactive", "bulk"), default=None,
        help="scheduling class: interactive (the default) is decoded ahead of bulk work; bulk "
        "takes the places interactive work leaves free",
    )


def run_translate(args: argparse.Namespace) -> int:
    from dragoman.client.cli.glossaries import parse_term

    text = _text(args)
    with client_for(args) as client:
        result = client.translate(
            text,
            args.target,
            source=args.source,
            format=infer_format(args.file, args.format),
            beam_size=args.beam_size,
            model=args.model,
            keep_terms=args.keep,
            glossary=dict(parse_term(t) for t in args.term),
            glossary_name=args.glossary,
            priority=args.priority,
        )
    write_output(to_json(result) if args.json else result.text, args.output)
    return EXIT_OK


def _text(args: argparse.Namespace) -> str:
    """--text, else FILE, else stdin. FILE is never taken as text: a missing file is an error
    that points at --text (so a typo in a file name is not translated as a sentence)."""
    if args.text is not None:
        if args.file is not None:
            raise UsageError("give either FILE or --text, not both")
        return args.text
    try:
        return read_input(args.file)
    except UsageError as error:
        if args.file and args.file != STDIN and _reads_as_text(args.file):
            raise UsageError(f"{error} (to pass the text itself: --text {args.file!r})") from None
        raise


def _reads_as_text(name: str) -> bool:
    """A missing FILE that looks like words rather than a path: it has spaces, or it is one
    bare word (no folder, no suffix). A typo'd 'artcle.md' gets no --text hint."""
    return any(c.isspace() for c in name) or not any(c in name for c in "./\\")


def _register_summarise(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "summarise",
        aliases=["summarize"],
        help="summarise a document",
        description="Summarise a document, optionally into another language.",
    )
    parser.add_argument(
        "--to",
        dest="target",
        metavar="LANG",
        help="language of the summary (default: the article's)",
    )
    parser.add_argument(
        "--language", metavar="LANG", help="language of the article (default: detect)"
    )
    parser.add_argument(
        "--method",
        choices=list(SUMMARY_METHODS),
        default="auto",
        help="auto: abstractive where a summariser is installed, else extractive",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        "--sentences",
        type=positive_int,
        default=0,
        metavar="N",
        help="at most N sentences (default: the server's)",
    )
    length.add_argument(
        "--words", type=positive_int, default=0, metavar="N", help="about N words at most"
    )
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="abstractive summariser to use (implies --method abstractive; default: the "
        "server's choice)",
    )
    _add_format(parser)
    _add_priority(parser)
    _add_io(parser)
    parser.set_defaults(func=run_summarise)


def run_summarise(args: argparse.Namespace) -> int:
    text = _text(args)
    with client_for(args) as client:
        result = client.summarise(
            text,
            target=args.target,
            language=args.language,
            method=args.method,
            max_sentences=args.sentences,
            max_words=args.words,
            format=infer_format(args.file, args.format),
            model=args.model,
            priority=args.priority,
        )
    write_output(to_json(result) if args.json else result.summary, args.output)
    return EXIT_OK


def _register_detect(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="identify the language of a text",
        description="Print the most likely language and its confidence, tab-separated.",
    )
    parser.add_argument("--all", action="store_true", help="one line per candidate, best first")
    _add_io(parser, output=False)
    parser.set_defaults(func=run_detect)


def run_detect(args: argparse.Namespace) -> int:
    text = _text(args)
    with client_for(args) as client:
        result = client.detect(text)
    if args.json:
        write_output(to_json(result), STDIN)
    elif args.all and result.candidates:
        lines = [f"{c.language}\t{c.confidence:.3f}" for c in result.candidates]
        write_output("\n".join(lines), STDIN)
    else:
        write_output(f"{result.language}\t{result.confidence:.3f}", STDIN)
    return EXIT_OK


def _register_languages(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "languages",
        help="list translation pairs, summarisation languages and models",
        description="List what the server can translate and summarise, and its models.",
    )
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.set_defaults(func=run_languages)


def run_languages(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        result = client.languages()
    write_output(to_json(result) if args.json else render_languages(result), STDIN)
    return EXIT_OK


def render_languages(languages: Languages) -> str:
    """The human-readable listing: pairs, summarisation support, models."""
    pairs = format_table(
        ["FROM", "TO", "MODELS", "PIVOT"],
        [
            [p.source_language, p.target_language, " + ".join(p.models), p.pivot_language or ""]
            for p in languages.pairs
        ],
    )
    abstractive = ", ".join(languages.summarisation_languages) or "none"
    extractive = "every language" if languages.extractive_summaries else "none"
    models = format_table(
        ["MODEL", "TASK", "FROM", "TO", "LOADED"],
        [
            [
                m.name,
                m.task,
                ",".join(m.source_languages),
                ",".join(m.target_languages),
                "yes" if m.loaded else "no",
            ]
            for m in languages.models
        ],
    )
    return "\n".join(
        [
            f"Translation pairs ({len(languages.pairs)}):",
            _indent(pairs),
            "",
            "Summaries:",
            f"  abstractive: {abstractive}",
            f"  extractive: {extractive}",
            "",
            f"Models ({len(languages.models)}):",
            _indent(models),
        ]
    )


def _indent(table: str) -> str:
    """Indent a table, or say "none" when it has only its header."""
    lines = table.splitlines()
    return "\n".join(f"  {line}" for line in lines) if len(lines) > 1 else "  none"


def _register_health(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "health",
        help="check that the server is serving",
        description="Print the server's health status; exit 0 only when it is SERVING.",
    )
    parser.add_argument(
        "--service",
        default="",
        metavar="NAME",
        help="a single service, e.g. dragoman.v1.TranslationService (default: the whole server)",
    )
    parser.add_argument(
        "--wait",
        type=positive_float,
        metavar="SECONDS",
        help="keep polling until SERVING or SECONDS have passed",
    )
    parser.set_defaults(func=run_health)


def run_health(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        if args.wait:
            client.wait_ready(args.wait, service=args.service)
        status = client.health(args.service)
    write_output(status, STDIN)
    return EXIT_OK if status == "SERVING" else EXIT_FAILURE
