-- One demo BATCH pipeline, so that a fresh stack can take a run at once.
INSERT INTO pipelines (name, mode, workflow_name, workflow_version, description)
VALUES ('demo-batch', 'BATCH', 'batch_pipeline_run', 1,
        'Demo batch pipeline: the Workbench writes a manifest (sizes, sha256) of the input files')
ON CONFLICT (name) DO NOTHING;
