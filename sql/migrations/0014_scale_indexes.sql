-- The database at millions of runs (issue 14, point 2).
--
-- The reconciler's lost-job and give-up queries want the active runs in a failure streak, a
-- handful; without an index of their own each pass read every active run.
CREATE INDEX pipeline_runs_poll_failing
    ON pipeline_runs (last_poll_error_kind, poll_failing_since)
    WHERE status IN ('SUBMITTED', 'RUNNING') AND last_poll_error_kind IS NOT NULL;

-- (status, created_at DESC, id DESC) gives the stuck PENDING runs oldest first as well: one
-- index fewer for every new run to write.
DROP INDEX pipeline_runs_pending;

-- updated_at is when something a user sees last changed, not when the run was last polled:
-- an update that touches only the poller's and reconciler's bookkeeping keeps it. A column
-- added later counts as one a user sees unless it is listed here.
CREATE FUNCTION pipeline_runs_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bookkeeping CONSTANT text[] := ARRAY[
        'updated_at', 'last_polled_at', 'next_poll_at', 'poll_failures', 'poll_kind_failures',
        'poll_failing_since', 'last_poll_error', 'last_poll_error_kind', 'poll_lease_until',
        'poll_lease_token', 'workflow_synced_at', 'workflow_checked_at', 'status_checked_at'];
BEGIN
    IF to_jsonb(NEW) - bookkeeping = to_jsonb(OLD) - bookkeeping THEN
        NEW.updated_at := OLD.updated_at;
    END IF;
    RETURN NEW;
END $$;

-- BEFORE triggers fire in name order: this one after pipeline_runs_guard, which sets
-- updated_at to now() on every update.
CREATE TRIGGER pipeline_runs_updated_at BEFORE UPDATE ON pipeline_runs
    FOR EACH ROW EXECUTE FUNCTION pipeline_runs_updated_at();
