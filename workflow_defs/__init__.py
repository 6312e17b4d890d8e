"""Package data, shipped as batchcore._workflow_defs: Conductor task and workflow definitions."""
