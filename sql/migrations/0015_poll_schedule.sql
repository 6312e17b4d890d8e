-- The poll schedule's index in a narrow table of its own (issue 14, point 2).
--
-- The claim needs the active runs in next_poll_at order, so next_poll_at was indexed on
-- pipeline_runs (pipeline_runs_due); PostgreSQL makes an update of an indexed column non-HOT,
-- so every poll wrote a new entry into each of the nine indexes an active run is in (992 bytes
-- of WAL per poll). pipeline_runs keeps its next_poll_at, in no index now, so a poll can be a
-- HOT update of the run; this table holds (run, next_poll_at) for the active runs only, kept by
-- a trigger, and its two small indexes are all a poll rewrites.
CREATE TABLE pipeline_run_polls (
    run_id       uuid PRIMARY KEY REFERENCES pipeline_runs (id) ON DELETE CASCADE,
    next_poll_at timestamptz NOT NULL
);
CREATE INDEX pipeline_run_polls_due ON pipeline_run_polls (next_poll_at);

INSERT INTO pipeline_run_polls (run_id, next_poll_at)
SELECT id, next_poll_at FROM pipeline_runs
WHERE status IN ('SUBMITTED', 'RUNNING') AND next_poll_at IS NOT NULL;

DROP INDEX pipeline_runs_due;

-- An active run with a next poll is on the schedule, at that time; any other run is not,
-- whichever statement moved it. The WHEN clauses keep the function out of every other write
-- (a new PENDING run, an ended run's bookkeeping).
CREATE FUNCTION pipeline_run_polls_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('SUBMITTED', 'RUNNING') AND NEW.next_poll_at IS NOT NULL THEN
        INSERT INTO pipeline_run_polls (run_id, next_poll_at) VALUES (NEW.id, NEW.next_poll_at)
        ON CONFLICT (run_id) DO UPDATE SET next_poll_at = EXCLUDED.next_poll_at;
    ELSIF TG_OP = 'UPDATE' THEN
        DELETE FROM pipeline_run_polls WHERE run_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER pipeline_run_polls_join AFTER INSERT ON pipeline_runs
    FOR EACH ROW WHEN (NEW.status IN ('SUBMITTED', 'RUNNING') AND NEW.next_poll_at IS NOT NULL)
    EXECUTE FUNCTION pipeline_run_polls_follow();

CREATE TRIGGER pipeline_run_polls_follow AFTER UPDATE OF status, next_poll_at ON pipeline_runs
    FOR EACH ROW WHEN ((OLD.status IN ('SUBMITTED', 'RUNNING')
                        OR NEW.status IN ('SUBMITTED', 'RUNNING'))
                       AND (OLD.status IS DISTINCT FROM NEW.status
                            OR OLD.next_poll_at IS DISTINCT FROM NEW.next_poll_at))
    EXECUTE FUNCTION pipeline_run_polls_follow();
