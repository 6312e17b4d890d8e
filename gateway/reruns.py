"""Re-running an ended run: a new run with the original's inputs, started as POST starts one."""

from __future__ import annotations

import uuid

from batchcore.db import Database
from batchcore.errors import NotFound, RunNotTerminal
from batchcore.runs.model import NewRun
from batchcore.runs.store import RunStore
from batchcore.setting_checks import DEFAULT_TOKEN_NAME

from .submission import AcceptedRun, WaitingRoom, run_url, submit_run


class RunToRerunNotFound(NotFound, code="run_not_found"):
    """No run has the id asked to re-run."""


def rerun_run(
    db: Database,
    conductor,
    run_id: str | uuid.UUID,
    parameters: dict | None = None,
    idempotency_key: str | None = None,
    *,
    submitted_by: str = DEFAULT_TOKEN_NAME,
    default_deadline_seconds: int | None = None,
    waiting_room: WaitingRoom | None = None,
) -> AcceptedRun:
    """A new run of the ended run `run_id`: its pipeline, mode, prefixes, notify_url and
    parameters (unless `parameters` replaces them), a fresh deadline, rerun_of = run_id.

    RunToRerunNotFound for an unknown id; RunNotTerminal while the run is still active. The
    key is scoped to `submitted_by` as for POST; a rerun of another run, or with other
    parameters, is another request (Conflict under the same key).
    """
    try:
        original = RunStore(db).get_run(run_id)
    except NotFound as exc:
        raise RunToRerunNotFound(exc.message) from None
    if not original.is_terminal:
        raise RunNotTerminal(
            f"Run {original.id} is {original.status}: it can be re-run once it has ended"
            f" (follow it at {run_url(original.id)}).",
            details=[{"run_id": str(original.id), "status": original.status}],
        )
    request = NewRun(
        pipeline=original.pipeline,
        mode=original.mode,
        input_path_prefix=original.input_path_prefix,
        output_path_prefix=original.output_path_prefix,
        parameters=original.parameters if parameters is None else parameters,
        notify_url=original.notify_url,
        rerun_of=original.id,
    )
    return submit_run(
        db,
        conductor,
        request,
        idempotency_key,
        submitted_by=submitted_by,
        default_deadline_seconds=default_deadline_seconds,
        waiting_room=waiting_room,
    )
