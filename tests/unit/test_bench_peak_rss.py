"""A poller process of the benchmarks reports its own peak memory, not its parent's."""

from __future__ import annotations

import subprocess
import sys

BALLAST_MB = 300


def test_a_sweeper_started_by_a_big_process_reports_its_own_peak():
    ballast = bytearray(BALLAST_MB * 2**20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1  # resident, not only reserved
    out = subprocess.run(
        [sys.executable, "-c", "from bench import sweeper; print(sweeper.peak_rss_mb())"],
        capture_output=True,
        text=True,
        check=True,
    )
    peak = float(out.stdout)
    assert 0 < peak < BALLAST_MB / 2
    assert len(ballast) == BALLAST_MB * 2**20
