"""The table printed at the end and the flat JSON written to bench/results/latest.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

# name, goal text, check, what it is compared with (a format over the results)
FIGURES = [
    (
        "gateway_accept_ratio",
        ">= 0.8",
        lambda v, r: v >= 0.8,
        "{gateway_accepts_per_second:.1f}/s through the gateway vs "
        "{direct_starts_per_second:.1f}/s straight to Conductor, {gateway_concurrency} conn.",
    ),
    (
        "gateway_cpu_ms_per_accept",
        "<= 1.5",
        lambda v, r: v <= 1.5,
        "rounds {gateway_cpu_ms_per_accept_rounds}; in process "
        "{gateway_in_process_cpu_ms_per_accept:.2f} ms; Conductor "
        "{cpu_ms_per_request_gateway_conductor:.2f}, PostgreSQL "
        "{cpu_ms_per_request_gateway_postgres:.2f} ms per accept",
    ),
    (
        "gateway_db_round_trips_per_accept",
        "<= 3",
        lambda v, r: v <= 3,
        "{gateway_db_statements_per_accept:.0f} statements, "
        "{gateway_db_transactions_per_accept:.0f} transactions; "
        "{gateway_db_round_trips_per_accept_before} before",
    ),
    (
        "gateway_p99_overhead_ms",
        "<= 10",
        lambda v, r: v <= 10,
        "p99 {gateway_p99_ms:.0f} ms vs {direct_p99_ms:.0f} ms at "
        "{gateway_fixed_rate_per_second:.1f}/s (70 % of direct max)",
    ),
    (
        "gateway_p99_overhead_ms_at_own_70pct",
        "(context)",
        None,
        "p99 {gateway_p99_ms_at_own_70pct:.0f} ms vs {direct_p99_ms_at_own_70pct:.0f} ms at "
        "{gateway_own_70pct_rate_per_second:.1f}/s (70 % of the gateway's max)",
    ),
    (
        "sweep_vs_bare_ratio",
        "<= 2.0",
        lambda v, r: v <= 2.0,
        "{sweep_seconds:.2f} s vs {bare_seconds:.2f} s for {sweep_runs} runs "
        "({sweep_changed} change status)",
    ),
    (
        "sweep_db_round_trips",
        "<= 2*ceil(N/batch)+5",
        lambda v, r: v <= r["sweep_db_round_trips_goal"],
        "goal {sweep_db_round_trips_goal} for {sweep_runs} runs, batch {sweep_batch_size}; "
        "bare loop {bare_db_round_trips}",
    ),
    (
        "detection_p95_minus_interval_s",
        "<= 1.0",
        lambda v, r: v <= 1.0,
        "p95 {detection_p95_s:.2f} s after the job's end, poll interval "
        "{poll_interval_seconds} s, {latency_samples} runs",
    ),
    (
        "submit_p95_vs_noop_workflow_ratio",
        "<= 1.5",
        lambda v, r: v <= 1.5,
        "p95 {submit_p95_s:.3f} s vs {noop_workflow_p95_s:.3f} s (1 task); "
        "2-task no-op {noop2_workflow_p95_s:.3f} s: x{submit_p95_vs_noop2_workflow_ratio:.2f}",
    ),
    (
        "submit_p95_vs_noop_2task_ratio",
        "<= 1.2",
        lambda v, r: v <= 1.2,
        "p95 {submit_latency_p95_s:.3f} s vs {submit_noop_2task_p95_s:.3f} s (2-task no-op); "
        "1-task {submit_noop_1task_p95_s:.3f} s: x{submit_p95_vs_noop_1task_ratio:.2f}; "
        "2-task held as the SDK asks {submit_noop_2task_sdk_hold_p95_s:.3f} s",
    ),
    (
        "burst_submit_ratio",
        "<= 1.2",
        lambda v, r: v <= 1.2,
        "{burst_submit_all_s:.1f} s until {burst_runs} runs SUBMITTED vs "
        "{burst_noop2_all_s:.1f} s until {burst_runs} 2-task no-ops completed",
    ),
    (
        "burst_submitted_per_s",
        "reported",
        None,
        "accepted in {burst_accept_s:.1f} s by {burst_client_threads} client threads; "
        "no-ops {burst_noop2_per_s:.1f}/s",
    ),
    (
        "notification_delay_p95_s",
        "<= 3",
        lambda v, r: v <= 3.0,
        "median {notification_delay_median_s:.2f} s, {notification_samples} changes to a "
        "loopback receiver; notifier loop every {notification_loop_interval_seconds} s, "
        "poll interval {notification_poll_interval_seconds} s",
    ),
    (
        "poller_scaling_2_vs_1",
        ">= 1.6",
        lambda v, r: v >= 1.6,
        "{poller_scaling_2_runs_per_second:.0f} vs {poller_scaling_1_runs_per_second:.0f} "
        "runs/s, status +{poller_scaling_status_delay_ms:.0f} ms; machine "
        "{poller_scaling_machine_busy_2:.0%} busy with two",
    ),
    (
        "poller_scaling_2_vs_1_at_100ms",
        "(context)",
        None,
        "{poller_100ms_2_runs_per_second:.0f} vs {poller_100ms_1_runs_per_second:.0f} "
        "runs/s, status +100 ms: not short of CPU",
    ),
    (
        "poller_scaling_conductor_2_vs_1",
        ">= 1.6",
        lambda v, r: v >= 1.6,
        "{poller_scaling_conductor_2_runs_per_second:.0f} vs "
        "{poller_scaling_conductor_1_runs_per_second:.0f} runs/s, two poller services vs one "
        "fed by Conductor, {poller_scaling_conductor_runs} runs, status +100 ms",
    ),
    (
        "poller_scaling_direct_2_vs_1_at_100ms",
        "(context)",
        None,
        "{poller_direct_100ms_2_runs_per_second:.0f} vs "
        "{poller_direct_100ms_1_runs_per_second:.0f} runs/s, sweep() called directly, same runs",
    ),
    (
        "list_p95_scale_ratio",
        "<= 1.5",
        lambda v, r: v <= 1.5,
        "worst {list_p95_scale_ratio_worst}, {scale_runs} runs vs {scale_runs_small}",
    ),
    (
        "get_run_p95_scale_ratio",
        "<= 1.5",
        lambda v, r: v <= 1.5,
        "p95 {scale_get_run_p95_ms:.2f} ms vs {scale_get_run_p95_ms_small:.2f} ms",
    ),
    (
        "claim_scale_ratio",
        "<= 1.5",
        lambda v, r: v <= 1.5,
        "p95 {scale_claim_due_runs_p95_ms:.2f} ms vs {scale_claim_due_runs_p95_ms_small:.2f} ms, "
        "{scale_active_runs} active runs vs {scale_active_runs_small}",
    ),
    (
        "reconcile_scale_ratio",
        "<= 1.5",
        lambda v, r: v <= 1.5,
        "worst {reconcile_scale_ratio_worst}",
    ),
    (
        "wal_bytes_per_poll",
        "reported",
        None,
        "write-back of an unchanged run; full-page images {wal_fpi_bytes_per_poll:.0f} B apart",
    ),
    (
        "poller_rss_scale_ratio",
        "<= 1.2",
        lambda v, r: v <= 1.2,
        "{poller_rss_mb_scale_big:.0f} MiB vs {poller_rss_mb_scale_small:.0f} MiB, sweeping "
        "{poller_rss_scale_runs_big} active runs vs {poller_rss_scale_runs_small}",
    ),
    (
        "gateway_rss_mb",
        "reported",
        None,
        "gunicorn master + 2 workers, peak (VmHWM), {sweep_runs} active runs",
    ),
    (
        "poller_rss_mb",
        "reported",
        None,
        "one poller process, peak (VmHWM), sweeping {poller_scaling_runs} active runs",
    ),
]


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table(results: dict) -> str:
    """A readable table of the figures, their goals and their baselines."""
    rows = [("figure", "value", "goal", "met", "measured against (same run)")]
    for name, goal, check, detail in FIGURES:
        if name not in results:
            rows.append((name, "not measured", goal, "", ""))
            continue
        value = results[name]
        met = "" if check is None else ("yes" if check(value, results) else "NO")
        try:
            text = detail.format(**results)
        except (KeyError, ValueError):
            text = ""
        rows.append((name, _fmt(value), goal, met, text))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*cells, row[4]]))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 30)
    context = (
        f"{results.get('mode')} run, {results.get('cores')} cores, load generator: "
        f"{results.get('load_generator')}, Conductor {results.get('conductor_version')}, "
        f"PostgreSQL {results.get('postgresql_version')}, {results.get('duration_s', 0):.0f} s"
    )
    return "\n".join([*lines, "", context])


def flatten(results: dict) -> dict:
    """Scalars only: nested values become name_key entries, lists become strings."""
    flat: dict = {}
    for key, value in results.items():
        if isinstance(value, dict):
            for k, v in value.items():
                flat[f"{key}_{k}"] = v
        elif isinstance(value, list | tuple):
            flat[key] = ", ".join(_fmt(v) for v in value)
        elif isinstance(value, float) and math.isnan(value):
            flat[key] = None
        else:
            flat[key] = value
    return flat


def write(results: dict, path: Path, partial: bool = True) -> Path:
    """Update `path` with these results: a partial run (--only) replaces only its own keys,
    a whole run the file (no figure of an older run is left beside its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = json.loads(path.read_text()) if partial and path.exists() else {}
    path.write_text(json.dumps(kept | flatten(results), indent=2, sort_keys=True) + "\n")
    return path
