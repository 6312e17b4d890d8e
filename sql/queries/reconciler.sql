-- name: stuck_pending_runs
-- Runs still PENDING long after they were accepted: the start was lost, or its workflow died.
SELECT r.id, r.status, r.conductor_workflow_id, r.input_path_prefix, r.output_path_prefix,
       p.workflow_name, p.workflow_version
FROM pipeline_runs r JOIN pipelines p ON p.name = r.pipeline
WHERE r.status = 'PENDING' AND r.created_at < now() - %(older_than)s * interval '1 second'
ORDER BY r.created_at
LIMIT %(limit)s

-- name: active_runs_to_check
-- Active runs whose Conductor workflow was not checked lately, least recently checked first.
SELECT r.id, r.status, r.conductor_workflow_id, r.workbench_job_id, r.input_path_prefix,
       r.output_path_prefix, p.workflow_name, p.workflow_version
FROM pipeline_runs r JOIN pipelines p ON p.name = r.pipeline
WHERE r.status IN ('SUBMITTED', 'RUNNING')
  AND (r.workflow_checked_at IS NULL
       OR r.workflow_checked_at < now() - %(every)s * interval '1 second')
ORDER BY r.workflow_checked_at NULLS FIRST
LIMIT %(limit)s

-- name: lock_run_if_status
-- One run, locked for its repair, only while it is still in the status the repair expects.
SELECT * FROM pipeline_runs WHERE id = %(id)s AND status = %(status)s FOR UPDATE SKIP LOCKED

-- name: count_reconciler_restarts
SELECT count(*) AS restarts FROM pipeline_run_events
WHERE run_id = %(id)s AND source = 'reconciler' AND details ->> 'action' = 'restarted'

-- name: replace_workflow_id
UPDATE pipeline_runs
SET conductor_workflow_id = %(workflow_id)s, workflow_synced_at = NULL, workflow_checked_at = now()
WHERE id = %(id)s

-- name: mark_workflow_checked
UPDATE pipeline_runs SET workflow_checked_at = now() WHERE id = %(id)s

-- name: insert_note
-- An audit event that records a repair without a status change.
INSERT INTO pipeline_run_events (run_id, source, previous_status, status, message, details)
VALUES (%(run_id)s, 'reconciler', %(status)s, %(status)s, %(message)s, %(details)s)

-- name: runs_lost_on_workbench
-- Active runs whose job the Workbench keeps saying it does not know: only 404s in a row
-- count (poll_kind_failures), not a 404 at the end of a streak of timeouts.
SELECT id, status, workbench_job_id, poll_failures, poll_kind_failures, last_poll_error
FROM pipeline_runs
WHERE status IN ('SUBMITTED', 'RUNNING') AND last_poll_error_kind = 'not_found'
  AND poll_kind_failures >= %(min_failures)s
LIMIT %(limit)s

-- name: runs_to_give_up
-- Active runs whose status has not been read for give_up seconds and whose latest answer is
-- one retrying cannot fix (an unknown status, a malformed answer, 401/403).
SELECT id, status, workbench_job_id, poll_failures, last_poll_error, last_poll_error_kind,
       poll_failing_since
FROM pipeline_runs
WHERE status IN ('SUBMITTED', 'RUNNING') AND last_poll_error_kind = ANY(%(kinds)s::text[])
  AND poll_failing_since < now() - %(give_up)s * interval '1 second'
ORDER BY poll_failing_since
LIMIT %(limit)s

-- name: count_reconciler_actions
SELECT count(*) AS repairs FROM pipeline_run_events
WHERE run_id = %(id)s AND source = 'reconciler' AND details ->> 'action' = %(action)s

-- name: ended_runs_to_finish
-- Ended runs whose workflow was not seen leaving RUNNING (the poller's sync marks that) well
-- after they ended; each looked at no more often than `every` so none holds up the others.
-- A run without a workflow id is one whose start failed at the gateway: Conductor may have
-- started it all the same, found by correlation id.
SELECT r.id, r.status, r.conductor_workflow_id, r.workbench_job_id, r.error_message,
       r.cancel_requested_by, r.input_path_prefix, r.output_path_prefix, p.workflow_name,
       p.workflow_version
FROM pipeline_runs r JOIN pipelines p ON p.name = r.pipeline
WHERE r.status = ANY(%(terminal)s::text[]) AND r.workflow_synced_at IS NULL
  AND r.completed_at < now() - %(older_than)s * interval '1 second'
  AND (r.workflow_checked_at IS NULL
       OR r.workflow_checked_at < now() - %(every)s * interval '1 second')
ORDER BY r.workflow_checked_at NULLS FIRST, r.completed_at
LIMIT %(limit)s
