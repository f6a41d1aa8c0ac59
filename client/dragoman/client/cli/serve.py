"""`dragoman serve`: run the gRPC server (server package imported only when run)."""

from __future__ import annotations

import argparse
import logging

from dragoman.client.cli.common import CliError, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from dragoman.client.cli.common import PROG  # noqa: F401 - keeps import order explicit

    parser = subparsers.add_parser(
        "serve",
        help="run the translation/summarisation server",
        description=(
            "Run the Dragoman gRPC server. Every option also reads a DRAGOMAN_* environment "
            "variable; a flag wins over the environment, which wins over the default."
        ),
    )
    try:
        from dragoman.server.config import add_arguments
    except ModuleNotFoundError:  # client-only installation
        parser.set_defaults(func=_missing_server)
        return
    add_arguments(parser)
    parser.set_defaults(func=_run)


def _missing_server(args: argparse.Namespace) -> int:
    raise CliError("the server is not installed here: pip install dragoman (full package)")


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import os

    # numpy's BLAS threads fight CTranslate2's for the cores (the extractive ranker got ~14x
    # slower under load); set before numpy is first imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    from dragoman.server.config import ServerConfig, load_config
    from dragoman.server.errors import DragomanError
    from dragoman.server.rpc.app import serve_forever

    if args.verbose == 0:
        logging.getLogger("dragoman").setLevel(logging.INFO)
    from dragoman.server.observability.logs import configure_logging

    names = {f for f in ServerConfig.__dataclass_fields__}
    flags = {k: v for k, v in vars(args).items() if k in names}
    try:
        config = load_config(flags)
        configure_logging(config.log_format)
        asyncio.run(serve_forever(config))
    except DragomanError as exc:
        raise UsageError(str(exc)) from None
    return 0
