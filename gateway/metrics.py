"""Prometheus metrics of the gateway, aggregated across gunicorn workers when configured.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py does it before any worker starts)
prometheus_client keeps values in files shared by all workers, and a scrape of any
worker reports the sum; without it, the process's default registry is used.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import psycopg2
from flask import Flask, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.exceptions import RequestEntityTooLarge

from batchcore.db import Database
from batchcore.errors import ConductorUnavailable, Conflict, DatabaseUnavailable, ValidationFailed
from batchcore.runs import overview

from .errors import InvalidJson
from .services import PipelineNotFound

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "gateway_http_requests",
    "HTTP requests answered, by method, URL rule and status code",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "gateway_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and URL rule",
    ["method", "route"],
    # Up to ?wait=30 plus a slow Conductor: the long tail is part of normal operation.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60),
)
RUNS_CREATED = Counter(
    "gateway_runs_created",
    "Outcomes of POST /api/v1/pipeline-runs",
    ["outcome"],
)
RUN_OUTCOMES = (
    "accepted",
    "idempotent_replay",
    "conductor_failed",
    "invalid",
    "pipeline_not_found",
    "conflict",
    "database_unavailable",
    "error",
)
# The outcome of a POST that raised: the first entry whose classes the exception is of.
_FAILED_OUTCOMES = (
    ((ValidationFailed, InvalidJson, RequestEntityTooLarge), "invalid"),
    ((PipelineNotFound,), "pipeline_not_found"),
    ((Conflict,), "conflict"),
    ((ConductorUnavailable,), "conductor_failed"),
    ((DatabaseUnavailable, psycopg2.OperationalError), "database_unavailable"),
)
# Read from the database at each scrape: runs whose status is not confirmed for long.
UNCONFIRMED_RUNS = "gateway_runs_status_unconfirmed"
# A status unconfirmed for this many poll intervals counts: one late sweep is not news.
UNCONFIRMED_AFTER_POLLS = 3
UNCONFIRMED_HELP = (
    "Runs with a Workbench job (SUBMITTED, RUNNING) whose status the Workbench has not"
    f" confirmed for {UNCONFIRMED_AFTER_POLLS} poll intervals (status_checked_at, or"
    " submitted_at when never confirmed)"
)
# Method is a label; anything exotic is folded so clients cannot mint new series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"

for _outcome in RUN_OUTCOMES:
    RUNS_CREATED.labels(_outcome)  # every outcome is exported from the start, at 0


def count_run_outcome(outcome: str) -> None:
    """Count one POST /api/v1/pipeline-runs by how it ended."""
    RUNS_CREATED.labels(outcome).inc()


def outcome_of(exc: Exception) -> str:
    """The outcome label of a POST /api/v1/pipeline-runs that raised `exc`."""
    return next((label for kinds, label in _FAILED_OUTCOMES if isinstance(exc, kinds)), "error")


def register(app: Flask) -> None:
    """Time and count every request; register before auth so 401s are measured too."""

    @app.before_request
    def start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe(response):
        started = g.get("metrics_started")
        method = request.method if request.method in _METHODS else "OTHER"
        # The URL rule, not the raw path: one series per route, not per run id.
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        if started is not None:
            HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)
        return response


def render(unconfirmed_runs: Callable[[], int] | None = None) -> tuple[bytes, str]:
    """The exposition text of every metric, and its content type; `unconfirmed_runs` reads
    the database's gauge at each scrape (left out, and logged, when it cannot)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    if unconfirmed_runs is not None:
        text += _database_gauges(unconfirmed_runs)
    return text, CONTENT_TYPE_LATEST


def unconfirmed_runs(db: Database, poll_interval_seconds: float) -> Callable[[], int]:
    """The reader of the gauge for render(): runs unconfirmed for UNCONFIRMED_AFTER_POLLS."""
    return lambda: overview.count_unconfirmed(db, UNCONFIRMED_AFTER_POLLS * poll_interval_seconds)


def _database_gauges(unconfirmed_runs: Callable[[], int]) -> bytes:
    # Read at the scrape into a registry of its own: a value from the database is the same
    # whichever worker answers, so it is not one of the workers' multiprocess files.
    try:
        count = unconfirmed_runs()
    except Exception as exc:
        log.warning("metrics: the unconfirmed runs could not be counted: %s", exc)
        return b""
    registry = CollectorRegistry()
    registry.register(_Gauge(UNCONFIRMED_RUNS, UNCONFIRMED_HELP, count))
    return generate_latest(registry)


class _Gauge:
    """One gauge family with one value, for a registry of its own."""

    def __init__(self, name: str, documentation: str, value: float):
        self._family = GaugeMetricFamily(name, documentation, value=value)

    def collect(self):
        yield self._family
