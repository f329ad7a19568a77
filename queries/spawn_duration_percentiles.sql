-- spawn_duration_percentiles: how long users waited for their server, per UTC day.
-- From the hub's "User <name> took <n> seconds to start" records (successful spawns only).
-- Output: day DATE, spawns BIGINT, p50_seconds DOUBLE, p95_seconds DOUBLE, max_seconds DOUBLE.
SELECT CAST(date_trunc('day', ts) AS DATE) AS day,
       COUNT(*) AS spawns,
       ROUND(percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms / 1000.0), 3) AS p50_seconds,
       ROUND(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms / 1000.0), 3) AS p95_seconds,
       ROUND(max(duration_ms) / 1000.0, 3) AS max_seconds
FROM events
WHERE kind = 'spawn_succeeded' AND ts IS NOT NULL AND duration_ms IS NOT NULL
GROUP BY 1
ORDER BY 1
