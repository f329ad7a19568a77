-- request_errors_by_route: which hub and server routes fail, and how often.
-- Routes are bounded templates (`/hub/api/users/{user}/server`), never raw paths.
-- Output: route VARCHAR, requests BIGINT, errors_4xx BIGINT, errors_5xx BIGINT,
-- error_rate DOUBLE (errors / requests) — routes with at least one error, worst first.
SELECT route,
       COUNT(*) AS requests,
       SUM(CASE WHEN status BETWEEN 400 AND 499 THEN 1 ELSE 0 END) AS errors_4xx,
       SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors_5xx,
       ROUND(CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*), 4) AS error_rate
FROM events
WHERE kind = 'request' AND status IS NOT NULL
GROUP BY route
HAVING SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) > 0
ORDER BY errors_5xx DESC, errors_4xx DESC, route
