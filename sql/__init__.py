"""Package data, shipped as batchcore._sql: schema migrations and named queries (plain SQL)."""
