-- The poller's failure streaks and its fenced write-backs (issue 12).
--
-- poll_failing_since: when the run's current streak of failed status calls began (NULL while
-- its status is read), so answers that retrying cannot fix (an unknown status, a malformed
-- answer, 401/403) end the run FAILED after POLL_GIVE_UP_SECONDS instead of being retried
-- forever.
-- poll_kind_failures: how many of the latest failures in a row were of last_poll_error_kind;
-- only consecutive 404s say the Workbench lost the job, not nine timeouts and one 404.
-- poll_lease_token: which claim holds the run; a sweep writes back only the runs it still
-- holds, so a slow sweep whose lease lapsed cannot overwrite a newer poller's bookkeeping.
ALTER TABLE pipeline_runs
    ADD COLUMN poll_failing_since timestamptz,
    ADD COLUMN poll_kind_failures integer NOT NULL DEFAULT 0 CHECK (poll_kind_failures >= 0),
    ADD COLUMN poll_lease_token uuid;
