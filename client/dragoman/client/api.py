"""The Python client of a Dragoman server.

A `Client` owns one gRPC channel, which is thread-safe: share one client between threads rather
than opening one per request. Every method raises only `dragoman.client.errors.DragomanError`
subclasses (client-side validation failures are InvalidArgument, like the server's).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dragoman.client.errors import (
    DragomanError,
    InternalError,
    InvalidArgument,
    Unavailable,
    error_for,
    from_rpc_error,
)
from dragoman.client.results import (
    SUMMARY_METHODS,
    TEXT_FORMATS,
    Detection,
    Languages,
    Summary,
    Translation,
)
from dragoman.v1 import (
    summarisation_pb2,
    summarisation_pb2_grpc,
    translation_pb2,
    translation_pb2_grpc,
)

logger = logging.getLogger(__name__)

DEFAULT_ADDRESS = "localhost:50051"
DEFAULT_TIMEOUT = 60.0
ADDRESS_ENV = "DRAGOMAN_SERVER"
TIMEOUT_ENV = "DRAGOMAN_TIMEOUT"
TOKEN_ENV = "DRAGOMAN_TOKEN"
API_KEY_ENV = "DRAGOMAN_API_KEY"
TLS_ENV = "DRAGOMAN_TLS"
TLS_CA_ENV = "DRAGOMAN_TLS_CA"
# Not DRAGOMAN_TLS_CERT/KEY: those are the server's own certificate (`dragoman serve`).
CLIENT_CERT_ENV = "DRAGOMAN_CLIENT_CERT"
CLIENT_KEY_ENV = "DRAGOMAN_CLIENT_KEY"
# Whole articles travel in one message; gRPC's 4 MiB default is too small for long HTML pages.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_IN_FLIGHT = 64

_T = TypeVar("_T")
_END = object()  # marks the end of the caller's documents


@dataclass(frozen=True)
class TranslateInput:
    """One document for `Client.translate_many`; None fields take the call's defaults."""

    text: str
    id: str = ""
    source: str | None = None
    target: str | None = None
    format: str | None = None
    beam_size: int | None = None
    model: str | None = None
    keep_terms: Sequence[str] | None = None
    glossary: Mapping[str, str] | None = None
    glossary_name: str | None = None
    priority: str | None = None


# Keys accepted in dict documents, mapped to TranslateInput fields (proto names work too).
_DICT_KEYS: dict[str, str] = {
    "text": "text",
    "id": "id",
    "source": "source",
    "source_language": "source",
    "target": "target",
    "target_language": "target",
    "format": "format",
    "beam_size": "beam_size",
    "model": "model",
    "keep_terms": "keep_terms",
    "glossary": "glossary",
    "glossary_name": "glossary_name",
    "priority": "priority",
}


def _terms(keep_terms: Sequence[str] | None, glossary: Mapping[str, str] | None,
           glossary_name: str | None) -> dict[str, Any]:
    """Request fields for do-not-translate terms and glossaries, checked on this side."""
    if isinstance(keep_terms, str):
        raise InvalidArgument("keep_terms must be a list of strings, not one string")
    if glossary is not None and not isinstance(glossary, Mapping):
        raise InvalidArgument("glossary must be a mapping of source term -> target term")
    entries = [translation_pb2.GlossaryEntry(source=s, target=t)
               for s, t in (glossary or {}).items()]
    return {"keep_terms": list(keep_terms or ()), "glossary": entries,
            "glossary_name": glossary_name or ""}


def resolve_timeout(timeout: float | None) -> float:
    """Explicit value, else $DRAGOMAN_TIMEOUT, else 60 s; must be a positive number of seconds."""
    if timeout is None:
        raw = os.environ.get(TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(raw)
        except ValueError:
            raise InvalidArgument(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise InvalidArgument(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def resolve_address(address: str | None) -> str:
    """Explicit address, else $DRAGOMAN_SERVER, else localhost:50051."""
    resolved = address or os.environ.get(ADDRESS_ENV, "").strip() or DEFAULT_ADDRESS
    return resolved


def _read_pem(path: str, what: str) -> bytes:
    try:
        with open(os.path.expanduser(path), "rb") as handle:
            return handle.read()
    except OSError as error:
        raise InvalidArgument(f"cannot read {what} {path}: {error.strerror or error}") from None


def tls_credentials(
    tls: bool | None = None,
    ca: str | None = None,
    cert: str | None = None,
    key: str | None = None,
) -> grpc.ChannelCredentials | None:
    """Channel credentials from files (each None: its environment variable), or None for a
    plaintext channel.

    TLS is on when `tls` is true ($DRAGOMAN_TLS) or any file is given. `ca` ($DRAGOMAN_TLS_CA)
    is the PEM bundle that signed the server's certificate (default: the system's roots);
    `cert` and `key` ($DRAGOMAN_CLIENT_CERT, $DRAGOMAN_CLIENT_KEY) are this client's
    certificate for a server that requires mutual TLS.
    """
    env = os.environ
    ca = ca if ca is not None else env.get(TLS_CA_ENV, "").strip()
    cert = cert if cert is not None else env.get(CLIENT_CERT_ENV, "").strip()
    key = key if key is not None else env.get(CLIENT_KEY_ENV, "").strip()
    if tls is None:
        raw = env.get(TLS_ENV, "").strip().lower()
        if raw not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
            raise InvalidArgument(f"{TLS_ENV}={raw!r} is not a boolean")
        tls = raw in ("1", "true", "yes", "on")
    if not (tls or ca or cert or key):
        return None
    if bool(cert) != bool(key):
        raise InvalidArgument("a client certificate and its key go together (--tls-cert, --tls-key)")
    return grpc.ssl_channel_credentials(
        root_certificates=_read_pem(ca, "TLS CA file") if ca else None,
        private_key=_read_pem(key, "TLS key file") if key else None,
        certificate_chain=_read_pem(cert, "TLS certificate file") if cert else None,
    )


def _text_format(name: str) -> int:
    try:
        return TEXT_FORMATS[name]
    except (KeyError, TypeError):
        raise InvalidArgument(
            f"format must be one of {', '.join(TEXT_FORMATS)}, got {name!r}"
        ) from None


PRIORITIES = ("interactive", "bulk")


def _priority(value: str | None) -> int:
    """The request's scheduling class; None leaves it to the server (interactive for single
    calls, bulk for streams)."""
    if value is None:
        return translation_pb2.PRIORITY_UNSPECIFIED
    if value == "interactive":
        return translation_pb2.PRIORITY_INTERACTIVE
    if value == "bulk":
        return translation_pb2.PRIORITY_BULK
    raise InvalidArgument(f"priority must be one of {', '.join(PRIORITIES)}, got {value!r}")


def _model(value: str | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"model must be a model name (str), got {value!r}")
    return value.strip()


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _build(factory: Callable[..., _T], **fields: Any) -> _T:
    """Construct a protobuf message, reporting wrong field types as InvalidArgument."""
    try:
        return factory(**fields)
    except (TypeError, ValueError) as error:
        raise InvalidArgument(f"bad request field: {error}") from None


class Client:
    """Connection to one Dragoman server (or a load balancer in front of several).

    `timeout` is the default deadline of each unary call in seconds. `api_key` (else
    $DRAGOMAN_API_KEY, else the older `token`/$DRAGOMAN_TOKEN) is sent as
    "authorization: Bearer <key>". TLS: `tls_ca` (the CA of the server's certificate),
    `tls_cert`/`tls_key` (this client's certificate, for mutual TLS) or `tls=True` (system
    roots), each defaulting to its environment variable (see `tls_credentials`); or pass
    ready-made gRPC `credentials`.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        options: Sequence[tuple[str, Any]] = (),
        api_key: str | None = None,
        tls: bool | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        self.address = resolve_address(address)
        self.timeout = resolve_timeout(timeout)
        token = (  # explicit arguments first, then the environment
            api_key or token or os.environ.get(API_KEY_ENV, "").strip()
            or os.environ.get(TOKEN_ENV) or None
        )
        if credentials is None:
            credentials = tls_credentials(tls, tls_ca, tls_cert, tls_key)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        channel_options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            *options,
        ]
        if credentials is not None:
            self._channel = grpc.secure_channel(self.address, credentials, options=channel_options)
        else:
            self._channel = grpc.insecure_channel(self.address, options=channel_options)
        self._translation = translation_pb2_grpc.TranslationServiceStub(self._channel)
        self._summarisation = summarisation_pb2_grpc.SummarisationServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def __repr__(self) -> str:
        return f"Client(address={self.address!r}, timeout={self.timeout!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in progress are cancelled."""
        self._channel.close()

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        deadline = self.timeout if timeout is None else resolve_timeout(timeout)
        try:
            return method(request, timeout=deadline, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        except ValueError as error:  # e.g. the channel was closed
            raise Unavailable(f"cannot call {self.address}: {error}") from error

    def translate(
        self,
        text: str,
        target: str,
        *,
        source: str | None = None,
        format: str = "plain",
        beam_size: int = 0,
        id: str = "",
        model: str | None = None,
        keep_terms: Sequence[str] | None = None,
        glossary: Mapping[str, str] | None = None,
        glossary_name: str | None = None,
        priority: str | None = None,
        timeout: float | None = None,
    ) -> Translation:
        """Translate one document into `target`; the source language is detected when None.

        `model` names the installed model to use when several serve the pair (None: the
        server's choice); an unknown name raises NotFound listing the candidates, a model that
        does not serve the pair InvalidArgument. `keep_terms` come back verbatim (as URLs,
        addresses, @mentions, #hashtags and inline code always do); `glossary` maps source
        terms to the target terms to use, on top of the server's glossary `glossary_name`.
        `priority` "interactive" (the server's default for this call) or "bulk" (decoded after
        interactive work, in the places it leaves free).
        """
        request = _build(
            translation_pb2.TranslateRequest,
            id=id,
            text=text,
            source_language=source or "",
            target_language=target,
            format=_text_format(format),
            beam_size=_count("beam_size", beam_size),
            model=_model(model),
            priority=_priority(priority),
            **_terms(keep_terms, glossary, glossary_name),
        )
        result = Translation.from_proto(self._call(self._translation.Translate, request, timeout))
        if result.error is not None:  # only streams should carry one; never hide it
            raise result.error.exception()
        return result

    def translate_many(
        self,
        docs: Iterable[TranslateInput | Mapping[str, Any] | str],
        target: str | None = None,
        *,
        source: str | None = None,
        format: str = "plain",
        beam_size: int = 0,
        model: str | None = None,
        keep_terms: Sequence[str] | None = None,
        glossary: Mapping[str, str] | None = None,
        glossary_name: str | None = None,
        priority: str | None = None,
        timeout: float | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        on_error: Literal["raise", "yield"] = "raise",
    ) -> Iterator[Translation]:
        """Translate many documents over one stream; results come in completion order.

        Each result carries its document's id; documents without one (and plain strings) get
        their position in `docs` as id. `docs` is read lazily with at most `max_in_flight`
        documents unanswered, so an archive of any size streams in bounded memory. `timeout` is
        a deadline for the whole stream and defaults to none. `priority` defaults to the
        server's choice for streams, "bulk"; "interactive" puts the documents ahead of bulk work.

        A document the server rejects raises its exception ("document '<id>': ...") and ends
        the stream when `on_error="raise"`; with `on_error="yield"` it comes back as a result
        with `error` set and the stream goes on. Exceptions raised by `docs` itself propagate
        unchanged; stopping the iteration early cancels the stream.
        """
        if (
            isinstance(max_in_flight, bool)
            or not isinstance(max_in_flight, int)
            or max_in_flight < 1
        ):
            raise InvalidArgument(
                f"max_in_flight must be a positive integer, got {max_in_flight!r}"
            )
        if on_error not in ("raise", "yield"):
            raise InvalidArgument(f"on_error must be 'raise' or 'yield', got {on_error!r}")
        defaults = TranslateInput(
            text="", source=source, target=target, format=format, beam_size=beam_size,
            model=_model(model), keep_terms=keep_terms, glossary=glossary,
            glossary_name=glossary_name, priority=priority,
        )
        _terms(keep_terms, glossary, glossary_name)
        _priority(priority)
        _text_format(format)
        _count("beam_size", beam_size)
        deadline = None if timeout is None else resolve_timeout(timeout)
        try:
            doc_iterator = iter(docs)
        except TypeError:
            raise InvalidArgument(f"docs must be iterable, got {type(docs).__name__}") from None
        return self._stream(doc_iterator, defaults, deadline, max_in_flight, on_error == "raise")

    def _stream(
        self,
        doc_iterator: Iterator[TranslateInput | Mapping[str, Any] | str],
        defaults: TranslateInput,
        deadline: float | None,
        max_in_flight: int,
        raise_errors: bool,
    ) -> Iterator[Translation]:
        stream = _RequestStream(doc_iterator, defaults, max_in_flight)
        try:
            responses = self._translation.TranslateStream(
                iter(stream), timeout=deadline, metadata=self._metadata
            )
        except ValueError as error:
            raise Unavailable(f"cannot call {self.address}: {error}") from error
        stream.on_failure = responses.cancel
        received = 0
        try:
            for response in responses:
                received += 1
                stream.answered()
                result = Translation.from_proto(response)
                if raise_errors and result.error is not None:
                    raise error_for(
                        result.error.code, f"document {result.id!r}: {result.error.message}"
                    )
                yield result
        except grpc.RpcError as error:
            if stream.failure is not None:
                raise stream.failure from None
            raise from_rpc_error(error) from error
        finally:
            stream.close()
            responses.cancel()
        if stream.failure is not None:
            raise stream.failure
        if not stream.exhausted or received != stream.sent:
            raise InternalError(
                f"the server ended the stream after answering {received} of "
                f"{stream.sent}{'' if stream.exhausted else '+'} documents"
            )

    def detect(self, text: str, *, timeout: float | None = None) -> Detection:
        """Identify the language of `text`."""
        request = _build(translation_pb2.DetectLanguageRequest, text=text)
        return Detection.from_proto(self._call(self._translation.DetectLanguage, request, timeout))

    def languages(self, *, timeout: float | None = None) -> Languages:
        """List the translation pairs, summarisation languages and installed models."""
        request = translation_pb2.ListLanguagesRequest()
        return Languages.from_proto(self._call(self._translation.ListLanguages, request, timeout))

    def summarise(
        self,
        text: str,
        *,
        target: str | None = None,
        language: str | None = None,
        method: str = "auto",
        max_sentences: int = 0,
        max_words: int = 0,
        format: str = "plain",
        id: str = "",
        model: str | None = None,
        priority: str | None = None,
        timeout: float | None = None,
    ) -> Summary:
        """Summarise `text` (language detected when None), translated into `target` if given.

        `model` names the abstractive summariser to use (implying the abstractive method);
        None lets the server choose. `priority`: "interactive" (default) or "bulk".
        """
        try:
            method_value = SUMMARY_METHODS[method]
        except (KeyError, TypeError):
            raise InvalidArgument(
                f"method must be one of {', '.join(SUMMARY_METHODS)}, got {method!r}"
            ) from None
        request = _build(
            summarisation_pb2.SummariseRequest,
            id=id,
            text=text,
            language=language or "",
            target_language=target or "",
            method=method_value,
            max_sentences=_count("max_sentences", max_sentences),
            max_words=_count("max_words", max_words),
            format=_text_format(format),
            model=_model(model),
            priority=_priority(priority),
        )
        return Summary.from_proto(self._call(self._summarisation.Summarise, request, timeout))

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """Status from the standard gRPC health service: "SERVING", "NOT_SERVING", ...

        `service` "" asks about the server as a whole; an unknown service raises NotFound.
        """
        request = health_pb2.HealthCheckRequest(service=service)
        response = self._call(self._health.Check, request, timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_ready(
        self, timeout: float = 30.0, *, service: str = "", interval: float = 0.2
    ) -> None:
        """Poll the health service until it reports SERVING, e.g. while the server loads models.

        Raises Unavailable when the server is still not serving after `timeout` seconds; other
        errors (such as NotFound for an unknown service) are raised at once.
        """
        limit = resolve_timeout(timeout)
        give_up = time.monotonic() + limit
        last = "no answer"
        while True:
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                raise Unavailable(f"{self.address} not serving after {limit:g} s (last: {last})")
            try:
                status = self.health(service, timeout=min(remaining, max(interval, 1.0)))
            except DragomanError as error:
                if error.code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                    raise
                last = error.details.splitlines()[0] if error.details else error.code
            else:
                if status == "SERVING":
                    return
                last = status
            time.sleep(max(0.0, min(interval, give_up - time.monotonic())))


class _RequestStream:
    """Feeds TranslateStream from the caller's documents, at most `max_in_flight` unanswered.

    gRPC pulls requests on its own thread; this object blocks that thread while the window is
    full, and records a bad document as `failure` (cancelling the call) instead of letting gRPC
    log a traceback and report a vague UNKNOWN.
    """

    def __init__(
        self,
        docs: Iterator[TranslateInput | Mapping[str, Any] | str],
        defaults: TranslateInput,
        max_in_flight: int,
    ) -> None:
        self._docs = docs
        self._defaults = defaults
        self._max_in_flight = max_in_flight
        self._condition = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self.sent = 0
        self.exhausted = False
        self.failure: BaseException | None = None
        self.on_failure: Callable[[], Any] = lambda: None

    def __iter__(self) -> Iterator[translation_pb2.TranslateRequest]:
        try:
            index = 0
            while True:
                # Take a slot before reading the next document, so no more than
                # max_in_flight documents are ever out of the caller's iterator unanswered.
                with self._condition:
                    while self._in_flight >= self._max_in_flight and not self._closed:
                        self._condition.wait()
                    if self._closed:
                        return
                    self._in_flight += 1
                doc = next(self._docs, _END)
                if doc is _END:
                    self.exhausted = True
                    return
                request = _request_for(cast("TranslateInput | Mapping[str, Any] | str", doc), index, self._defaults)
                index += 1
                self.sent += 1
                yield request
        except GeneratorExit:
            raise
        except BaseException as error:  # handed to the consuming thread, which re-raises it
            self.failure = error
            self.on_failure()

    def answered(self) -> None:
        with self._condition:
            self._in_flight -= 1
            self._condition.notify()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()


def _request_for(
    doc: TranslateInput | Mapping[str, Any] | str, index: int, defaults: TranslateInput
) -> translation_pb2.TranslateRequest:
    if isinstance(doc, str):
        item = TranslateInput(text=doc)
    elif isinstance(doc, TranslateInput):
        item = doc
    elif isinstance(doc, Mapping):
        unknown = sorted(str(k) for k in doc if k not in _DICT_KEYS)
        if unknown:
            raise InvalidArgument(f"document {index}: unknown keys {unknown}")
        if "text" not in doc:
            raise InvalidArgument(f"document {index}: no 'text'")
        item = TranslateInput(**{_DICT_KEYS[k]: v for k, v in doc.items()})
    else:
        raise InvalidArgument(
            f"document {index}: expected TranslateInput, dict or str, got {type(doc).__name__}"
        )
    target = item.target or defaults.target
    if not target:
        raise InvalidArgument(f"document {index}: no target language")
    text_format = item.format if item.format is not None else defaults.format
    beam_size = item.beam_size if item.beam_size is not None else defaults.beam_size
    return _build(
        translation_pb2.TranslateRequest,
        id=str(item.id) if item.id not in ("", None) else str(index),
        text=item.text,
        source_language=item.source or defaults.source or "",
        target_language=target,
        format=_text_format(text_format or "plain"),
        beam_size=_count("beam_size", beam_size or 0),
        model=_model(item.model if item.model is not None else defaults.model),
        priority=_priority(item.priority if item.priority is not None else defaults.priority),
        **_terms(
            item.keep_terms if item.keep_terms is not None else defaults.keep_terms,
            item.glossary if item.glossary is not None else defaults.glossary,
            item.glossary_name if item.glossary_name is not None else defaults.glossary_name,
        ),
    )
