-- name: claim_notifications
-- Lease the oldest pending notification of each run whose next attempt is due: in order per
-- run, since a run's later notification is not its head until the earlier one is delivered
-- or given up. SKIP LOCKED and the lease keep deliverers apart; the state, lease and due
-- time are tested on the locked row itself, so a head claimed or finished by another
-- deliverer since this statement's snapshot is passed over.
WITH heads AS (
    SELECT DISTINCT ON (run_id) id
    FROM run_notifications
    WHERE state = 'pending'
    ORDER BY run_id, id
),
due AS (
    SELECT n.id
    FROM run_notifications n JOIN heads h ON h.id = n.id
    WHERE n.state = 'pending' AND n.next_attempt_at <= now()
      AND (n.lease_until IS NULL OR n.lease_until < now())
    ORDER BY n.next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE OF n SKIP LOCKED
)
UPDATE run_notifications n
SET lease_until = now() + %(lease_seconds)s * interval '1 second',
    lease_token = %(lease_token)s
FROM due
WHERE n.id = due.id
RETURNING n.id, n.webhook_id, n.run_id, n.url, n.status, n.previous_status, n.occurred_at,
          n.run_snapshot, n.attempts, n.created_at, n.lease_token

-- name: record_notification_attempt
-- One attempt and its consequence, fenced by the claim: a deliverer whose lease lapsed and
-- was taken over records nothing.
WITH moved AS (
    UPDATE run_notifications SET
        attempts = attempts + 1,
        state = %(state)s,
        next_attempt_at = COALESCE(%(next_attempt_at)s, next_attempt_at),
        finished_at = CASE WHEN %(state)s = 'pending' THEN NULL ELSE now() END,
        last_error = %(error)s,
        lease_until = NULL,
        lease_token = NULL
    WHERE id = %(id)s AND lease_token = %(lease_token)s AND state = 'pending'
    RETURNING id, attempts
)
INSERT INTO run_notification_attempts
    (notification_id, attempt, at, duration_ms, status_code, error, response_excerpt)
SELECT id, attempts, %(at)s, %(duration_ms)s, %(status_code)s, %(error)s, %(excerpt)s
FROM moved
RETURNING notification_id

-- name: list_run_notifications
SELECT n.id, n.webhook_id, n.event_id, n.url, n.status, n.previous_status, n.occurred_at,
       n.state, n.attempts, n.next_attempt_at, n.created_at, n.finished_at, n.last_error,
       COALESCE((
           SELECT json_agg(json_build_object(
                      'attempt', a.attempt, 'at', a.at, 'duration_ms', a.duration_ms,
                      'status_code', a.status_code, 'error', a.error,
                      'response_excerpt', a.response_excerpt) ORDER BY a.attempt)
           FROM run_notification_attempts a WHERE a.notification_id = n.id
       ), '[]') AS attempt_list
FROM run_notifications n
WHERE n.run_id = %(run_id)s
ORDER BY n.id

-- name: try_notifier_loop_lock
-- Held for one check-and-start, so two worker services never start two notifier loops.
SELECT pg_try_advisory_xact_lock(7204113015) AS locked

-- name: get_notifier_loop
SELECT workflow_id FROM notifier_loop

-- name: set_notifier_loop
INSERT INTO notifier_loop (id, workflow_id) VALUES (true, %(workflow_id)s)
ON CONFLICT (id) DO UPDATE SET workflow_id = EXCLUDED.workflow_id, started_at = now()
