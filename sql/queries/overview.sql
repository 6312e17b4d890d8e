-- name: count_runs_by_status
-- The run browser's count per status, for one pipeline or all of them.
SELECT status, count(*) AS runs FROM pipeline_runs
WHERE %(pipeline)s::text IS NULL OR pipeline = %(pipeline)s
GROUP BY status

-- name: poller_overview
-- What an operator looks at first: the active runs, how many are due a poll now, and the
-- recorded poller loop.
SELECT
    count(*) FILTER (WHERE status = 'PENDING') AS pending,
    count(*) FILTER (WHERE status = 'SUBMITTED') AS submitted,
    count(*) FILTER (WHERE status = 'RUNNING') AS running,
    count(*) FILTER (WHERE status IN ('SUBMITTED', 'RUNNING') AND next_poll_at <= now()) AS due,
    max(last_polled_at) AS last_polled_at,
    (SELECT workflow_id FROM poller_loop) AS loop_workflow_id,
    (SELECT started_at FROM poller_loop) AS loop_started_at
FROM pipeline_runs
WHERE status IN ('PENDING', 'SUBMITTED', 'RUNNING')

-- name: poll_errors_by_kind
-- Active runs whose last status poll failed, by the kind of that failure.
SELECT coalesce(last_poll_error_kind, 'unknown') AS kind, count(*) AS runs,
       max(last_polled_at) AS last_at
FROM pipeline_runs
WHERE status IN ('SUBMITTED', 'RUNNING') AND poll_failures > 0
GROUP BY 1
ORDER BY 2 DESC, 1

-- name: count_unconfirmed_runs
-- Runs with a Workbench job whose status the Workbench has not confirmed for older_than
-- seconds (status_checked_at, set by the poller; never confirmed: since the submission).
SELECT count(*) AS runs FROM pipeline_runs
WHERE status IN ('SUBMITTED', 'RUNNING')
  AND COALESCE(status_checked_at, submitted_at) < now() - %(older_than)s * interval '1 second'

-- name: metrics_statement_timeout
-- A scrape waits for the database at most this long.
SET LOCAL statement_timeout = '2s'
