-- hourly_running_servers: how many single-user servers ran in each UTC hour, and for how long.
-- A server runs from its `spawn_succeeded` record until the next stop record of the same
-- user and server (`stop_succeeded`, `server_exited`), or until the last record in the lake
-- if it is still running. Default servers have server_name ''.
-- Output: hour TIMESTAMP (UTC, start of the hour), running_servers BIGINT (servers running at
-- any moment of the hour), server_hours DOUBLE (total server time inside the hour, in hours).
WITH lifecycle AS (
  SELECT "user", COALESCE(server_name, '') AS server, kind, ts,
         LEAD(ts) OVER (PARTITION BY "user", COALESCE(server_name, '') ORDER BY ts, source_offset) AS next_ts
  FROM events
  WHERE kind IN ('spawn_succeeded', 'stop_succeeded', 'server_exited')
    AND ts IS NOT NULL AND "user" IS NOT NULL
),
intervals AS (
  SELECT "user", server, ts AS started,
         COALESCE(next_ts, (SELECT max(ts) FROM events)) AS stopped
  FROM lifecycle
  WHERE kind = 'spawn_succeeded'
),
hours AS (
  SELECT unnest(generate_series(date_trunc('hour', min(started)), date_trunc('hour', max(stopped)), INTERVAL '1 hour')) AS hour
  FROM intervals
)
SELECT h.hour,
       COUNT(i.started) AS running_servers,
       COALESCE(SUM(
         CAST(date_part('epoch', LEAST(i.stopped, h.hour + INTERVAL '1 hour')) - date_part('epoch', GREATEST(i.started, h.hour)) AS DOUBLE) / 3600.0
       ), 0.0) AS server_hours
FROM hours h
LEFT JOIN intervals i
  ON i.started < h.hour + INTERVAL '1 hour' AND i.stopped > h.hour
GROUP BY h.hour
ORDER BY h.hour
