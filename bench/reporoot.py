"""The one way bench/ scripts reach the test helpers in tests/support/.

Scripts run as ``python bench/x.py``, so ``sys.path[0]`` is bench/ and the repository root,
which holds the ``tests`` package (the offline model builders, the local mirror, conftest's
``install_copy_model``), is not importable. A script that needs it calls :func:`put_on_path`
before importing ``tests``::

    import reporoot

    REPO = reporoot.put_on_path()

    from tests.support.randommodel import build_random_model

An explicit call rather than an import side effect, so importing this module changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def put_on_path() -> Path:
    """Add the repository root to ``sys.path`` once, after bench/ itself; return the root."""
    if str(ROOT) not in sys.path:
        sys.path.insert(1, str(ROOT))
    return ROOT
