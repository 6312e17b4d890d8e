-- name: request_cancel
-- Ask for the cancel of a run that still has (or may get) a Workbench job; the poller sends
-- it at its next sweep. A repeated request, or one after a deadline's, changes nothing.
UPDATE pipeline_runs SET
    cancel_requested_at = now(),
    cancel_requested_by = %(actor)s,
    cancel_reason = %(reason)s,
    next_poll_at = CASE WHEN status = ANY(%(active)s::text[]) THEN now() ELSE next_poll_at END
WHERE id = %(id)s AND cancel_requested_at IS NULL
RETURNING *

-- name: begin_submit
-- A submit task is about to ask the Workbench for the run's job: from now on a cancel cannot
-- end the run at once, since a job may exist. Only a PENDING run that no one cancelled.
UPDATE pipeline_runs SET submit_started_at = COALESCE(submit_started_at, now())
WHERE id = %(id)s AND status = 'PENDING' AND cancel_requested_at IS NULL
RETURNING *

-- name: ended_runs_to_cancel
-- Ended runs whose job is, or may be, still to be cancelled at the Workbench: a job that
-- showed up after the run ended, or a submission whose answer never came back.
SELECT id, status, pipeline, input_path_prefix, output_path_prefix, parameters,
       workbench_job_id, cancel_reason, submit_started_at
FROM pipeline_runs
WHERE cancel_requested_at IS NOT NULL AND cancel_sent_at IS NULL
  AND status = ANY(%(terminal)s::text[])
  AND (workbench_job_id IS NOT NULL OR submit_started_at IS NOT NULL)
ORDER BY cancel_requested_at
LIMIT %(limit)s

-- name: record_ended_run_cancel
-- The Workbench accepted the cancel of an ended run's job (its id recorded if it was not).
UPDATE pipeline_runs SET
    workbench_job_id = COALESCE(workbench_job_id, %(job_id)s),
    cancel_sent_at = now()
WHERE id = %(id)s AND cancel_sent_at IS NULL
RETURNING id, status

-- name: runs_past_deadline
-- Runs still open at their deadline: those to cancel, and those whose cancel the Workbench
-- has not confirmed within the grace (they end without it).
SELECT id FROM pipeline_runs
WHERE status = ANY(%(open)s::text[]) AND deadline_at < now()
  AND (cancel_requested_at IS NULL OR deadline_at + %(grace)s * interval '1 second' < now())
ORDER BY deadline_at
LIMIT %(limit)s

-- name: lock_run_past_deadline
-- One run of runs_past_deadline, locked, if it still is one (another poller may have acted).
SELECT *, deadline_at + %(grace)s * interval '1 second' < now() AS overdue
FROM pipeline_runs
WHERE id = %(id)s AND status = ANY(%(open)s::text[]) AND deadline_at < now()
  AND (cancel_requested_at IS NULL OR deadline_at + %(grace)s * interval '1 second' < now())
FOR UPDATE SKIP LOCKED

-- name: attach_job
UPDATE pipeline_runs SET workbench_job_id = %(job_id)s
WHERE id = %(id)s AND workbench_job_id IS NULL
RETURNING *
