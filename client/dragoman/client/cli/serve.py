"""`dragoman serve`: run the gRPC server (server package imported only when run)."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from dragoman.client.cli.common import UsageError, server_installed, server_missing

if TYPE_CHECKING:
    from dragoman.server.config import ServerConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    if not server_installed():
        # The client alone: the flags live in the server package; `main` reports what to
        # install when the command runs, and --help says it too.
        subparsers.add_parser(
            "serve", help="run the translation/summarisation server (needs the server package)",
            description=server_missing("`dragoman serve`"),
        ).set_defaults(func=_run)
        return
    from dragoman.server.config import add_arguments

    parser = subparsers.add_parser(
        "serve",
        help="run the translation/summarisation server",
        description=(
            "Run the Dragoman server: gRPC on --address, and HTTP on --http (LibreTranslate and "
            "DeepL APIs, /v1 JSON, a web page at /). Every option also reads a DRAGOMAN_* "
            "environment variable; a flag wins over the environment, which wins over the default."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import sys

    # numpy's BLAS threads fight CTranslate2's for the cores (the extractive ranker got ~14x
    # slower under load); set before numpy is first imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    from dragoman.server.config import ServerConfig, load_config
    from dragoman.server.errors import DragomanError
    from dragoman.server.rpc.app import serve_forever

    if args.verbose == 0:
        logging.getLogger("dragoman").setLevel(logging.INFO)
    from dragoman.server.observability.logs import configure_logging
    from dragoman.server.observability.tracing import configure_tracing

    names = {f for f in ServerConfig.__dataclass_fields__}
    flags = {k: v for k, v in vars(args).items() if k in names}
    try:
        config = load_config(flags)
        if not config.install:  # --install creates the folder
            config.check_models_dir()  # a typo would otherwise serve an empty store
        configure_logging(config.log_format)
        configure_tracing()  # spans, when the [otel] extra is installed and OTEL_* says where
        if config.install:
            _install_pairs(config)
        stopped = asyncio.run(serve_forever(config))
    except DragomanError as exc:
        raise UsageError(str(exc)) from None
    if not stopped:
        # A CTranslate2 batch is still decoding past the grace period and cannot be
        # interrupted; a normal exit would wait for it (or abort in its C++ teardown).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _install_pairs(config: ServerConfig) -> None:
    """--install: fetch models for missing pairs before listening; never fatal when offline."""
    from dragoman.server.sources.acquire import ensure_pairs
    from dragoman.server.sources.progress import LogProgress
    from dragoman.server.store import ModelStore

    store = ModelStore(config.models_dir, config.max_model_mb * 1024 * 1024)
    ensure_pairs(config.install, store, progress=LogProgress)
