"""The chaos verdict: lost, mismatched and duplicated runs are counted, with a fake stack."""

from __future__ import annotations

from chaos import harness


class FakeStack:
    """Rows as the database has them, jobs as the simulator logged them."""

    def __init__(self, rows, jobs):
        self.rows, self.jobs = rows, jobs

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


def test_the_command_line_refuses_an_unknown_scenario(capsys):
    import pytest

    from chaos.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["no_such_scenario"])
    assert exit_.value.code == 2
    assert "unknown scenario(s) no_such_scenario" in capsys.readouterr().err
