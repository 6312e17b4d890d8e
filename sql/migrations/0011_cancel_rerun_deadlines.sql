-- Cancelling, re-running and deadlines (issue 13).
--
-- CANCELLED is a terminal status: a run moves there from PENDING (no job was ever asked
-- for) or once the Workbench confirms its job CANCELLED. The columns:
--   cancel_requested_at/_by/_reason  why the run's job is to be cancelled: 'requested' by a
--       client (_by is the token's name), 'deadline' reached, or 'ended': the run ended while
--       a submission was in flight, so a job may exist that nobody follows;
--   cancel_sent_at     when the Workbench accepted the cancel of the run's job;
--   submit_started_at  when a submit task first asked the Workbench for a job: before it, a
--       cancel ends the run at once, since no job can exist;
--   deadline_at        when an active run has its job cancelled and ends FAILED;
--   rerun_of           the run this one re-runs;
--   status_checked_at  when the Workbench last confirmed the run's status.
ALTER TABLE pipeline_runs DROP CONSTRAINT pipeline_runs_status_check;
ALTER TABLE pipeline_runs ADD CONSTRAINT pipeline_runs_status_check
    CHECK (status IN ('PENDING', 'SUBMITTED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'));
ALTER TABLE pipeline_runs DROP CONSTRAINT pipeline_runs_check1;
ALTER TABLE pipeline_runs ADD CONSTRAINT pipeline_runs_ended_at
    CHECK (status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED') OR completed_at IS NOT NULL);

ALTER TABLE pipeline_run_events DROP CONSTRAINT pipeline_run_events_status_check;
ALTER TABLE pipeline_run_events ADD CONSTRAINT pipeline_run_events_status_check
    CHECK (status IN ('PENDING', 'SUBMITTED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'));
ALTER TABLE pipeline_run_events DROP CONSTRAINT pipeline_run_events_previous_status_check;
ALTER TABLE pipeline_run_events ADD CONSTRAINT pipeline_run_events_previous_status_check
    CHECK (previous_status IN
           ('PENDING', 'SUBMITTED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'));

ALTER TABLE pipeline_runs
    ADD COLUMN cancel_requested_at timestamptz,
    ADD COLUMN cancel_requested_by text CHECK (length(cancel_requested_by) > 0),
    ADD COLUMN cancel_reason text CHECK (cancel_reason IN ('requested', 'deadline', 'ended')),
    ADD COLUMN cancel_sent_at timestamptz,
    ADD COLUMN submit_started_at timestamptz,
    ADD COLUMN deadline_at timestamptz,
    ADD COLUMN rerun_of uuid REFERENCES pipeline_runs (id),
    ADD COLUMN status_checked_at timestamptz,
    ADD CONSTRAINT pipeline_runs_cancel_reason
        CHECK ((cancel_requested_at IS NULL) = (cancel_reason IS NULL));

-- Runs from before deadlines get the default one (RUN_DEADLINE_SECONDS' default, one day)
-- from their creation, so none stays open forever; a status already read counts as checked.
UPDATE pipeline_runs SET deadline_at = created_at + interval '1 day'
WHERE status IN ('PENDING', 'SUBMITTED', 'RUNNING');
UPDATE pipeline_runs SET status_checked_at = last_polled_at
WHERE status IN ('SUBMITTED', 'RUNNING') AND last_polled_at IS NOT NULL
  AND last_poll_error IS NULL;

CREATE INDEX pipeline_runs_rerun_of ON pipeline_runs (rerun_of) WHERE rerun_of IS NOT NULL;
-- Active runs past their deadline, and ended runs whose job is still to be cancelled.
CREATE INDEX pipeline_runs_deadline ON pipeline_runs (deadline_at)
    WHERE status IN ('PENDING', 'SUBMITTED', 'RUNNING');
CREATE INDEX pipeline_runs_cancel_unsent ON pipeline_runs (cancel_requested_at)
    WHERE cancel_requested_at IS NOT NULL AND cancel_sent_at IS NULL;

DROP INDEX pipeline_runs_unsynced;
CREATE INDEX pipeline_runs_unsynced ON pipeline_runs (completed_at)
    WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND workflow_synced_at IS NULL;

-- A pipeline's bound on a run's time, the default of its runs' deadline_seconds.
ALTER TABLE pipelines ADD COLUMN max_runtime_seconds integer
    CHECK (max_runtime_seconds BETWEEN 60 AND 604800);

CREATE OR REPLACE FUNCTION pipeline_runs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- May still change after the run ended: the workflow behind it (the gateway records it
    -- after a submission that failed at once; the reconciler attaches a follow-up), the
    -- trigger's own updated_at, the poller's and reconciler's bookkeeping, and the cancel of
    -- a job that showed up after the run ended (its id, once, and when the cancel was sent).
    after_end text[] := ARRAY[
        'conductor_workflow_id', 'updated_at', 'last_polled_at', 'next_poll_at',
        'poll_failures', 'last_poll_error', 'last_poll_error_kind', 'poll_lease_until',
        'workflow_synced_at', 'workflow_checked_at', 'cancel_sent_at'];
    changed text;
BEGIN
    IF OLD.status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN
        IF OLD.status = 'FAILED' AND OLD.conductor_workflow_id IS NULL
           AND OLD.workbench_job_id IS NULL AND NEW.idempotency_key IS NULL THEN
            after_end := after_end || 'idempotency_key'::text;
        END IF;
        -- A job that may exist for an ended run is to be cancelled: the request once, and
        -- the job's id once it is known.
        IF OLD.cancel_requested_at IS NULL THEN
            after_end := after_end
                || ARRAY['cancel_requested_at', 'cancel_requested_by', 'cancel_reason'];
        END IF;
        IF OLD.workbench_job_id IS NULL
           AND COALESCE(NEW.cancel_requested_at, OLD.cancel_requested_at) IS NOT NULL THEN
            after_end := after_end || 'workbench_job_id'::text;
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
           (OLD.status = 'PENDING' AND NEW.status IN ('SUBMITTED', 'FAILED', 'CANCELLED'))
        OR (OLD.status = 'SUBMITTED'
            AND NEW.status IN ('RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'))
        OR (OLD.status = 'RUNNING' AND NEW.status IN ('COMPLETED', 'FAILED', 'CANCELLED'))) THEN
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
