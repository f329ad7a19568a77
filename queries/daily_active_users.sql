-- daily_active_users: how many distinct people used the hub on each UTC day.
-- A user counts as active on a day when they logged in, had a server start, or made a
-- successful request on their own behalf (their server's activity reports included).
-- Services (the idle culler, CI drivers) are excluded: they appear in `service_created` records.
-- Output: day DATE, active_users BIGINT — one row per day with any activity, oldest first.
WITH services AS (
  SELECT DISTINCT service AS name FROM events WHERE service IS NOT NULL
)
SELECT CAST(date_trunc('day', ts) AS DATE) AS day,
       COUNT(DISTINCT "user") AS active_users
FROM events
WHERE ts IS NOT NULL
  AND "user" IS NOT NULL
  AND (kind IN ('login', 'spawn_succeeded')
       OR (kind = 'request' AND actor = "user" AND status < 400))
  AND "user" NOT IN (SELECT name FROM services)
GROUP BY 1
ORDER BY 1
