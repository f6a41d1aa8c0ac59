"""OpenTelemetry spans, a no-op unless the ``[otel]`` extra is installed.

``span()`` uses whatever tracer provider is set globally; :func:`configure_tracing` sets one
up from the standard ``OTEL_*`` variables (exporter ``otlp`` by default, ``console`` for a
look, ``none`` to switch off) when the SDK is installed and a traces exporter or endpoint is
configured. Without opentelemetry installed every call here costs one cached attribute look-up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

_UNSET: Any = object()
_tracer: Any = _UNSET


def _get_tracer() -> Any:
    global _tracer
    if _tracer is _UNSET:
        try:
            from opentelemetry import trace
        except ImportError:
            _tracer = None
        else:
            _tracer = trace.get_tracer("dragoman")
    return _tracer


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None,
         carrier: Mapping[str, str] | None = None) -> Iterator[Any]:
    """A span named ``name`` (None without opentelemetry). ``carrier`` holds incoming
    headers or metadata whose ``traceparent`` makes the span a child of the caller's."""
    tracer = _get_tracer()
    if tracer is None:
        yield None
        return
    context = None
    if carrier:
        from opentelemetry.propagate import extract

        context = extract(dict(carrier))
    # Not made the current span: a streaming call's body runs across awaits in other
    # contexts, where detaching an attached context fails (and logs an error per call).
    s = tracer.start_span(name, context=context, attributes=dict(attributes or {}))
    try:
        yield s
    except BaseException as exc:
        s.record_exception(exc)
        raise
    finally:
        s.end()


def set_status_error(current: Any, description: str) -> None:
    if current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_status(Status(StatusCode.ERROR, description))


def configure_tracing(env: Mapping[str, str] | None = None) -> bool:
    """Export spans as the ``OTEL_*`` variables say; True when a provider was set up.

    Nothing happens unless the SDK is installed and ``OTEL_TRACES_EXPORTER`` or an OTLP
    endpoint is set (``OTEL_SDK_DISABLED=true`` always wins)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if exporter_name in ("", "none") and not (endpoint and exporter_name == ""):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        logger.warning("OTEL_* tracing is configured but the SDK is missing: "
                       "pip install 'dragoman[otel]'")
        return False
    if exporter_name == "console":
        exporter: Any = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            logger.warning("OTLP trace export needs opentelemetry-exporter-otlp-proto-grpc: "
                           "pip install 'dragoman[otel]'")
            return False
        exporter = OTLPSpanExporter()
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "dragoman")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    logger.info("tracing: spans exported with %s", exporter_name or "otlp")
    return True
