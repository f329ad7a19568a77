-- hourly_running_servers: how many single-user servers ran in each UTC hour, and for how long.
-- A server runs from its `spawn_succeeded` record until the next stop record of the same user
-- and server (`stop_succeeded`, `server_exited`); one that never stops is counted until the last
-- record of the log it came from. Default servers have server_name ''. Hours in which no server
-- ran are absent (read them as 0).
-- Output: hour TIMESTAMP (UTC, start of the hour), running_servers BIGINT (servers running at
-- any moment of the hour), server_hours DOUBLE (server time inside the hour, in hours).
-- The last record of a source is the later of its last stored row (`events_rows`) and its
-- last folded heartbeat (`activity`): the `events` view's two parts, read apart, without
-- unnesting the heartbeats. Lifecycle records are never heartbeats: they are stored rows.
WITH RECURSIVE source_end AS (
  SELECT source_fp, max(last_ts) AS last_ts FROM (
    SELECT source_fp, max(ts) AS last_ts FROM events_rows GROUP BY source_fp
    UNION ALL
    SELECT source_fp, max("last") AS last_ts FROM activity WHERE offsets IS NOT NULL
    GROUP BY source_fp
  ) AS ends GROUP BY source_fp
),
lifecycle AS (
  SELECT hub, "user", COALESCE(server_name, '') AS server, kind, ts, source_fp,
         LEAD(ts) OVER (PARTITION BY hub, "user", COALESCE(server_name, '') ORDER BY ts, source_offset) AS next_ts
  FROM events_rows
  WHERE kind IN ('spawn_succeeded', 'stop_succeeded', 'server_exited')
    AND ts IS NOT NULL AND "user" IS NOT NULL
),
intervals AS (
  SELECT l."user", l.server, l.ts AS started, COALESCE(l.next_ts, e.last_ts) AS stopped
  FROM lifecycle l JOIN source_end e ON l.source_fp = e.source_fp
  WHERE l.kind = 'spawn_succeeded'
),
running AS (
  SELECT "user", server, started, stopped, date_trunc('hour', started) AS hour FROM intervals
  UNION ALL
  SELECT "user", server, started, stopped, hour + INTERVAL '1 hour'
  FROM running WHERE hour + INTERVAL '1 hour' < stopped
)
SELECT hour,
       COUNT(*) AS running_servers,
       ROUND(SUM(
         date_part('epoch', LEAST(stopped, hour + INTERVAL '1 hour')) - date_part('epoch', GREATEST(started, hour))
       ) / 3600.0, 4) AS server_hours
FROM running
GROUP BY hour
ORDER BY hour
