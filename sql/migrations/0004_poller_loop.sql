-- The one batch_status_poller loop the worker services keep alive, found by id (a consistent
-- read in Conductor) rather than only by correlation id.
CREATE TABLE poller_loop (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    workflow_id  text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now()
);
