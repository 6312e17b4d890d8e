"""`python -m chaos [scenario ...] [--repeat N]`: fault scenarios against the running stack.

Updates bench/results/chaos.json, a flat object: each scenario's figures under its name
(summed over its rounds, `<scenario>.rounds`, `<scenario>.ran_at`), scenarios not run this
time kept as they were, and the totals (runs_accepted, runs_terminal, runs_lost,
duplicate_workbench_jobs, workflows_left_running, faults_injected) over all of them.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from . import results
from .harness import Stack
from .scenarios import SCENARIOS


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"any of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--repeat", type=_positive, default=1, metavar="N", help="rounds of each scenario"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    names = list(dict.fromkeys(args.scenarios)) or list(SCENARIOS)
    stack = Stack()
    ran: dict[str, dict] = {}
    for name in names:
        rounds = []
        ran_at = datetime.now(UTC).isoformat(timespec="seconds")
        for round_number in range(1, args.repeat + 1):
            title = SCENARIOS[name].__doc__.splitlines()[0]
            print(f"== {name} (round {round_number}/{args.repeat}): {title}", flush=True)
            started = time.monotonic()
            try:
                result = SCENARIOS[name](stack)
            finally:
                stack.clear_faults()
            result["seconds"] = round(time.monotonic() - started)
            rounds.append(result)
            print("   " + ", ".join(f"{k}={v}" for k, v in result.items()), flush=True)
        ran[name] = {**results.combine_rounds(rounds), "ran_at": ran_at}
    figures = results.merge(results.read(), ran)
    path = results.write(figures)
    this_time = results.merge({}, ran)
    print(f"\n{'figure':<28} {'this run':>9} {'in the file':>12}")
    for key in results.TOTALS:
        print(f"{key:<28} {this_time[key]:>9} {figures[key]:>12}")
    print(f"written to {path} (scenarios: {figures['scenarios']})")
    return 0 if results.verdict_ok(this_time) else 1


if __name__ == "__main__":
    sys.exit(main())
