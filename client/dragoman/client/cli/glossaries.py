"""`dragoman glossaries add|list|remove`: the named glossaries a server applies on request.

They are kept with the model store (``<models>/.glossaries``), so the server that serves
that store sees them at once, and a request picks one with ``glossary_name``
(`dragoman translate --glossary NAME`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dragoman.client.cli.common import EXIT_OK, UsageError, format_table, write_output

MODELS_HELP = "model store folder (default: $DRAGOMAN_MODELS, else the per-user data folder)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "glossaries",
        help="add, list and remove named glossaries",
        description=("Manage the named glossaries of a model store: source -> target terms a "
                     "translation must use, for one language pair."),
    )
    sub = parser.add_subparsers(dest="glossaries_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="add a glossary from a file or terms on the command line")
    add.add_argument("name", help="glossary name (letters, digits, '.', '_', '-')")
    add.add_argument("file", nargs="?", type=Path,
                     help='terms: JSON {"source": "target", ...} or lines source<TAB>target')
    add.add_argument("--from", dest="source", required=True, metavar="LANG",
                     help="language of the source terms")
    add.add_argument("--to", dest="target", required=True, metavar="LANG",
                     help="language of the target terms")
    add.add_argument("--term", action="append", default=[], metavar="SOURCE=TARGET",
                     help="a term (repeatable; with a file, added to it)")
    add.add_argument("--replace", action="store_true", help="replace a glossary of that name")
    add.add_argument("--models", help=MODELS_HELP)
    add.set_defaults(func=_add)

    lister = sub.add_parser("list", help="list the glossaries")
    lister.add_argument("--json", action="store_true", help="print JSON (with the terms)")
    lister.add_argument("--models", help=MODELS_HELP)
    lister.set_defaults(func=_list)

    remove = sub.add_parser("remove", help="remove a glossary")
    remove.add_argument("name")
    remove.add_argument("--models", help=MODELS_HELP)
    remove.set_defaults(func=_remove)


def parse_term(value: str) -> tuple[str, str]:
    """'source=target' (the first '=' splits; spaces around the terms are dropped)."""
    source, found, target = value.partition("=")
    if not found or not source.strip() or not target.strip():
        raise UsageError(f"term {value!r}: expected SOURCE=TARGET")
    return source.strip(), target.strip()


def _store(args: argparse.Namespace):
    from dragoman.server.config import load_config
    from dragoman.server.errors import DragomanError
    from dragoman.server.glossary import GlossaryStore

    try:
        config = load_config({"models": args.models})
        config.check_models_dir()  # glossaries live in the store: a typo must not create one
    except DragomanError as exc:
        raise UsageError(str(exc)) from None
    return GlossaryStore(config.models_dir)


def _run(action):
    from dragoman.server.errors import DragomanError

    try:
        return action()
    except DragomanError as exc:
        raise UsageError(str(exc)) from None


def _add(args: argparse.Namespace) -> int:
    from dragoman.server.glossary import read_terms

    store = _store(args)
    terms: list[tuple[str, str]] = []
    if args.file is not None:
        terms.extend(_run(lambda: read_terms(args.file)))
    terms.extend(parse_term(t) for t in args.term)
    if not terms:
        raise UsageError("glossaries add: give a FILE or --term SOURCE=TARGET")
    glossary = _run(lambda: store.add(args.name, args.source, args.target, terms, args.replace))
    write_output(f"glossary {glossary.name} ({glossary.source}->{glossary.target}, "
                 f"{len(glossary.terms)} terms) saved in {store.root}", None)
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    glossaries = _run(lambda: _store(args).list())
    if args.json:
        write_output(json.dumps([g.as_json() for g in glossaries], ensure_ascii=False, indent=2),
                     None)
    elif glossaries:
        write_output(format_table(["NAME", "PAIR", "TERMS"], [
            [g.name, f"{g.source}->{g.target}", str(len(g.terms))] for g in glossaries]), None)
    else:
        write_output("no glossaries", None)
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    store = _store(args)
    _run(lambda: store.remove(args.name))
    write_output(f"glossary {args.name} removed", None)
    return EXIT_OK
