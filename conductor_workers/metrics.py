"""Prometheus metrics of the worker processes (multiprocess mode; the service aggregates)."""

from prometheus_client import Counter, Histogram

SWEEPS = Counter("poller_sweeps_total", "poll_status sweeps finished")
SWEEP_SECONDS = Histogram(
    "poller_sweep_duration_seconds",
    "Duration of one sweep",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
RUNS_POLLED = Counter("poller_runs_polled_total", "Runs whose Workbench status was asked")
TRANSITIONS = Counter(
    "poller_transitions_total", "Run status changes recorded by the poller", ["status"]
)
WORKBENCH_ERRORS = Counter(
    "poller_workbench_errors_total", "Failed Workbench status calls", ["kind"]
)
