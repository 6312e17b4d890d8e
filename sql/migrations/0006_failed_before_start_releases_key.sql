-- A run that failed before its workflow started keeps no idempotency slot.
--
-- The gateway stores a run FAILED when Conductor cannot start its workflow and tells the
-- client to submit again; a retry with the same Idempotency-Key must then make a new
-- attempt, not replay the failure forever. The key (unique) passes to the new run: the
-- failed run's key is cleared in the same transaction as the new run's insert, and an
-- event on the failed run names its replacement. Only that change is allowed on a terminal
-- run, and only for a FAILED run that never had a workflow or a Workbench job.
CREATE OR REPLACE FUNCTION pipeline_runs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- May still change after the run ended: the workflow behind it (the gateway records it
    -- after a submission that failed at once; the reconciler attaches a follow-up), the
    -- trigger's own updated_at, and the poller's and reconciler's bookkeeping.
    after_end text[] := ARRAY[
        'conductor_workflow_id', 'updated_at', 'last_polled_at', 'next_poll_at',
        'poll_failures', 'last_poll_error', 'last_poll_error_kind', 'poll_lease_until',
        'workflow_synced_at', 'workflow_checked_at'];
    changed text;
BEGIN
    IF OLD.status IN ('COMPLETED', 'FAILED') THEN
        IF OLD.status = 'FAILED' AND OLD.conductor_workflow_id IS NULL
           AND OLD.workbench_job_id IS NULL AND NEW.idempotency_key IS NULL THEN
            after_end := after_end || 'idempotency_key'::text;
        END IF;
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
