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
SWEEPS_ABORTED = Counter(
    "poller_sweeps_aborted_total",
    "poll_status sweeps that ended with an error (a lost database, a bug); one run's bad "
    "answer never aborts a sweep",
)
WRITE_FALLBACKS = Counter(
    "poller_batch_write_fallbacks_total",
    "Batches whose one-statement write failed and were written run by run",
)
UNWRITABLE_OUTCOMES = Counter(
    "poller_unwritable_outcomes_total",
    "Runs whose poll outcome could not be written even alone (failure recorded, polled later)",
)
RUNS_DEFERRED = Counter(
    "poller_runs_deferred_total",
    "Claimed runs not asked because the batch's deadline (lease, sweep budget) came first",
)
RUNS_GIVEN_UP = Counter(
    "poller_runs_given_up_total",
    "Runs ended FAILED because the Workbench's answers gave no usable status (by kind)",
    ["kind"],
)
