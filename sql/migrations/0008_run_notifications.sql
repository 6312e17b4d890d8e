-- Status-change notifications (issue 15): a transactional outbox fed by the audit trail.
--
-- Every writer (the gateway, persist_run, the poller's one-statement batch, the reconciler,
-- cancellation) already appends an event in the same transaction as the status change it
-- makes, so a trigger on that append writes the notification: none is lost, and none exists
-- for a change that rolled back, without any writer knowing about notifications.
ALTER TABLE pipeline_runs
    ADD COLUMN notify_url text CHECK (length(notify_url) BETWEEN 1 AND 2048);

-- No foreign keys to the runs or their trail: the trigger writes only existing ids, and a
-- reference would make TRUNCATE fail on it before the refuse_truncate triggers could speak.
CREATE TABLE run_notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the webhook-id header: the same on every attempt, so a receiver can drop repeats
    webhook_id       uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    run_id           uuid NOT NULL,
    event_id         bigint NOT NULL UNIQUE,
    url              text NOT NULL,
    status           text NOT NULL,
    previous_status  text,
    occurred_at      timestamptz NOT NULL,
    -- the run as it was right after the change: a later change never rewrites this one
    run_snapshot     jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'given_up')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- a deliverer's claim: another may take the notification once the lease has lapsed
    lease_until      timestamptz,
    lease_token      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    last_error       text,
    CHECK ((state = 'pending') = (finished_at IS NULL))
);
-- the oldest pending notification of each run (delivery is in order per run)
CREATE INDEX run_notifications_pending ON run_notifications (run_id, id) WHERE state = 'pending';
CREATE INDEX run_notifications_due ON run_notifications (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX run_notifications_run ON run_notifications (run_id, id);

CREATE TABLE run_notification_attempts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id   bigint NOT NULL REFERENCES run_notifications (id),
    attempt           integer NOT NULL CHECK (attempt >= 1),
    at                timestamptz NOT NULL,
    duration_ms       integer NOT NULL CHECK (duration_ms >= 0),
    status_code       integer,
    error             text,
    -- a short excerpt only: a receiver's answer is not ours to keep
    response_excerpt  text CHECK (length(response_excerpt) <= 200),
    UNIQUE (notification_id, attempt)
);

CREATE FUNCTION pipeline_run_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- An AFTER trigger sees the whole statement's writes: the run as the change left it.
    INSERT INTO run_notifications
        (run_id, event_id, url, status, previous_status, occurred_at, run_snapshot)
    SELECT r.id, NEW.id, r.notify_url, NEW.status, NEW.previous_status, NEW.at,
           to_jsonb(r) - ARRAY['idempotency_key', 'request_fingerprint']
    FROM pipeline_runs r
    WHERE r.id = NEW.run_id AND r.notify_url IS NOT NULL;
    RETURN NULL;
END $$;

-- Only changes of status: notes and failure streaks repeat the status and notify nothing.
CREATE TRIGGER pipeline_run_events_notify AFTER INSERT ON pipeline_run_events
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM NEW.previous_status)
    EXECUTE FUNCTION pipeline_run_events_notify();

CREATE TRIGGER run_notifications_no_truncate BEFORE TRUNCATE ON run_notifications
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();

-- The one batch_notifier loop the poller services keep alive (like poller_loop).
CREATE TABLE notifier_loop (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    workflow_id  text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now()
);
