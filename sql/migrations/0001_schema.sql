-- The catalog, the runs and their append-only audit trail.

CREATE TABLE pipelines (
    name              text PRIMARY KEY
                      CHECK (name ~ '^[a-z0-9][a-z0-9_.-]*$' AND length(name) <= 100),
    mode              text NOT NULL CHECK (mode IN ('BATCH')),
    workflow_name     text NOT NULL CHECK (length(workflow_name) > 0),
    workflow_version  integer NOT NULL CHECK (workflow_version >= 1),
    description       text NOT NULL DEFAULT '',
    enabled           boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pipeline_runs (
    id                     uuid PRIMARY KEY,
    pipeline               text NOT NULL REFERENCES pipelines (name),
    mode                   text NOT NULL CHECK (mode IN ('BATCH')),
    status                 text NOT NULL DEFAULT 'PENDING'
                           CHECK (status IN ('PENDING', 'SUBMITTED', 'RUNNING', 'COMPLETED', 'FAILED')),
    input_path_prefix      text NOT NULL CHECK (length(input_path_prefix) BETWEEN 1 AND 1024),
    output_path_prefix     text NOT NULL CHECK (length(output_path_prefix) BETWEEN 1 AND 1024),
    parameters             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(parameters) = 'object'),
    idempotency_key        text UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    -- sha256 of the canonical request body: the same key with another body is a conflict
    request_fingerprint    text NOT NULL,
    conductor_workflow_id  text,
    workbench_job_id       text UNIQUE,
    error_message          text,
    error_details          jsonb,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    submitted_at           timestamptz,
    started_at             timestamptz,
    completed_at           timestamptz,
    -- the poller's bookkeeping
    last_polled_at         timestamptz,
    next_poll_at           timestamptz,
    poll_failures          integer NOT NULL DEFAULT 0 CHECK (poll_failures >= 0),
    last_poll_error        text,
    poll_lease_until       timestamptz,
    -- when the run's WAIT task in Conductor was completed after the run ended
    workflow_synced_at     timestamptz,
    CHECK (status NOT IN ('SUBMITTED', 'RUNNING') OR workbench_job_id IS NOT NULL),
    CHECK (status NOT IN ('COMPLETED', 'FAILED') OR completed_at IS NOT NULL),
    CHECK (status <> 'FAILED' OR error_message IS NOT NULL)
);

-- the poller's "due runs" claim
CREATE INDEX pipeline_runs_due ON pipeline_runs (next_poll_at)
    WHERE status IN ('SUBMITTED', 'RUNNING');
-- listing newest first, alone or filtered
CREATE INDEX pipeline_runs_newest ON pipeline_runs (created_at DESC, id DESC);
CREATE INDEX pipeline_runs_status_newest ON pipeline_runs (status, created_at DESC, id DESC);
CREATE INDEX pipeline_runs_pipeline_newest ON pipeline_runs (pipeline, created_at DESC, id DESC);
-- the reconciler's stuck PENDING runs and the terminal runs whose workflow still waits
CREATE INDEX pipeline_runs_pending ON pipeline_runs (created_at) WHERE status = 'PENDING';
CREATE INDEX pipeline_runs_unsynced ON pipeline_runs (completed_at)
    WHERE status IN ('COMPLETED', 'FAILED') AND workflow_synced_at IS NULL
      AND workbench_job_id IS NOT NULL AND conductor_workflow_id IS NOT NULL;

CREATE TABLE pipeline_run_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           uuid NOT NULL REFERENCES pipeline_runs (id),
    at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    source           text NOT NULL CHECK (length(source) > 0),
    previous_status  text CHECK (previous_status IN ('PENDING', 'SUBMITTED', 'RUNNING', 'COMPLETED', 'FAILED')),
    status           text NOT NULL
                     CHECK (status IN ('PENDING', 'SUBMITTED', 'RUNNING', 'COMPLETED', 'FAILED')),
    message          text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX pipeline_run_events_run ON pipeline_run_events (run_id, id);

-- Lifecycle rules, in the database so that no writer can break them.
CREATE FUNCTION pipeline_runs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('COMPLETED', 'FAILED') THEN
        IF NEW.status IS DISTINCT FROM OLD.status
           OR NEW.error_message IS DISTINCT FROM OLD.error_message
           OR NEW.error_details IS DISTINCT FROM OLD.error_details
           OR NEW.completed_at IS DISTINCT FROM OLD.completed_at
           OR NEW.workbench_job_id IS DISTINCT FROM OLD.workbench_job_id THEN
            RAISE EXCEPTION 'run % is % (terminal) and cannot change', OLD.id, OLD.status
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

CREATE TRIGGER pipeline_runs_guard BEFORE UPDATE ON pipeline_runs
    FOR EACH ROW EXECUTE FUNCTION pipeline_runs_guard();

CREATE FUNCTION pipeline_run_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pipeline_run_events is append-only' USING ERRCODE = 'check_violation';
END $$;

CREATE TRIGGER pipeline_run_events_append_only BEFORE UPDATE OR DELETE ON pipeline_run_events
    FOR EACH ROW EXECUTE FUNCTION pipeline_run_events_append_only();
