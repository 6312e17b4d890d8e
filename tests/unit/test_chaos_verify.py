"""The chaos verdict: lost, mismatched and duplicated runs and workflows left running are
counted (with a fake stack); results of some scenarios merge into the file."""

from __future__ import annotations

import json

import pytest

from chaos import harness, results


class FakeStack:
    """Rows as the database has them, jobs as the simulator logged them."""

    def __init__(self, rows, jobs, open_workflows=()):
        self.rows, self.jobs, self.open = rows, jobs, set(open_workflows)
        self.asked_about: list[list[str]] = []

    def open_workflows(self, run_ids):
        self.asked_about.append(list(run_ids))
        return self.open & set(run_ids)

    def sql(self, query, params=None, url_key="DATABASE_URL"):
        return [r for r in self.rows if r[0] in params[0]]

    def sim_jobs(self):
        return self.jobs


def job(run_id, status, job_id="wb-1"):
    return {"pipeline_run_id": run_id, "status": status, "job_id": job_id}


def test_agreeing_runs_count_as_terminal_and_not_lost():
    stack = FakeStack(
        rows=[("a", "COMPLETED", "wb-1"), ("b", "FAILED", "wb-2"), ("c", "FAILED", None)],
        jobs={"a": [job("a", "SUCCEEDED")], "b": [job("b", "CANCELLED", "wb-2")]},
    )
    result = harness.verify(stack, ["a", "b", "c"], timeout=0)
    assert result["runs_terminal"] == 3
    assert result["runs_lost"] == 0
    assert result["duplicate_workbench_jobs"] == 0
    assert result["workflows_left_running"] == 0


def test_open_mismatched_and_duplicated_runs_are_counted():
    stack = FakeStack(
        rows=[
            ("a", "RUNNING", "wb-1"),
            ("b", "COMPLETED", "wb-2"),
            ("c", "COMPLETED", "wb-3"),
            ("d", "FAILED", None),
        ],
        jobs={
            "a": [job("a", "RUNNING")],
            "b": [job("b", "FAILED", "wb-2")],
            "c": [job("c", "SUCCEEDED", "wb-3"), job("c", "SUCCEEDED", "wb-4")],
            "d": [job("d", "SUCCEEDED", "wb-5")],
        },
    )
    result = harness.verify(stack, ["a", "b", "c", "d", "missing"], timeout=0)
    assert result["runs_terminal"] == 3
    # a and "missing" never ended; b and d disagree with the simulator's record
    assert result["runs_lost"] == 2 + 2
    assert result["runs_mismatched"] == 2
    assert result["duplicate_workbench_jobs"] == 1


def test_an_ended_run_whose_workflow_still_runs_is_counted_and_open_runs_are_not_asked():
    stack = FakeStack(
        rows=[("a", "COMPLETED", "wb-1"), ("b", "FAILED", None), ("c", "RUNNING", "wb-3")],
        jobs={"a": [job("a", "SUCCEEDED")], "c": [job("c", "RUNNING", "wb-3")]},
        open_workflows={"a", "c"},
    )
    result = harness.verify(stack, ["a", "b", "c"], timeout=0)
    assert result["workflows_left_running"] == 1
    assert stack.asked_about == [["a", "b"]], "only ended runs are checked against Conductor"
    assert not results.verdict_ok(result)


def test_rounds_are_summed_worst_cases_kept_and_counted():
    combined = results.combine_rounds(
        [
            {"runs_accepted": 10, "answers": {"202": 9, "503": 1}, "slowest_answer_s": 2.5},
            {"runs_accepted": 12, "answers": {"202": 12}, "slowest_answer_s": 1.0},
        ]
    )
    assert combined == {
        "runs_accepted": 22,
        "answers.202": 21,
        "answers.503": 1,
        "slowest_answer_s": 2.5,
        "rounds": 2,
    }


def test_a_run_of_some_scenarios_replaces_only_their_keys_and_recomputes_the_totals():
    previous = results.merge(
        {},
        {
            "a": {"runs_accepted": 5, "runs_lost": 1, "answers.500": 2, "rounds": 1},
            "b": {"runs_accepted": 7, "faults_injected": 3, "rounds": 1},
        },
    )
    assert (previous["runs_accepted"], previous["runs_lost"]) == (12, 1)
    merged = results.merge(previous, {"a": {"runs_accepted": 4, "rounds": 2, "ran_at": "t2"}})
    assert "a.answers.500" not in merged, "a scenario's old figures go with it"
    assert merged["a.rounds"] == 2 and merged["a.ran_at"] == "t2"
    assert merged["b.runs_accepted"] == 7 and merged["b.faults_injected"] == 3
    assert merged["runs_accepted"] == 4 + 7
    assert merged["runs_lost"] == 0 and merged["faults_injected"] == 3
    assert merged["scenarios"] == "a,b"


def test_the_command_line_repeats_and_writes_only_its_scenarios(tmp_path, monkeypatch, capsys):
    from chaos import __main__ as cli

    path = tmp_path / "chaos.json"
    path.write_text(json.dumps({"old.runs_accepted": 3, "old.rounds": 1, "runs_accepted": 3}))
    monkeypatch.setattr(results, "RESULTS", path)
    monkeypatch.setattr(cli, "Stack", lambda: type("S", (), {"clear_faults": lambda self: None})())
    calls = []

    def scenario(stack):
        """A fake scenario."""
        calls.append(stack)
        return {"runs_accepted": 2, "runs_lost": 0, "workflows_left_running": 0}

    monkeypatch.setattr(cli, "SCENARIOS", {"fake": scenario, "other": scenario})
    assert cli.main(["fake", "--repeat", "3"]) == 0
    written = json.loads(path.read_text())
    assert len(calls) == 3
    assert written["fake.rounds"] == 3 and written["fake.runs_accepted"] == 6
    assert "fake.ran_at" in written and "other.rounds" not in written
    assert written["old.runs_accepted"] == 3 and written["runs_accepted"] == 6 + 3
    with pytest.raises(SystemExit):
        cli.main(["fake", "--repeat", "0"])


def test_the_command_line_refuses_an_unknown_scenario(capsys):
    from chaos.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["no_such_scenario"])
    assert exit_.value.code == 2
    assert "unknown scenario(s) no_such_scenario" in capsys.readouterr().err
