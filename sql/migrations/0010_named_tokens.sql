-- Named tokens (issue 13): who submitted a run, who caused each audit event, and
-- idempotency keys scoped to the client (the token's name).
--
-- Every token before this migration was a bare token, and a bare token is named 'default':
-- so existing runs were submitted by 'default', and existing events a request caused
-- (source 'gateway') had 'default' as their actor; the other events' actor is their source.
ALTER TABLE pipeline_runs
    ADD COLUMN submitted_by text NOT NULL DEFAULT 'default'
        CHECK (submitted_by ~ '^[a-z0-9][a-z0-9_.-]{0,63}$');

-- One client's key never finds (nor reveals) another client's run. A run that failed
-- before its workflow started still releases its key (migration 0006): NULL keys never clash.
ALTER TABLE pipeline_runs DROP CONSTRAINT pipeline_runs_idempotency_key_key;
ALTER TABLE pipeline_runs
    ADD CONSTRAINT pipeline_runs_submitter_idempotency_key UNIQUE (submitted_by, idempotency_key);

ALTER TABLE pipeline_run_events ADD COLUMN actor text CHECK (length(actor) > 0);

-- The backfill is the one change the audit trail ever allows: its trigger is off for it.
ALTER TABLE pipeline_run_events DISABLE TRIGGER pipeline_run_events_append_only;
UPDATE pipeline_run_events
SET actor = CASE WHEN source = 'gateway' THEN 'default' ELSE source END;
ALTER TABLE pipeline_run_events ENABLE TRIGGER pipeline_run_events_append_only;

-- A writer that names no actor (the poller, the workers, the reconciler) acts by itself:
-- its component's name, the event's source.
CREATE FUNCTION pipeline_run_events_actor() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.actor := COALESCE(NEW.actor, NEW.source);
    RETURN NEW;
END $$;
CREATE TRIGGER pipeline_run_events_actor BEFORE INSERT ON pipeline_run_events
    FOR EACH ROW EXECUTE FUNCTION pipeline_run_events_actor();

ALTER TABLE pipeline_run_events ALTER COLUMN actor SET NOT NULL;
