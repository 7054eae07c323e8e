"""Prometheus metrics of one server (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("llmkit_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=r)
        self.prompt_tokens = Counter("llmkit_prompt_tokens", "prompt tokens of accepted requests", registry=r)
        self.generation_tokens = Counter("llmkit_generation_tokens", "tokens generated", registry=r)
        self.time_to_first_token = Histogram("llmkit_time_to_first_token_seconds", "request arrival to first token",
                                             buckets=LATENCY_BUCKETS, registry=r)
        self.inter_token_latency = Histogram("llmkit_inter_token_latency_seconds", "time between a request's tokens",
                                             buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("llmkit_queue_depth", "requests waiting for the engine", registry=r)
        self.running = Gauge("llmkit_running_requests", "requests the engine is computing", registry=r)
        self.in_flight = Gauge("llmkit_in_flight_requests", "requests accepted and not yet answered", registry=r)
        self.kv_cache_usage = Gauge("llmkit_kv_cache_usage_ratio", "fraction of KV blocks in use", registry=r)
        self.prefix_hit_rate = Gauge("llmkit_prefix_cache_hit_rate", "prefix-cache hit tokens / prompt tokens", registry=r)

    def render(self, engine_stats: dict) -> bytes:
        self.queue_depth.set(engine_stats["waiting"])
        self.running.set(engine_stats["running"])
        self.kv_cache_usage.set(engine_stats["kv_cache_usage"])
        self.prefix_hit_rate.set(engine_stats["prefix_cache_hit_rate"])
        return generate_latest(self.registry)
