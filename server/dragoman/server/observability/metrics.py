"""Prometheus metrics of one server, in its own registry (tests run many servers in one
process; a shared global registry would refuse the second set of names).

Counters and histograms are updated where things happen (the RPC and HTTP adapters, and the
batcher and registry through :class:`~dragoman.server.observability.hooks.ModelObserver`);
gauges (queues, in-flight documents, loaded models, cache) are read from the service when
scraped, so nothing has to keep them current. Process memory and CPU come from
prometheus_client's process collector (Linux).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0)
SENTENCE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
RATIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)


class Metrics:
    """Every series of one server; also its :class:`ModelObserver`."""

    def __init__(self, service: Any = None, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.grpc_calls = Counter(
            "dragoman_grpc_calls", "gRPC calls finished, by service, method and status code",
            ("service", "method", "code"), registry=r)
        self.grpc_seconds = Histogram(
            "dragoman_grpc_call_duration_seconds", "gRPC call latency in the server",
            ("service", "method"), buckets=LATENCY_BUCKETS, registry=r)
        self.http_requests = Counter(
            "dragoman_http_requests", "HTTP requests finished, by route, method and status",
            ("route", "method", "status"), registry=r)
        self.http_seconds = Histogram(
            "dragoman_http_request_duration_seconds", "HTTP request latency in the server",
            ("route", "method"), buckets=LATENCY_BUCKETS, registry=r)
        self.batch_sentences = Histogram(
            "dragoman_batch_sentences", "sentences per CTranslate2 generate call",
            ("model",), buckets=SENTENCE_BUCKETS, registry=r)
        self.batch_tokens = Histogram(
            "dragoman_batch_source_tokens", "source tokens per CTranslate2 generate call",
            ("model",), buckets=TOKEN_BUCKETS, registry=r)
        self.batch_padding = Histogram(
            "dragoman_batch_padding_ratio", "share of padding in a generate call "
            "(1 - tokens / (sentences x longest))", ("model",), buckets=RATIO_BUCKETS, registry=r)
        self.batch_seconds = Histogram(
            "dragoman_batch_duration_seconds", "time of one CTranslate2 generate call",
            ("model",), buckets=LATENCY_BUCKETS, registry=r)
        self.source_tokens = Counter(
            "dragoman_source_tokens", "source tokens decoded", ("model",), registry=r)
        self.output_tokens = Counter(
            "dragoman_output_tokens", "tokens generated (rate() = decoded tokens per second)",
            ("model",), registry=r)
        self.model_loads = Counter(
            "dragoman_model_loads", "model loads into memory", ("model",), registry=r)
        self.model_load_seconds = Gauge(
            "dragoman_model_load_duration_seconds", "time the last load of the model took",
            ("model",), registry=r)
        if service is not None:
            r.register(ServiceCollector(service))
        if process:
            ProcessCollector(registry=r)

    # -- ModelObserver ------------------------------------------------------------------

    def batch_done(self, model: str, sentences: int, source_tokens: int, padded_tokens: int,
                   output_tokens: int, seconds: float) -> None:
        self.batch_sentences.labels(model).observe(sentences)
        self.batch_tokens.labels(model).observe(source_tokens)
        self.batch_padding.labels(model).observe(
            1.0 - source_tokens / padded_tokens if padded_tokens else 0.0)
        self.batch_seconds.labels(model).observe(seconds)
        self.source_tokens.labels(model).inc(source_tokens)
        self.output_tokens.labels(model).inc(output_tokens)

    def model_loaded(self, model: str, seconds: float) -> None:
        self.model_loads.labels(model).inc()
        self.model_load_seconds.labels(model).set(seconds)

    # -- adapters -----------------------------------------------------------------------

    def grpc_call(self, service: str, method: str, code: str, seconds: float) -> None:
        self.grpc_calls.labels(service, method, code).inc()
        self.grpc_seconds.labels(service, method).observe(seconds)

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_seconds.labels(route, method).observe(seconds)

    def exposition(self) -> bytes:
        """The text format, for a /metrics response (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)


class ServiceCollector(Collector):
    """Gauges and counters read from the service at scrape time."""

    def __init__(self, service: Any) -> None:
        self._service = service

    def describe(self) -> Iterable[Metric]:
        return []  # names are only known at collect time (one set per model)

    def collect(self) -> Iterator[Metric]:
        service = self._service
        in_flight = GaugeMetricFamily("dragoman_documents_in_flight",
                                      "documents being processed (the --max-in-flight bound)")
        count = service.in_flight  # a property of the service
        in_flight.add_metric([], count() if callable(count) else count)
        yield in_flight
        cache = service.cache
        hits = CounterMetricFamily("dragoman_cache_hits", "sentence cache hits")
        hits.add_metric([], cache.stats.hits)
        misses = CounterMetricFamily("dragoman_cache_misses", "sentence cache misses")
        misses.add_metric([], cache.stats.misses)
        entries = GaugeMetricFamily("dragoman_cache_entries", "sentences in the cache")
        entries.add_metric([], len(cache))
        yield from (hits, misses, entries)

        state = GaugeMetricFamily("dragoman_model_loaded",
                                  "1 when the model is in memory, 0 when installed but not",
                                  labels=("model", "task"))
        for model in service.model_states():
            if model.installed:
                state.add_metric([model.name, model.task], 1.0 if model.loaded else 0.0)
        yield state
        queue = GaugeMetricFamily("dragoman_model_queued_sentences",
                                  "sentences waiting for a generate call", labels=("model",))
        rate = GaugeMetricFamily(
            "dragoman_model_decode_rate_tokens_per_second",
            "source tokens decoded per second, all replicas, measured on recent calls",
            labels=("model",))
        dropped = CounterMetricFamily(
            "dragoman_model_sentences_dropped", "sentences dropped before decoding",
            labels=("model", "reason"))
        refused = CounterMetricFamily(
            "dragoman_model_calls_refused", "calls refused by the batcher (RESOURCE_EXHAUSTED)",
            labels=("model", "reason"))
        for name, batcher in service.batchers():
            queue.add_metric([name], batcher.queued())
            per_worker = batcher.rate.per_second()
            if per_worker is not None:
                rate.add_metric([name], per_worker * max(1, batcher.options.workers))
            s = batcher.stats
            dropped.add_metric([name, "deadline"], s.expired)
            dropped.add_metric([name, "cancelled"], s.cancelled)
            refused.add_metric([name, "queue_full"], s.rejected)
            refused.add_metric([name, "deadline_out_of_reach"], getattr(s, "late", 0))
        yield from (queue, rate, dropped, refused)
