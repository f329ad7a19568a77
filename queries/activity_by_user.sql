-- activity_by_user: what each user did over the whole lake (personal data: keep it inside the lake).
-- Output: user VARCHAR, active_days BIGINT, logins BIGINT, spawns BIGINT, failed_spawns BIGINT,
-- activity_reports BIGINT (server activity POSTs), requests BIGINT (own requests),
-- first_seen TIMESTAMP, last_seen TIMESTAMP — busiest users first.
WITH services AS (
  SELECT DISTINCT service AS name FROM events WHERE service IS NOT NULL
)
SELECT "user",
       COUNT(DISTINCT CAST(date_trunc('day', ts) AS DATE)) AS active_days,
       SUM(CASE WHEN kind = 'login' THEN 1 ELSE 0 END) AS logins,
       SUM(CASE WHEN kind = 'spawn_succeeded' THEN 1 ELSE 0 END) AS spawns,
       SUM(CASE WHEN kind IN ('spawn_failed', 'spawn_timeout') THEN 1 ELSE 0 END) AS failed_spawns,
       SUM(CASE WHEN kind = 'request' AND route = '/hub/api/users/{user}/activity' THEN 1 ELSE 0 END) AS activity_reports,
       SUM(CASE WHEN kind = 'request' AND actor = "user" THEN 1 ELSE 0 END) AS requests,
       min(ts) AS first_seen,
       max(ts) AS last_seen
FROM events
WHERE "user" IS NOT NULL AND ts IS NOT NULL
  AND "user" NOT IN (SELECT name FROM services)
  AND (kind <> 'request' OR actor = "user")
GROUP BY "user"
ORDER BY requests DESC, "user"
