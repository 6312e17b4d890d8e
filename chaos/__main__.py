"""`python -m chaos [scenario ...]`: fault scenarios against the running stack.

Writes bench/results/chaos.json: a flat object with the totals (runs_accepted, runs_terminal,
runs_lost, duplicate_workbench_jobs, faults_injected) and each scenario's figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .harness import Stack
from .scenarios import SCENARIOS

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "chaos.json"
TOTALS = (
    "runs_accepted",
    "runs_terminal",
    "runs_lost",
    "duplicate_workbench_jobs",
    "faults_injected",
)


def _flat(result: dict, prefix: str = "") -> dict:
    """Nested figures as dotted keys, so the results file stays one flat object."""
    flat = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"any of {', '.join(SCENARIOS)} (default: all)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    names = args.scenarios or list(SCENARIOS)
    stack = Stack()
    figures: dict[str, object] = dict.fromkeys(TOTALS, 0)
    for name in names:
        print(f"== {name}: {SCENARIOS[name].__doc__.splitlines()[0]}", flush=True)
        started = time.monotonic()
        try:
            result = SCENARIOS[name](stack)
        finally:
            stack.clear_faults()
        result["seconds"] = round(time.monotonic() - started)
        for key in TOTALS:
            figures[key] += result.get(key, 0)
        for key, value in _flat(result).items():
            figures[f"{name}.{key}"] = value
        print("   " + ", ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"\n{'figure':<28} value")
    for key in TOTALS:
        print(f"{key:<28} {figures[key]}")
    print(f"written to {RESULTS}")
    ok = figures["runs_lost"] == 0 and figures["duplicate_workbench_jobs"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
