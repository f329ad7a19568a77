-- request_errors_by_route: which hub and server routes fail, and how often.
-- Routes are bounded templates (`/hub/api/users/{user}/server`), never raw paths.
-- Output: route VARCHAR, requests BIGINT, errors_4xx BIGINT, errors_5xx BIGINT,
-- error_rate DOUBLE (errors / requests) — routes with at least one error, worst first.
-- Reads the `events` view's two parts apart (the same rows): the stored rows, and the
-- heartbeats folded into `activity`, counted without unnesting them. Only successful activity
-- reports are folded (status < 400: `lake::heartbeat`), so they add requests and no error.
WITH by_route AS (
  SELECT route,
         COUNT(*) AS requests,
         SUM(CASE WHEN status BETWEEN 400 AND 499 THEN 1 ELSE 0 END) AS errors_4xx,
         SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors_5xx
  FROM events_rows
  WHERE kind = 'request' AND status IS NOT NULL
  GROUP BY route
  UNION ALL
  SELECT '/hub/api/users/{user}/activity' AS route, SUM("count") AS requests,
         0 AS errors_4xx, 0 AS errors_5xx
  FROM activity WHERE offsets IS NOT NULL
)
SELECT route,
       SUM(requests) AS requests,
       SUM(errors_4xx) AS errors_4xx,
       SUM(errors_5xx) AS errors_5xx,
       ROUND(CAST(SUM(errors_4xx) + SUM(errors_5xx) AS DOUBLE) / SUM(requests), 4) AS error_rate
FROM by_route
GROUP BY route
HAVING SUM(errors_4xx) + SUM(errors_5xx) > 0
ORDER BY errors_5xx DESC, errors_4xx DESC, route
