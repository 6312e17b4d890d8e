-- A terminal run is frozen as a whole, and no run's history can vanish through TRUNCATE.

-- The 0001 guard froze five columns of a terminal run; the rest (parameters, prefixes, the
-- pipeline, its timestamps, ...) could still be rewritten. Now every column is frozen except
-- the bookkeeping listed below, so a column added later is frozen too unless listed here.
CREATE OR REPLACE FUNCTION pipeline_runs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- May still change after the run ended: the workflow behind it (the gateway records it
    -- after a submission that failed at once; the reconciler attaches a follow-up), the
    -- trigger's own updated_at, and the poller's and reconciler's bookkeeping.
    after_end CONSTANT text[] := ARRAY[
        'conductor_workflow_id', 'updated_at', 'last_polled_at', 'next_poll_at',
        'poll_failures', 'last_poll_error', 'last_poll_error_kind', 'poll_lease_until',
        'workflow_synced_at', 'workflow_checked_at'];
    changed text;
BEGIN
    IF OLD.status IN ('COMPLETED', 'FAILED') THEN
        SELECT string_agg(col.key, ', ' ORDER BY col.key) INTO changed
        FROM jsonb_each(to_jsonb(NEW)) AS col
        WHERE col.key <> ALL (after_end) AND col.value IS DISTINCT FROM to_jsonb(OLD) -> col.key;
        IF changed IS NOT NULL THEN
            RAISE EXCEPTION 'run % is % (terminal) and cannot change (%)',
                OLD.id, OLD.status, changed
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NEW.status IS DISTINCT FROM OLD.status AND NOT (
           (OLD.status = 'PENDING' AND NEW.status IN ('SUBMITTED', 'FAILED'))
        OR (OLD.status = 'SUBMITTED' AND NEW.status IN ('RUNNING', 'COMPLETED', 'FAILED'))
        OR (OLD.status = 'RUNNING' AND NEW.status IN ('COMPLETED', 'FAILED'))) THEN
        RAISE EXCEPTION 'run % cannot move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.workbench_job_id IS NOT NULL
       AND NEW.workbench_job_id IS DISTINCT FROM OLD.workbench_job_id THEN
        RAISE EXCEPTION 'run % already has Workbench job %', OLD.id, OLD.workbench_job_id
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

-- Row triggers do not fire on TRUNCATE: without these, one statement would empty the
-- append-only trail (and, with CASCADE, the runs) without a trace.
CREATE FUNCTION refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% cannot be truncated: a run''s history never vanishes', TG_TABLE_NAME
        USING ERRCODE = 'check_violation';
END $$;

CREATE TRIGGER pipeline_runs_no_truncate BEFORE TRUNCATE ON pipeline_runs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
CREATE TRIGGER pipeline_run_events_no_truncate BEFORE TRUNCATE ON pipeline_run_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
