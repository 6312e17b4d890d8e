-- Issue 11: the poller marked a run's workflow synced once Conductor took the WAIT
-- completion, and a completion sent while Conductor was still scheduling that WAIT did not
-- stick: runs ended and marked synced whose workflow still runs. The sync now marks a run
-- only once its workflow has left RUNNING; runs that ended in the last 30 days are checked
-- again (the poller's next sweeps re-read each workflow and finish those still running).
UPDATE pipeline_runs SET workflow_synced_at = NULL
WHERE status IN ('COMPLETED', 'FAILED') AND workflow_synced_at IS NOT NULL
  AND conductor_workflow_id IS NOT NULL AND workbench_job_id IS NOT NULL
  AND completed_at > now() - interval '30 days';
