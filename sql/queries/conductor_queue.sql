-- name: conductor_stuck_messages
-- Read-only, against Conductor's own database (CONDUCTOR_DATABASE_URL), not the service's.
-- A healthy server hands a popped, unacknowledged message out again soon after its delivery
-- time: PostgresQueueDAO.processAllUnacks runs every 60 s for messages 60 s past deliver_on.
-- One older than the threshold means that processor has died (conductor-oss/conductor#326).
-- A pass un-pops at most 1000 messages: more than that due at once (thousands of workflows
-- swept together) drain over several passes, so the threshold must outlast such a backlog.
-- deliver_on is a timestamp without time zone written in the Conductor JVM's time zone, so
-- this session's TimeZone must be the JVM's (localtimestamp is read in the session's zone).
-- stuck_lately: those delivered within the last `lately_seconds` (all of them when NULL): a
-- message a restart did not clear is no dead processor's doing (see stack.conductor_watch).
SELECT count(*) AS stuck_messages,
       COALESCE(EXTRACT(EPOCH FROM localtimestamp - min(deliver_on)), 0)::float AS oldest_seconds,
       COALESCE(array_agg(DISTINCT queue_name), '{}') AS queues,
       count(*) FILTER (WHERE %(lately_seconds)s::float IS NULL
                        OR deliver_on > localtimestamp
                                        - make_interval(secs => %(lately_seconds)s::float))
           AS stuck_lately
FROM queue_message
WHERE popped
  AND deliver_on < localtimestamp - make_interval(secs => %(stuck_after_seconds)s)
