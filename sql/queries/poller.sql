-- name: claim_due_runs
-- One round trip takes a lease on a batch of due runs; SKIP LOCKED and the lease keep
-- concurrent pollers apart, and no transaction stays open while the Workbench is asked.
-- Each claim takes a new lease token: write-backs are fenced by it (apply_poll_results).
-- Due runs come in next_poll_at order from the poll schedule's index (migration 0015); the
-- lease columns are in no index, so taking a lease can be a HOT update of the run.
UPDATE pipeline_runs r
SET poll_lease_until = now() + %(lease_seconds)s * interval '1 second',
    poll_lease_token = %(lease_token)s
-- The batch's ids as an array, so that each run is found by its key (a join read them all).
WHERE r.id = ANY (ARRAY(
    -- Only active runs are on the schedule (its trigger keeps it so): asking their status here
    -- too would make the planner, which cannot know that, expect few matches and read every
    -- active run for each batch.
    SELECT run.id FROM pipeline_run_polls p
    JOIN pipeline_runs run ON run.id = p.run_id
    WHERE p.next_poll_at <= now()
      AND (run.poll_lease_until IS NULL OR run.poll_lease_until < now())
    ORDER BY p.next_poll_at
    LIMIT %(batch_size)s
    FOR UPDATE OF run SKIP LOCKED
))
RETURNING r.id, r.status, r.workbench_job_id, r.poll_failures, r.poll_lease_token,
          r.cancel_requested_at, r.cancel_requested_by, r.cancel_reason, r.cancel_sent_at,
          r.deadline_at

-- name: apply_poll_results
-- Every outcome of one batch in one statement: transitions with their events, and the
-- bookkeeping of runs that did not move (a poll failure opens a streak with one event).
-- The terminal parameter is the lifecycle's terminal statuses (batchcore.runs.lifecycle).
-- Only runs the sweep still holds are written (their lease token unchanged since its claim):
-- a sweep that outlived its lease must not overwrite what a newer claim recorded.
WITH input AS (
    SELECT * FROM unnest(
        %(ids)s::uuid[], %(expected)s::text[], %(new_status)s::text[], %(error_message)s::text[],
        %(started_at)s::timestamptz[], %(finished_at)s::timestamptz[], %(poll_error)s::text[],
        %(retry_at)s::timestamptz[], %(message)s::text[], %(details)s::jsonb[],
        %(error_kind)s::text[], %(lease_token)s::uuid[], %(cancel_sent)s::boolean[]
    ) AS i(id, expected, new_status, error_message, started_at, finished_at, poll_error,
           retry_at, message, details, error_kind, lease_token, cancel_sent)
),
moved AS (
    UPDATE pipeline_runs r SET
        status = i.new_status,
        -- The poller passes lifecycle.error_message_for(...): the wording lives there only.
        error_message = CASE WHEN i.new_status = 'FAILED' THEN i.error_message
                             ELSE r.error_message END,
        error_details = CASE WHEN i.new_status = 'FAILED' THEN i.details ELSE r.error_details END,
        started_at = CASE WHEN i.new_status = 'RUNNING'
                          THEN COALESCE(r.started_at, i.started_at, now())
                          ELSE COALESCE(r.started_at, i.started_at) END,
        completed_at = CASE WHEN i.new_status = ANY(%(terminal)s::text[])
                            THEN COALESCE(i.finished_at, now()) END,
        last_polled_at = now(),
        status_checked_at = now(),
        cancel_sent_at = CASE WHEN i.cancel_sent THEN COALESCE(r.cancel_sent_at, now())
                              ELSE r.cancel_sent_at END,
        next_poll_at = CASE WHEN i.new_status = ANY(%(terminal)s::text[]) THEN NULL
                            ELSE now() + %(interval_seconds)s * interval '1 second' END,
        poll_failures = 0,
        poll_kind_failures = 0,
        poll_failing_since = NULL,
        last_poll_error = NULL,
        last_poll_error_kind = NULL,
        poll_lease_until = NULL
    FROM input i
    WHERE r.id = i.id AND i.new_status IS NOT NULL AND r.status = i.expected
      AND r.poll_lease_token = i.lease_token
    RETURNING r.id, i.expected AS previous_status, r.status, i.message, i.details,
              r.conductor_workflow_id, r.workbench_job_id, r.error_message
),
moved_events AS (
    INSERT INTO pipeline_run_events (run_id, source, previous_status, status, message, details)
    SELECT id, 'poller', previous_status, status, message, details FROM moved
),
stayed AS (
    UPDATE pipeline_runs r SET
        last_polled_at = now(),
        status_checked_at = CASE WHEN i.poll_error IS NULL THEN now() ELSE r.status_checked_at END,
        cancel_sent_at = CASE WHEN i.cancel_sent THEN COALESCE(r.cancel_sent_at, now())
                              ELSE r.cancel_sent_at END,
        poll_failures = CASE WHEN i.poll_error IS NULL THEN 0 ELSE r.poll_failures + 1 END,
        poll_kind_failures = CASE WHEN i.poll_error IS NULL THEN 0
                                  WHEN r.last_poll_error_kind IS NOT DISTINCT FROM i.error_kind
                                  THEN r.poll_kind_failures + 1 ELSE 1 END,
        poll_failing_since = CASE WHEN i.poll_error IS NULL THEN NULL
                                  ELSE COALESCE(r.poll_failing_since, now()) END,
        last_poll_error = i.poll_error,
        last_poll_error_kind = i.error_kind,
        next_poll_at = COALESCE(i.retry_at, now() + %(interval_seconds)s * interval '1 second'),
        poll_lease_until = NULL
    FROM input i
    WHERE r.id = i.id AND i.new_status IS NULL AND r.status = i.expected
      AND r.poll_lease_token = i.lease_token
    RETURNING r.id, r.status, r.poll_kind_failures, i.poll_error, i.details
),
failure_events AS (
    -- One event per streak of one kind: its start, and each change of kind (with the answer).
    INSERT INTO pipeline_run_events (run_id, source, previous_status, status, message, details)
    SELECT id, 'poller', status, status,
           'Workbench status could not be read: ' || poll_error, details
    FROM stayed WHERE poll_error IS NOT NULL AND poll_kind_failures = 1
)
SELECT id, previous_status, status, conductor_workflow_id, workbench_job_id, error_message
FROM moved

-- name: unsynced_terminal_runs
-- Ended runs whose workflow still waits in Conductor for the poller to finish it.
SELECT id, status, conductor_workflow_id, workbench_job_id, error_message, cancel_requested_by
FROM pipeline_runs
WHERE status = ANY(%(terminal)s::text[]) AND workflow_synced_at IS NULL
  AND workbench_job_id IS NOT NULL AND conductor_workflow_id IS NOT NULL
ORDER BY completed_at
LIMIT %(limit)s

-- name: mark_workflows_synced
UPDATE pipeline_runs SET workflow_synced_at = now()
WHERE id = ANY(%(ids)s::uuid[]) AND workflow_synced_at IS NULL

-- name: mark_workflow_unsynced
-- An ended run whose workflow an operator restarted: the poller finishes it again.
UPDATE pipeline_runs SET workflow_synced_at = NULL
WHERE id = %(id)s AND status = ANY(%(terminal)s::text[]) AND workflow_synced_at IS NOT NULL
RETURNING id

-- name: record_poll_write_failure
-- A run whose outcome could not be written even alone: count the failure, note why, and
-- poll it again later with backoff, so it never holds up the others (still fenced).
UPDATE pipeline_runs SET
    last_polled_at = now(),
    poll_failures = poll_failures + 1,
    poll_kind_failures = CASE WHEN last_poll_error_kind IS NOT DISTINCT FROM %(kind)s
                              THEN poll_kind_failures + 1 ELSE 1 END,
    poll_failing_since = COALESCE(poll_failing_since, now()),
    last_poll_error = %(error)s,
    last_poll_error_kind = %(kind)s,
    next_poll_at = %(retry_at)s,
    poll_lease_until = NULL
WHERE id = %(id)s AND status = ANY(%(active)s::text[]) AND poll_lease_token = %(lease_token)s
RETURNING id
