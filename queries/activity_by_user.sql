-- activity_by_user: what each user did over the whole lake (personal data: keep it inside the lake).
-- Output: user VARCHAR, active_days BIGINT, logins BIGINT, spawns BIGINT, failed_spawns BIGINT,
-- activity_reports BIGINT (server activity POSTs), requests BIGINT (own requests),
-- first_seen TIMESTAMP, last_seen TIMESTAMP — busiest users first.
-- The `events` view's two parts are read apart (the same rows): the stored rows, one each,
-- and the heartbeats folded into `activity` (successful activity reports, by their own user,
-- all on their row's UTC day `dt`), a row of `count` reports from `first` to `last`.
WITH services AS (
  SELECT DISTINCT service AS name FROM events_rows WHERE service IS NOT NULL
),
records AS (
  SELECT "user", CAST(date_trunc('day', ts) AS DATE) AS day, kind, route, actor,
         ts AS first_ts, ts AS last_ts, CAST(1 AS BIGINT) AS n
  FROM events_rows
  WHERE "user" IS NOT NULL AND ts IS NOT NULL
  UNION ALL
  SELECT "user", CAST(dt AS DATE) AS day, 'request' AS kind,
         '/hub/api/users/{user}/activity' AS route, "user" AS actor,
         "first" AS first_ts, "last" AS last_ts, "count" AS n
  FROM activity WHERE offsets IS NOT NULL
)
SELECT "user",
       COUNT(DISTINCT day) AS active_days,
       SUM(CASE WHEN kind = 'login' THEN n ELSE 0 END) AS logins,
       SUM(CASE WHEN kind = 'spawn_succeeded' THEN n ELSE 0 END) AS spawns,
       SUM(CASE WHEN kind IN ('spawn_failed', 'spawn_timeout') THEN n ELSE 0 END) AS failed_spawns,
       SUM(CASE WHEN kind = 'request' AND route = '/hub/api/users/{user}/activity' THEN n ELSE 0 END) AS activity_reports,
       SUM(CASE WHEN kind = 'request' AND actor = "user" THEN n ELSE 0 END) AS requests,
       min(first_ts) AS first_seen,
       max(last_ts) AS last_seen
FROM records
WHERE "user" NOT IN (SELECT name FROM services)
  AND (kind <> 'request' OR actor = "user")
GROUP BY "user"
ORDER BY requests DESC, "user"
