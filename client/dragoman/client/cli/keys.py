"""`dragoman keys add|list|remove`: manage the API key store a server reads with `--keys`."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

from dragoman.client.cli.common import (
    EXIT_OK,
    UsageError,
    format_table,
    positive_int,
    write_output,
)

KEYS_ENV = "DRAGOMAN_KEYS"
KEYS_HELP = f"key store, a SQLite file (default: ${KEYS_ENV}, as for `dragoman serve --keys`)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="add, list and remove API keys",
        description=(
            "Manage the API keys of a server started with --keys FILE. Only a SHA-256 digest "
            "of each key is stored; a running server picks up changes at once."
        ),
    )
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="create a key and print it (once)")
    add.add_argument("name", help="who the key is for (shown in logs and `keys list`)")
    add.add_argument("--chars-per-minute", type=positive_int, metavar="N",
                     help="quota: characters per minute (default: unlimited)")
    add.add_argument("--chars-per-day", type=positive_int, metavar="N",
                     help="quota: characters per UTC day (default: unlimited)")
    add.add_argument("--keys", dest="keys_file", help=KEYS_HELP)
    add.set_defaults(func=_add)

    lister = sub.add_parser("list", help="list the keys (names and quotas, never the keys)")
    lister.add_argument("--json", action="store_true", help="print JSON")
    lister.add_argument("--keys", dest="keys_file", help=KEYS_HELP)
    lister.set_defaults(func=_list)

    remove = sub.add_parser("remove", help="revoke a key")
    remove.add_argument("name")
    remove.add_argument("--keys", dest="keys_file", help=KEYS_HELP)
    remove.set_defaults(func=_remove)


def _store(args: argparse.Namespace):
    from dragoman.server.access import KeyStore

    path = args.keys_file or os.environ.get(KEYS_ENV, "").strip()
    if not path:
        raise UsageError(f"keys: give --keys FILE or set {KEYS_ENV}")
    return KeyStore(path)


def _run(action):
    from dragoman.server.errors import DragomanError

    try:
        return action()
    except DragomanError as exc:
        raise UsageError(str(exc)) from None


def _add(args: argparse.Namespace) -> int:
    store = _store(args)
    key, record = _run(lambda: store.add(args.name, args.chars_per_minute, args.chars_per_day))
    write_output(key, None)
    print(f"key {record.name!r} added to {store.path}; it is shown only this once",
          file=sys.stderr)
    return EXIT_OK


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    records = _run(store.load)
    if args.json:
        data = [{"name": r.name, "chars_per_minute": r.chars_per_minute,
                 "chars_per_day": r.chars_per_day, "created": r.created} for r in records]
        write_output(json.dumps(data, indent=2), None)
        return EXIT_OK
    rows = [[
        r.name, _limit(r.chars_per_minute), _limit(r.chars_per_day),
        datetime.datetime.fromtimestamp(r.created, datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC") if r.created else "",
    ] for r in records]
    write_output(format_table(["NAME", "CHARS/MINUTE", "CHARS/DAY", "CREATED"], rows), None)
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    store = _store(args)
    _run(lambda: store.remove(args.name))
    print(f"key {args.name!r} removed from {store.path}", file=sys.stderr)
    return EXIT_OK
