#!/usr/bin/env bash
# Creates role conductor_monitor (password CONDUCTOR_MONITOR_DB_PASSWORD): it may read the
# tables the Conductor server creates in database `conductor` and nothing else, always in a
# read-only transaction, in UTC. The workers' CONDUCTOR_DATABASE_URL uses it to see
# conductor-oss/conductor#326 (batchcore/conductor_queue.py). Runs after 10-create-databases.sh,
# once, on the first start with an empty data volume; on an existing volume run these
# statements by hand as the superuser.
set -euo pipefail

: "${CONDUCTOR_MONITOR_DB_PASSWORD:?CONDUCTOR_MONITOR_DB_PASSWORD must be set for the postgres service}"

psql --no-psqlrc -v ON_ERROR_STOP=1 \
    --username "${POSTGRES_USER:-postgres}" --dbname conductor \
    --set=password="$CONDUCTOR_MONITOR_DB_PASSWORD" <<'SQL'
CREATE ROLE conductor_monitor LOGIN PASSWORD :'password';
ALTER ROLE conductor_monitor SET default_transaction_read_only = on;
ALTER ROLE conductor_monitor SET TimeZone = 'UTC';
GRANT CONNECT ON DATABASE conductor TO conductor_monitor;
GRANT USAGE ON SCHEMA public TO conductor_monitor;
-- Conductor's Flyway creates its tables on the server's first start, after this script.
ALTER DEFAULT PRIVILEGES FOR ROLE conductor IN SCHEMA public
    GRANT SELECT ON TABLES TO conductor_monitor;
SQL
echo "created role conductor_monitor (reads database conductor)"
