"""bench/results/chaos.json: one flat object, each scenario's figures under its name, totals."""

# A run of some scenarios replaces only their keys; the totals are recomputed over every
# scenario the file holds.

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "chaos.json"
# Each total and the scenario figure it sums (webhook_receiver_down's `out_of_order` is named
# as issue 15 names it; its total says what is out of order).
TOTALS = {
    "runs_accepted": "runs_accepted",
    "runs_terminal": "runs_terminal",
    "runs_lost": "runs_lost",
    "duplicate_workbench_jobs": "duplicate_workbench_jobs",
    "workflows_left_running": "workflows_left_running",
    "faults_injected": "faults_injected",
    "notifications_lost": "notifications_lost",
    "notifications_out_of_order": "out_of_order",
    "jobs_left_running": "jobs_left_running",
}
# Figures that are a worst case, not a count: the rounds' largest is kept, not their sum.
WORST_CASE = ("slowest_answer_s",)


def flat(result: dict, prefix: str = "") -> dict:
    """Nested figures as dotted keys, so the results file stays one flat object."""
    figures = {}
    for key, value in result.items():
        if isinstance(value, dict):
            figures.update(flat(value, f"{prefix}{key}."))
        else:
            figures[f"{prefix}{key}"] = value
    return figures


def combine_rounds(rounds: list[dict]) -> dict:
    """One scenario's figures over its rounds: numbers summed (worst cases: the largest);
    anything else as the last round had it; `rounds` is how many there were."""
    combined: dict = {}
    for result in (flat(r) for r in rounds):
        for key, value in result.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if key not in combined or not number:
                combined[key] = value
            elif key.rsplit(".", 1)[-1] in WORST_CASE:
                combined[key] = max(combined[key], value)
            else:
                combined[key] += value
    combined["rounds"] = len(rounds)
    return combined


def scenarios_in(figures: dict) -> list[str]:
    """The scenarios a results object holds (each has a `<name>.rounds` or `.runs_accepted`)."""
    names = {
        key.split(".", 1)[0]
        for key in figures
        if key.endswith((".rounds", ".runs_accepted")) and key.count(".") == 1
    }
    return sorted(names)


def merge(previous: dict, ran: dict[str, dict]) -> dict:
    """`previous` with the scenarios in `ran` replaced whole, and the totals recomputed."""
    figures = {
        key: value
        for key, value in previous.items()
        if "." in key and key.split(".", 1)[0] not in ran
    }
    for name, result in ran.items():
        figures.update({f"{name}.{key}": value for key, value in result.items()})
    names = scenarios_in(figures)
    for total, figure in TOTALS.items():
        figures[total] = sum(figures.get(f"{name}.{figure}", 0) for name in names)
    figures["scenarios"] = ",".join(names)
    return dict(sorted(figures.items()))


def read(path: Path | None = None) -> dict:
    """The results file as it is, or empty when there is none (or it is not readable JSON)."""
    try:
        previous = json.loads((path or RESULTS).read_text())
    except (OSError, ValueError):
        return {}
    return previous if isinstance(previous, dict) else {}


def write(figures: dict, path: Path | None = None) -> Path:
    path = path or RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return path


def verdict_ok(figures: dict) -> bool:
    """No run lost or duplicated, no ended run's workflow left running in Conductor, no
    notification lost or delivered out of its run's order, and no Workbench job left running
    against its run's outcome (cancel_races)."""
    return all(
        figures.get(key, 0) == 0
        for key in (
            "runs_lost",
            "duplicate_workbench_jobs",
            "workflows_left_running",
            "notifications_lost",
            "notifications_out_of_order",
            "jobs_left_running",
        )
    )
