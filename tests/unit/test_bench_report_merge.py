"""A partial benchmark run (`python -m bench --only …`) updates only its own figures."""

from __future__ import annotations

import json

from bench import report


def test_a_partial_run_replaces_its_own_keys_and_keeps_the_others(tmp_path):
    path = tmp_path / "latest.json"
    report.write({"sweep_vs_bare_ratio": 1.0, "mode": "full", "claim_scale_ratio": 2.0}, path)
    report.write({"claim_scale_ratio": 0.9, "scale": {"runs": 5}}, path)
    assert json.loads(path.read_text()) == {
        "sweep_vs_bare_ratio": 1.0,
        "mode": "full",
        "claim_scale_ratio": 0.9,
        "scale_runs": 5,
    }


def test_a_whole_run_replaces_the_file(tmp_path):
    path = tmp_path / "latest.json"
    report.write({"claim_scale_ratio": 2.0, "scale_phase_git_commit": "old"}, path)
    report.write({"claim_scale_ratio": 0.9}, path, partial=False)
    assert json.loads(path.read_text()) == {"claim_scale_ratio": 0.9}
