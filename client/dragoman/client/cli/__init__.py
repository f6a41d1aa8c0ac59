"""The `dragoman` command line: parser, command registration and the one error boundary.

Each command module exposes `register(subparsers) -> None`, adding sub-parsers whose defaults set
`func(args) -> int`. The client distribution (dragoman-client) installs without the server
(dragoman): every command is registered either way, the server package is imported only when a
command runs that needs it, and without it such a command exits 2 saying what to install.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import NoReturn

from dragoman.client.api import (
    ADDRESS_ENV,
    API_KEY_ENV,
    CLIENT_CERT_ENV,
    CLIENT_KEY_ENV,
    DEFAULT_ADDRESS,
    TIMEOUT_ENV,
    TLS_CA_ENV,
    TLS_ENV,
    resolve_timeout,
)
from dragoman.client.cli.common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    CliError,
    UsageError,
    describe_error,
    exit_code_for,
    positive_float,
    report_error,
    server_address,
    server_installed,
    server_missing,
)
from dragoman.client.errors import DragomanError

logger = logging.getLogger(__name__)

COMMAND_MODULES = ("remote", "serve", "models", "batch", "keys", "glossaries")
# Commands that work on this machine's files and never call a server.
LOCAL_COMMANDS = frozenset({"serve", "models", "keys", "glossaries"})
# Commands that need the server distribution whatever their flags (the batch job lives there,
# for every engine); translate, summarise and detect need it with --local.
SERVER_COMMANDS = LOCAL_COMMANDS | {"batch"}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one-line UsageErrors instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix(PROG).strip()
        if command:
            raise UsageError(f"{command}: {message} (see '{self.prog} --help')")
        raise UsageError(f"{message} (see '{PROG} --help')")


def _version() -> str:
    try:
        return metadata.version("dragoman-client")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _add_global_options(
    parser: argparse.ArgumentParser, *, inherited: bool, client: bool = True
) -> None:
    """Add --server/--timeout/--api-key/--tls*/-v (only -v without `client`: commands that
    never call a server do not offer its flags).

    On sub-parsers (`inherited`) they default to SUPPRESS, so a flag given before the command
    is not overwritten by the sub-parser's default.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if inherited else value

    options: list[tuple[tuple[str, ...], dict[str, object]]] = [
        (
            ("--server",),
            dict(
                metavar="HOST:PORT",
                default=default(None),
                help=f"server address (default: ${ADDRESS_ENV}, else {DEFAULT_ADDRESS})",
            ),
        ),
        (
            ("--timeout",),
            dict(
                type=positive_float,
                metavar="SECONDS",
                default=default(None),
                help=f"deadline of each call (default: ${TIMEOUT_ENV}, else 60)",
            ),
        ),
        (
            ("--api-key",),
            dict(
                metavar="KEY",
                default=default(None),
                help=f"API key sent as 'authorization: Bearer KEY' (default: ${API_KEY_ENV}; "
                "prefer the variable: flags show in the process list)",
            ),
        ),
        (
            ("--tls",),
            dict(
                action="store_true",
                default=default(None),
                help=f"connect with TLS, trusting the system's CAs (default: ${TLS_ENV})",
            ),
        ),
        (
            ("--tls-ca",),
            dict(
                metavar="PEM",
                default=default(None),
                help=f"TLS: CA bundle of the server's certificate (default: ${TLS_CA_ENV})",
            ),
        ),
        (
            ("--tls-cert",),
            dict(
                metavar="PEM",
                dest="client_tls_cert",
                default=default(None),
                help=f"mutual TLS: this client's certificate (default: ${CLIENT_CERT_ENV})",
            ),
        ),
        (
            ("--tls-key",),
            dict(
                metavar="PEM",
                dest="client_tls_key",
                default=default(None),
                help=f"mutual TLS: its private key (default: ${CLIENT_KEY_ENV})",
            ),
        ),
        (
            ("-v", "--verbose"),
            dict(
                action="count",
                default=default(0),
                help="log more (-v: info, -vv: debug with tracebacks)",
            ),
        ),
    ]
    if not client:
        options = options[-1:]
    for flags, kwargs in options:
        try:
            parser.add_argument(*flags, **kwargs)  # type: ignore[arg-type]
        except argparse.ArgumentError:
            logger.debug("%s defines its own %s", parser.prog, flags[0])


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every command module that is installed."""
    parser = _Parser(
        prog=PROG,
        description="Translate and summarise article text with a Dragoman server.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    _add_global_options(parser, inherited=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    seen: set[int] = set()
    for name, subparser in subparsers.choices.items():
        if id(subparser) not in seen:
            seen.add(id(subparser))
            _add_global_options(subparser, inherited=True, client=name not in LOCAL_COMMANDS)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format=f"{PROG}: %(levelname)s: %(name)s: %(message)s")


def _timeout_for_message(args: argparse.Namespace) -> float | None:
    try:
        return resolve_timeout(getattr(args, "timeout", None))
    except DragomanError:
        return None


def _needs_missing_server(args: argparse.Namespace) -> str | None:
    """The error line when the command needs dragoman.server and it is not installed."""
    if args.command in SERVER_COMMANDS:
        what = f"`{PROG} {args.command}`"
    elif getattr(args, "local", False):
        what = f"`{PROG} {args.command} --local`"
    else:
        return None
    return None if server_installed() else server_missing(what)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 failure, 2 usage error, 130 Ctrl-C)."""
    try:
        parser = build_parser()
        # Known arguments first: without the server, `serve` has none of its flags, and
        # `serve --port 1` must say what to install rather than "unrecognized arguments".
        args, unknown = parser.parse_known_args(argv)
        missing = _needs_missing_server(args)
        if missing:
            raise UsageError(missing)
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except UsageError as error:
        report_error(str(error))
        return error.exit_code
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE if exit_.code else 0
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as error:  # a broken command module must not produce a traceback
        report_error(f"cannot set up the command line: {type(error).__name__}: {error}")
        return EXIT_FAILURE
    _configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except CliError as error:
        report_error(str(error))
        return error.exit_code
    except DragomanError as error:
        logger.debug("call failed", exc_info=True)
        report_error(describe_error(error, server_address(args), _timeout_for_message(args),
                                    local=hasattr(args, "local") and server_installed()))
        return exit_code_for(error)
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: stop quietly, and keep the interpreter's final
        # flush of stdout from complaining too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as error:
        logger.debug("unexpected failure", exc_info=True)
        report_error(f"unexpected {type(error).__name__}: {error} (run with -vv for details)")
        return EXIT_FAILURE
