-- The reconciler's bookkeeping: when a run's Conductor workflow was last checked, and the
-- kind of the last poll error (only a permanent one may end a run).
ALTER TABLE pipeline_runs ADD COLUMN workflow_checked_at timestamptz;
ALTER TABLE pipeline_runs ADD COLUMN last_poll_error_kind text;

CREATE INDEX pipeline_runs_workflow_check ON pipeline_runs (workflow_checked_at NULLS FIRST)
    WHERE status IN ('SUBMITTED', 'RUNNING');
