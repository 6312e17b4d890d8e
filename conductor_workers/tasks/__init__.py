"""The SDK adapters: one module per worker role, each task a thin call into the logic beside."""
