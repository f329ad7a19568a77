-- daily_active_users: how many distinct people used the hub on each UTC day.
-- A user counts as active on a day when they logged in, had a server start, their server
-- reported activity to the hub (`POST /hub/api/users/{user}/activity`, sent only when there was
-- activity), or they made a request to their own server (single-user request lines).
-- Services (the idle culler, CI drivers) never do any of these; those named in
-- `service_created` records are excluded as well.
-- Output: day DATE, active_users BIGINT — one row per day with any activity, oldest first.
WITH services AS (
  SELECT DISTINCT service AS name FROM events_rows WHERE service IS NOT NULL
),
-- The `events` view's two parts are read apart (the same rows): the stored rows, and the
-- heartbeats folded into `activity` (successful activity reports of their row's user, all on
-- the row's UTC day `dt`), whose users are read without unnesting their times.
days AS (
  SELECT CAST(date_trunc('day', ts) AS DATE) AS day, "user"
  FROM events_rows
  WHERE ts IS NOT NULL
    AND "user" IS NOT NULL
    AND (kind IN ('login', 'spawn_succeeded')
         OR (kind = 'request' AND status < 400 AND route = '/hub/api/users/{user}/activity')
         OR (kind = 'request' AND status < 400 AND source = 'singleuser' AND actor = "user"))
  UNION ALL
  SELECT CAST(dt AS DATE) AS day, "user" FROM activity WHERE offsets IS NOT NULL
)
SELECT day, COUNT(DISTINCT "user") AS active_users
FROM days
WHERE "user" NOT IN (SELECT name FROM services)
GROUP BY 1
ORDER BY 1
