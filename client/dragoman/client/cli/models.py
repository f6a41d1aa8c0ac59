"""`dragoman models install|list|remove`: manage the local model store."""

from __future__ import annotations

import argparse
import json

from dragoman.client.cli.common import CliError, UsageError, format_table

MODELS_HELP = "model store folder (default: $DRAGOMAN_MODELS, else the per-user data folder)"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("models", help="install, list and remove models")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    install = sub.add_parser(
        "install",
        help="install an Argos package, CTranslate2 folder or Hugging Face checkpoint",
        description=(
            "Install a model into the store: an Argos Translate .argosmodel package, a "
            "CTranslate2 model folder, a Hugging Face checkpoint folder or a native Marian "
            "model (the last two need `pip install 'dragoman[convert]'`)."
        ),
    )
    install.add_argument("path", help="package file or model folder")
    install.add_argument("--name", help="name in the store (default: from the package)")
    install.add_argument("--task", choices=("translate", "summarise"),
                         help="what the model does, where the folder does not say")
    install.add_argument("--source", type=_csv, default=(), metavar="LANGS",
                         help="source language(s), comma-separated ISO 639-1 codes")
    install.add_argument("--target", type=_csv, default=(), metavar="LANGS",
                         help="target language(s), comma-separated")
    install.add_argument("--quantization", default="int8",
                         help="weights when converting: int8 (default), int8_float32, float32, ...")
    install.add_argument("--text-prefix", default=None, metavar="TEXT",
                         help="text put before every input, e.g. 'summarize: ' for T5 "
                              "(default: what the checkpoint says)")
    install.add_argument("--force", action="store_true", help="replace a model of the same name")
    install.add_argument("--models", help=MODELS_HELP)
    install.set_defaults(func=_install)

    lister = sub.add_parser("list", help="list installed models")
    lister.add_argument("--json", action="store_true", help="print JSON")
    lister.add_argument("--models", help=MODELS_HELP)
    lister.set_defaults(func=_list)

    remove = sub.add_parser("remove", help="remove an installed model")
    remove.add_argument("name")
    remove.add_argument("--models", help=MODELS_HELP)
    remove.set_defaults(func=_remove)


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    try:
        from dragoman.server.config import load_config
        from dragoman.server.store import ModelStore
    except ModuleNotFoundError:
        raise CliError("the server package is not installed here") from None
    return ModelStore(load_config({"models": args.models}).models_dir)


def _install(args: argparse.Namespace) -> int:
    from dragoman.server.errors import DragomanError
    from dragoman.server.store import InstallOptions

    store = _store(args)
    options = InstallOptions(
        name=args.name,
        task=args.task,
        source_languages=args.source,
        target_languages=args.target,
        quantization="" if args.quantization in ("none", "float32") else args.quantization,
        force=args.force,
        text_prefix=args.text_prefix,
    )
    try:
        model = store.install(args.path, options)
    except DragomanError as exc:
        raise UsageError(str(exc)) from None
    m = model.manifest
    pairs = ", ".join(f"{s}->{t}" for s, t in m.pairs()[:12])
    more = f" (+{len(m.pairs()) - 12} more)" if len(m.pairs()) > 12 else ""
    print(f"installed {m.name} ({m.task}, {m.family}) into {model.path}: {pairs}{more}")
    return 0


def _list(args: argparse.Namespace) -> int:
    models = _store(args).list()
    if args.json:
        print(json.dumps([
            {"name": m.name, "task": m.manifest.task, "family": m.manifest.family,
             "source_languages": list(m.manifest.source_languages),
             "target_languages": list(m.manifest.target_languages), "path": str(m.path)}
            for m in models
        ], indent=2))
        return 0
    if not models:
        print("no models installed (see `dragoman models install --help`); "
              "extractive summaries work without any")
        return 0
    rows = [
        (m.name, m.manifest.task, m.manifest.family, ",".join(m.manifest.source_languages),
         ",".join(m.manifest.target_languages))
        for m in models
    ]
    print(format_table(("NAME", "TASK", "FAMILY", "SOURCE", "TARGET"), rows))
    return 0


def _remove(args: argparse.Namespace) -> int:
    from dragoman.server.errors import DragomanError

    try:
        _store(args).remove(args.name)
    except DragomanError as exc:
        raise UsageError(str(exc)) from None
    print(f"removed {args.name}")
    return 0
