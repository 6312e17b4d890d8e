"""The workflow contract module names what the shipped definitions define (issue 9)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from batchcore.runs import workflow
from batchcore.runs.model import Run

DEFS = Path(__file__).resolve().parents[2] / "workflow_defs" / "workflows"


def load(name: str) -> dict:
    return json.loads((DEFS / f"{name}.json").read_text())


def all_tasks(tasks: list[dict]):
    """Every task of a definition, nested branches and loops included."""
    for task in tasks:
        yield task
        for branch in (task.get("decisionCases") or {}).values():
            yield from all_tasks(branch)
        yield from all_tasks(task.get("defaultCase") or [])
        yield from all_tasks(task.get("loopOver") or [])
        for fork in task.get("forkTasks") or []:
            yield from all_tasks(fork)


def test_the_pipeline_workflow_defines_the_task_references_the_contract_names():
    definition = load(workflow.BATCH_WORKFLOW)
    refs = {t["taskReferenceName"]: t for t in all_tasks(definition["tasks"])}

    assert definition["name"] == workflow.BATCH_WORKFLOW
    for ref in (
        workflow.SUBMIT_TASK_REF,
        workflow.PERSIST_SUBMITTED_TASK_REF,
        workflow.WAIT_TASK_REF,
        workflow.PERSIST_FAILED_TASK_REF,
    ):
        assert ref in refs, ref
    assert refs[workflow.WAIT_TASK_REF]["type"] == "WAIT"
    assert refs[workflow.SUBMIT_TASK_REF]["type"] == "SIMPLE"


def test_the_start_input_is_what_the_pipeline_workflow_takes():
    run = Run.from_row(
        {
            "id": uuid.UUID(int=7),
            "status": "PENDING",
            "input_path_prefix": "s3://in/",
            "output_path_prefix": "s3://out/",
        }
    )

    start = workflow.start_input(run)

    assert set(start) == set(load(workflow.BATCH_WORKFLOW)["inputParameters"])
    assert start["pipeline_run_id"] == str(run.id)


def test_the_poller_loop_forks_its_sweeps_as_the_task_the_poller_service_works():
    definition = load(workflow.POLLER_WORKFLOW)
    scripts = [
        t["inputParameters"]["expression"]
        for t in all_tasks(definition["tasks"])
        if t["type"] == "INLINE"
    ]

    assert definition["name"] == workflow.POLLER_WORKFLOW
    assert definition["version"] == workflow.POLLER_VERSION
    assert any(f"name: '{workflow.POLLER_SWEEP_TASK}'" in script for script in scripts)
    assert (DEFS.parent / "tasks" / f"{workflow.POLLER_SWEEP_TASK}.json").is_file()
