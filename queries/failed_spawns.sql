-- failed_spawns: every server start that failed or timed out, with the hub's reason.
-- Output: ts TIMESTAMP, user VARCHAR, server_name VARCHAR ('' = default server, NULL = unknown),
-- kind VARCHAR (spawn_failed | spawn_timeout), reason VARCHAR (first line of the hub's message).
SELECT ts, "user", server_name, kind,
       split_part(message, chr(10), 1) AS reason
FROM events
WHERE kind IN ('spawn_failed', 'spawn_timeout')
ORDER BY ts, source_offset
