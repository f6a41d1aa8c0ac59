"""`dragoman models install|list|remove|available`: manage the local model store."""

from __future__ import annotations

import argparse
import json
import sys

from dragoman.client.cli.common import CliError, UsageError, format_table, one_line

MODELS_HELP = "model store folder (default: $DRAGOMAN_MODELS, else the per-user data folder)"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="install, list and remove models")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    install = sub.add_parser(
        "install",
        help="install a model: argos:SRC-TGT, hf:OWNER/REPO, opus-mt:SRC-TGT, a package or folder",
        description=(
            "Install a model into the store from the Argos package index (argos:de-en; index "
            "from $DRAGOMAN_ARGOS_INDEX), the Hugging Face Hub (hf:OWNER/REPO[@REVISION], "
            "opus-mt:de-en; HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE apply), an Argos Translate "
            ".argosmodel package, a CTranslate2 model folder, a Hugging Face checkpoint folder "
            "or a native Marian model. Hugging Face checkpoints need "
            "`pip install 'dragoman[convert]'`. See `dragoman models available`."
        ),
    )
    install.add_argument("path", metavar="SOURCE",
                         help="argos:SRC-TGT, hf:OWNER/REPO[@REV], opus-mt:SRC-TGT, a package "
                              "file or a model folder")
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
    install.add_argument("--max-model-mb", type=int, default=None, metavar="MB",
                         help="largest model folder to write (env DRAGOMAN_MAX_MODEL_MB; "
                              "default 8192)")
    install.add_argument("--models", help=MODELS_HELP)
    install.set_defaults(func=_install)

    available = sub.add_parser(
        "available", help="list models that can be installed",
        description="Models `dragoman models install` can fetch: the Argos package index and a "
                    "curated list of Hugging Face checkpoints Dragoman converts.")
    available.add_argument("--source", choices=("argos", "hf"), help="only this source")
    available.add_argument("--from", dest="from_language", metavar="LANG",
                           help="only models translating (or summarising) from LANG")
    available.add_argument("--to", dest="to_language", metavar="LANG",
                           help="only models producing LANG")
    available.add_argument("--json", action="store_true", help="print JSON")
    available.set_defaults(func=_available)

    lister = sub.add_parser("list", help="list installed models")
    lister.add_argument("--json", action="store_true", help="print JSON")
    lister.add_argument("--models", help=MODELS_HELP)
    lister.set_defaults(func=_list)

    remove = sub.add_parser("remove", help="remove an installed model")
    remove.add_argument("name", help="name of the installed model (see `dragoman models list`)")
    remove.add_argument("--models", help=MODELS_HELP)
    remove.set_defaults(func=_remove)


def _store(args: argparse.Namespace, *, must_exist: bool = True):
    """The store --models (or DRAGOMAN_MODELS, else the default) names; one named explicitly
    must exist unless ``must_exist`` is off (an install creates it)."""
    from dragoman.server.config import load_config
    from dragoman.server.errors import DragomanError
    from dragoman.server.store import ModelStore

    try:
        config = load_config({"models": args.models,
                              "max_model_mb": getattr(args, "max_model_mb", None)})
        if must_exist:
            config.check_models_dir()
    except DragomanError as exc:
        raise UsageError(str(exc)) from None
    return ModelStore(config.models_dir, config.max_model_mb * 1024 * 1024)


def _failure(exc: Exception) -> CliError:
    """Network, disk and corrupt downloads are failures (exit 1); the rest is the user's (2)."""
    from dragoman.server.errors import SourceUnavailable

    return CliError(str(exc)) if isinstance(exc, SourceUnavailable) else UsageError(str(exc))


def _install(args: argparse.Namespace) -> int:
    from dragoman.server.errors import DragomanError
    from dragoman.server.sources.acquire import install
    from dragoman.server.sources.progress import terminal_progress
    from dragoman.server.store import InstallOptions

    store = _store(args, must_exist=False)
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
        model = install(args.path, store, options, progress=terminal_progress())
    except DragomanError as exc:
        raise _failure(exc) from None
    m = model.manifest
    pairs = ", ".join(f"{s}->{t}" for s, t in m.pairs()[:12])
    more = f" (+{len(m.pairs()) - 12} more)" if len(m.pairs()) > 12 else ""
    print(f"installed {m.name} ({m.task}, {m.family}) into {model.path}: {pairs}{more}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    models, unreadable = store.scan()
    # STATUS is a look at the files (tokenizers present, model.bin whole), not a load.
    listed = [
        (m.name, m.manifest.task, m.manifest.family, m.manifest.source_languages,
         m.manifest.target_languages, str(m.path), _status(store.problem(m)))
        for m in models
    ] + [(f.name, "", "", (), (), str(store.root / f.name), _status(f.reason))
         for f in unreadable]
    listed.sort(key=lambda row: row[0])
    if args.json:
        print(json.dumps([
            {"name": name, "task": task, "family": family, "source_languages": list(src),
             "target_languages": list(tgt), "path": path, "status": status}
            for name, task, family, src, tgt, path, status in listed
        ], indent=2))
        return 0
    if not listed:
        print("no models installed (see `dragoman models install --help`); "
              "extractive summaries work without any")
        return 0
    rows = [
        (name, task or "?", family or "?", ",".join(src) or "?", ",".join(tgt) or "?", status)
        for name, task, family, src, tgt, _, status in listed
    ]
    print(format_table(("NAME", "TASK", "FAMILY", "SOURCE", "TARGET", "STATUS"), rows))
    return 0


def _status(problem: str | None) -> str:
    return "ok" if problem is None else f"broken: {one_line(problem)}"


def _size(value: int | None) -> str:
    if value is None:
        return "?"
    return f"{value / 1e9:.1f} GB" if value >= 1e9 else f"{max(1, round(value / 1e6))} MB"


def _languages(codes: tuple[str, ...]) -> str:
    return ",".join(codes) if len(codes) <= 4 else f"{len(codes)} languages"


def _available(args: argparse.Namespace) -> int:
    from dragoman.server.sources.catalogue import available

    entries, problems = available(args.source, args.from_language, args.to_language)
    for problem in problems:
        print(f"dragoman: warning: {one_line(problem)} (listing the other sources)",
              file=sys.stderr)
    if args.json:
        print(json.dumps([
            {"install": e.spec, "source": e.source, "task": e.task,
             "source_languages": list(e.source_languages),
             "target_languages": list(e.target_languages), "size_bytes": e.size_bytes,
             "description": e.description}
            for e in entries
        ], indent=2))
    elif entries:
        rows = [(e.spec, e.task, _languages(e.source_languages),
                 _languages(e.target_languages), _size(e.size_bytes), e.source)
                for e in entries]
        print(format_table(("INSTALL", "TASK", "FROM", "TO", "SIZE", "SOURCE"), rows))
    else:
        print("nothing matches; try without --from/--to")
    if problems and not entries:
        raise CliError("; ".join(problems))
    return 0


def _remove(args: argparse.Namespace) -> int:
    from dragoman.server.errors import DragomanError

    try:
        _store(args).remove(args.name)
    except DragomanError as exc:
        raise UsageError(str(exc)) from None
    print(f"removed {args.name}")
    return 0
