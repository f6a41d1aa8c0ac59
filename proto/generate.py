"""Regenerate (or, with --check, verify) the Python stubs for proto/dragoman/v1.

The stubs are committed under client/dragoman/v1 so that the client imports without
grpcio-tools; this script is the single pinned way to produce them (grpcio-tools is pinned in
pyproject's `dev` extra). `--check` exits 1 when the committed stubs differ from a fresh run.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "client"
PACKAGE = Path("dragoman") / "v1"


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into out_dir and return the generated files relative to it."""
    from grpc_tools import protoc  # imported late: only needed by developers

    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / PACKAGE).glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p.relative_to(out_dir) for p in (out_dir / PACKAGE).glob("*_pb2*.py*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed stubs drift")
    args = parser.parse_args()
    if not args.check:
        for rel in generate(OUT_DIR):
            print(f"wrote {OUT_DIR / rel}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        committed = sorted(p.relative_to(OUT_DIR) for p in (OUT_DIR / PACKAGE).glob("*_pb2*.py*"))
        drift = [str(p) for p in fresh if not (OUT_DIR / p).exists()
                 or not filecmp.cmp(Path(tmp) / p, OUT_DIR / p, shallow=False)]
        drift += [str(p) for p in committed if p not in fresh]
    if drift:
        print("generated stubs drift from proto/; run `python proto/generate.py`:", *drift,
              sep="\n  ", file=sys.stderr)
        return 1
    print("generated stubs match proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
