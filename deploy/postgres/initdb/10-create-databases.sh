#!/usr/bin/env bash
# Creates the service's two databases, each owned by its own login role:
#   pipelines  (role pipelines, password PIPELINES_DB_PASSWORD) - the runs, used by our services
#   conductor  (role conductor, password CONDUCTOR_DB_PASSWORD) - the Conductor server's own
#
# The postgres image runs /docker-entrypoint-initdb.d/* once, on the first start with an
# empty data volume, as the superuser, before the server listens on TCP. Changing a
# password later means ALTER ROLE (or removing the volume), not re-running this.
set -euo pipefail

: "${PIPELINES_DB_PASSWORD:?PIPELINES_DB_PASSWORD must be set for the postgres service}"
: "${CONDUCTOR_DB_PASSWORD:?CONDUCTOR_DB_PASSWORD must be set for the postgres service}"

create_database() {
    local name="$1" password="$2"
    # The password goes in as a psql variable (:'password' quotes it as a literal), so it
    # is never part of the script text, the command line or the server log.
    psql --no-psqlrc -v ON_ERROR_STOP=1 \
        --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
        --set=name="$name" --set=password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name" ENCODING 'UTF8';
-- Only its own role (and the superuser) may connect to each database.
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"name" TO :"name";
SQL
    echo "created role and database ${name}"
}

create_database pipelines "$PIPELINES_DB_PASSWORD"
create_database conductor "$CONDUCTOR_DB_PASSWORD"
