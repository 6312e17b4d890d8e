#!/bin/sh
# Conductor's health check (compose.yaml): its HTTP server answers, and its queue is not stuck
# by conductor-oss/conductor#326. That bug's unack processor dies when the database is gone
# for longer than its retries, and popped messages are never handed out again: workflows
# stay stuck until the server restarts. This check then fails, so that an orchestrator
# restarting unhealthy containers (Swarm, a Kubernetes liveness probe, autoheal) cures it.
set -u

curl -fsS -o /dev/null --max-time 4 http://localhost:8080/health || exit 1

stuck_after="${CONDUCTOR_STUCK_MESSAGE_SECONDS:-300}"
case "$stuck_after" in
    '' | *[!0-9]*) echo "CONDUCTOR_STUCK_MESSAGE_SECONDS must be a number of seconds" >&2; exit 1 ;;
esac

# The condition of sql/queries/conductor_queue.sql (tests/unit/test_compose.py compares them),
# read-only, in UTC: the zone the server's JVM writes deliver_on in (JAVA_OPTS in compose.yaml).
if ! stuck=$(
    PGPASSWORD="$CONDUCTOR_DB_PASSWORD" PGCONNECT_TIMEOUT=3 \
    PGOPTIONS="-c default_transaction_read_only=on -c statement_timeout=5000 -c TimeZone=UTC" \
    psql --no-psqlrc -XAtq -v ON_ERROR_STOP=1 -v stuck_after="$stuck_after" \
        -h "${CONDUCTOR_DB_HOST:-postgres}" -U conductor -d conductor <<'SQL'
SELECT count(*) FROM queue_message
WHERE popped
  AND deliver_on < localtimestamp - make_interval(secs => :stuck_after)
SQL
); then
    # The database itself unreachable is no verdict on this bug; the server's own health
    # (above, and its requests failing) shows that outage.
    exit 0
fi

if [ "$stuck" != "0" ]; then
    echo "$stuck message(s) in Conductor's queue popped and never acknowledged for over" \
        "${stuck_after}s: its unack processor has died (conductor-oss/conductor#326);" \
        "restart the Conductor server"
    exit 1
fi
exit 0
