-- name: get_pipeline
SELECT name, mode, workflow_name, workflow_version, description, enabled, max_runtime_seconds
FROM pipelines WHERE name = %(name)s

-- name: list_pipelines
SELECT name, mode, workflow_name, workflow_version, description, enabled, max_runtime_seconds
FROM pipelines ORDER BY name

-- name: insert_run
-- One statement, one round trip, atomic by itself: the catalog entry, the PENDING run (only
-- for an enabled pipeline of the request's mode) and its first audit event, and for a re-run
-- a note on the original (its status unchanged). The deadline: the request's, else the
-- pipeline's max_runtime_seconds, else the setting's. A key already held inserts nothing:
-- the row then has the catalog entry and a NULL id. No catalog entry: no row.
-- The events' triggers (actor, outbox) fire as for any insert; the outbox's AFTER trigger
-- runs at the statement's end and sees the run.
WITH catalog AS (
    SELECT name, mode, workflow_name, workflow_version, description, enabled, max_runtime_seconds
    FROM pipelines WHERE name = %(pipeline)s
), run AS (
    INSERT INTO pipeline_runs (id, pipeline, mode, status, input_path_prefix, output_path_prefix,
                               parameters, notify_url, submitted_by, idempotency_key,
                               request_fingerprint, rerun_of, deadline_at)
    SELECT %(id)s, catalog.name, %(mode)s, 'PENDING', %(input_path_prefix)s,
           %(output_path_prefix)s, %(parameters)s, %(notify_url)s, %(submitted_by)s,
           %(idempotency_key)s, %(request_fingerprint)s, %(rerun_of)s,
           now() + interval '1 second' * COALESCE(
               %(deadline_seconds)s::integer, catalog.max_runtime_seconds,
               %(default_deadline_seconds)s::integer)
    FROM catalog WHERE catalog.enabled AND catalog.mode = %(mode)s
    ON CONFLICT (submitted_by, idempotency_key) DO NOTHING
    RETURNING *
), first_event AS (
    INSERT INTO pipeline_run_events (run_id, source, actor, previous_status, status, message,
                                     details)
    SELECT run.id, 'gateway', %(submitted_by)s, NULL, 'PENDING', 'Run accepted', %(details)s
    FROM run
    RETURNING at
), rerun_note AS (
    INSERT INTO pipeline_run_events (run_id, source, actor, previous_status, status, message,
                                     details)
    SELECT original.id, 'gateway', %(submitted_by)s, original.status, original.status,
           'Re-run as run ' || run.id, jsonb_build_object('rerun', run.id::text)
    FROM run JOIN pipeline_runs original ON original.id = run.rerun_of
)
SELECT to_jsonb(catalog) AS catalog_entry, first_event.at AS first_event_at, run.*
FROM catalog LEFT JOIN run ON true LEFT JOIN first_event ON true

-- name: lock_run_by_idempotency_key
-- Keys are scoped to the client that submitted them (migration 0010).
SELECT * FROM pipeline_runs
WHERE submitted_by = %(submitted_by)s AND idempotency_key = %(idempotency_key)s FOR UPDATE

-- name: release_idempotency_key
-- Only a run that failed before its workflow started gives its key up (migration 0006).
UPDATE pipeline_runs SET idempotency_key = NULL
WHERE id = %(id)s AND status = 'FAILED'
  AND conductor_workflow_id IS NULL AND workbench_job_id IS NULL
RETURNING id

-- name: get_run
-- With the runs that re-ran it, oldest first (pipeline_runs_rerun_of).
SELECT run.*, ARRAY(SELECT rerun.id FROM pipeline_runs rerun WHERE rerun.rerun_of = run.id
                    ORDER BY rerun.created_at, rerun.id) AS reruns
FROM pipeline_runs run WHERE run.id = %(id)s

-- name: lock_run
SELECT * FROM pipeline_runs WHERE id = %(id)s FOR UPDATE

-- name: get_run_status
SELECT status FROM pipeline_runs WHERE id = %(id)s

-- name: get_history
SELECT status, previous_status, at, source, actor, message, details
FROM pipeline_run_events WHERE run_id = %(id)s ORDER BY id

-- name: insert_event
-- A NULL actor is the source's own (migration 0010's trigger).
INSERT INTO pipeline_run_events (run_id, source, actor, previous_status, status, message, details)
VALUES (%(run_id)s, %(source)s, %(actor)s, %(previous_status)s, %(status)s, %(message)s,
        %(details)s)

-- name: set_workflow_id
-- With the count of the run's events (an index-only read of pipeline_run_events_run): while it
-- is one, the history is the first event the caller wrote, and no second read is needed.
UPDATE pipeline_runs SET conductor_workflow_id = %(workflow_id)s
WHERE id = %(id)s AND conductor_workflow_id IS NULL
RETURNING *, (SELECT count(*) FROM pipeline_run_events e WHERE e.run_id = pipeline_runs.id)
             AS event_count

-- name: apply_transition
-- COALESCE keeps a timestamp already set (a repeated or late report never moves it).
-- The terminal and active parameters are the lifecycle's sets (batchcore.runs.lifecycle).
UPDATE pipeline_runs SET
    status = %(status)s,
    workbench_job_id = COALESCE(workbench_job_id, %(workbench_job_id)s),
    error_message = COALESCE(%(error_message)s, error_message),
    error_details = COALESCE(%(error_details)s, error_details),
    submitted_at = COALESCE(submitted_at, CASE
        WHEN COALESCE(workbench_job_id, %(workbench_job_id)s) IS NOT NULL THEN now() END),
    -- The Workbench's answer that names the job confirms its status (QUEUED) as well.
    status_checked_at = CASE WHEN %(status)s = 'SUBMITTED' AND %(workbench_job_id)s IS NOT NULL
                             THEN now() ELSE status_checked_at END,
    started_at = CASE WHEN %(status)s = 'RUNNING' OR (%(status)s = ANY(%(terminal)s::text[])
                                                       AND %(started_at)s IS NOT NULL)
                      THEN COALESCE(started_at, %(started_at)s, now()) ELSE started_at END,
    completed_at = CASE WHEN %(status)s = ANY(%(terminal)s::text[])
                        THEN COALESCE(completed_at, %(completed_at)s, now()) ELSE completed_at END,
    next_poll_at = CASE WHEN %(status)s = ANY(%(active)s::text[])
                        THEN COALESCE(next_poll_at, now()) ELSE NULL END,
    poll_failures = CASE WHEN %(status)s = ANY(%(terminal)s::text[])
                         THEN poll_failures ELSE 0 END,
    poll_lease_until = NULL
WHERE id = %(id)s
RETURNING *

-- name: list_runs
-- Keyset pagination, newest first: the cursor is the (created_at, id) of the last row shown.
-- Each status asked for is read on its own, in (status, created_at, id) order, and the pages
-- merged: `status = ANY(...)` cannot use that order, so the newest-first scan read every newer
-- run of other statuses (all of them, for ?status=FAILED where failures are old).
(SELECT r.*
 FROM (SELECT DISTINCT unnest(%(statuses)s::text[])) AS asked(status)
 CROSS JOIN LATERAL (
     SELECT * FROM pipeline_runs
     WHERE status = asked.status
       AND (%(pipeline)s::text IS NULL OR pipeline = %(pipeline)s)
       AND (%(after_created)s::timestamptz IS NULL
            OR (created_at, id) < (%(after_created)s::timestamptz, %(after_id)s::uuid))
     ORDER BY created_at DESC, id DESC
     LIMIT %(limit)s
 ) AS r
 WHERE NOT %(no_status)s)
UNION ALL
(SELECT * FROM pipeline_runs
 WHERE %(no_status)s
   AND (%(pipeline)s::text IS NULL OR pipeline = %(pipeline)s)
   AND (%(after_created)s::timestamptz IS NULL
        OR (created_at, id) < (%(after_created)s::timestamptz, %(after_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s

-- name: try_poller_loop_lock
-- Held for one check-and-start, so two worker services never start two poller loops.
SELECT pg_try_advisory_xact_lock(7204113002) AS locked

-- name: get_poller_loop
SELECT workflow_id FROM poller_loop

-- name: set_poller_loop
INSERT INTO poller_loop (id, workflow_id) VALUES (true, %(workflow_id)s)
ON CONFLICT (id) DO UPDATE SET workflow_id = EXCLUDED.workflow_id, started_at = now()
