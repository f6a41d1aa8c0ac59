"""`--local`: translate, summarise and detect in this process, with no server.

``LocalClient`` has the methods of ``dragoman.client.Client`` the remote commands use and
returns the same result dataclasses, so a command prints the same thing either way. It builds
the model layer as ``dragoman serve`` would (same ``DRAGOMAN_*`` settings, models from
``--models``), loads only the models a call needs, and frees them on close.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dragoman.client.cli.common import CliError, UsageError
from dragoman.client.results import Detection, LanguageScore, Summary, Translation

if TYPE_CHECKING:
    from dragoman.server.service import Dragoman

MODELS_HELP = "with --local: model store folder (default: $DRAGOMAN_MODELS, else the per-user " \
              "data folder)"


def add_local_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--local", action="store_true",
        help="run the models in this process instead of asking a server (no `dragoman serve`)",
    )
    parser.add_argument("--models", metavar="DIR", help=MODELS_HELP)


@contextmanager
def _errors() -> Iterator[None]:
    """Model-layer errors as the CLI's: the user's mistakes exit 2, the rest 1."""
    from dragoman.server.errors import (
        DragomanError,
        GlossaryNotFound,
        InvalidInput,
        ModelNotFound,
    )

    try:
        yield
    except (InvalidInput, ModelNotFound, GlossaryNotFound) as error:
        raise UsageError(str(error)) from None
    except DragomanError as error:
        raise CliError(f"{error} ({error.code})") from None


class LocalClient:
    """The model layer behind the client's call signatures; use as a context manager."""

    def __init__(self, models: str | None) -> None:
        import os

        # numpy's BLAS threads fight CTranslate2's for the cores (as in `serve`).
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        from dragoman.server.build import build_service
        from dragoman.server.config import load_config

        with _errors():
            config = load_config({"models": models, "http_address": "off"})
            config.check_models_dir()
            self._service: Dragoman = build_service(config)

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._service.close(timeout=5.0)

    def translate(
        self, text: str, target: str, *, source: str | None = None, format: str = "plain",
        beam_size: int = 0, id: str = "", model: str | None = None,
        keep_terms: Sequence[str] | None = None, glossary: Mapping[str, str] | None = None,
        glossary_name: str | None = None, **_: Any,
    ) -> Translation:
        from dragoman.server.service import TranslateInput
        from dragoman.server.text.segment import TextFormat

        with _errors():
            out = self._service.translate(TranslateInput(
                text=text, target_language=target, source_language=source or "",
                format=TextFormat(format), beam_size=beam_size, id=id, model=model or "",
                keep_terms=tuple(keep_terms or ()), glossary=tuple((glossary or {}).items()),
                glossary_name=glossary_name or "",
            )).result()
        return Translation(
            id=out.id, text=out.text, source_language=out.source_language,
            target_language=out.target_language, model=out.model, models=out.models,
            pivot_language=out.pivot_language or None, detected=out.detected,
            sentences=out.sentences, cached_sentences=out.cached_sentences,
        )

    def summarise(
        self, text: str, *, target: str | None = None, language: str | None = None,
        method: str = "auto", max_sentences: int = 0, max_words: int = 0,
        format: str = "plain", id: str = "", model: str | None = None, **_: Any,
    ) -> Summary:
        from dragoman.server.service import SummariseInput
        from dragoman.server.text.segment import TextFormat

        with _errors():
            out = self._service.summarise(SummariseInput(
                text=text, language=language or "", target_language=target or "",
                method=method, max_sentences=max_sentences, max_words=max_words,
                format=TextFormat(format), id=id, model=model or "",
            )).result()
        return Summary(
            id=out.id, summary=out.summary, language=out.language,
            target_language=out.target_language, method=out.method, model=out.model,
            models=out.models, passes=out.passes, sentences=out.sentences,
        )

    def detect(self, text: str, **_: Any) -> Detection:
        with _errors():
            found = self._service.detect(text)
        return Detection(
            language=found.language, confidence=found.confidence,
            candidates=tuple(LanguageScore(c.language, c.confidence) for c in found.candidates),
        )


def client_for(args: argparse.Namespace) -> Any:
    """A ``LocalClient`` for --local, else a client of the server the flags name."""
    from dragoman.client.cli.common import make_client

    return LocalClient(args.models) if getattr(args, "local", False) else make_client(args)
