-- name: idle
-- answers: Which TCP connections sat idle longest? By how long before their end (or the end of
--   the recording) their byte counters last moved: held-open pool connections, stuck peers,
--   keepalives nobody uses.
SELECT
    c.source,
    c.conn_id,
    c.comm,
    c.pid,
    c.role,
    c.remote_addr,
    c.remote_port,
    c.outcome,
    epoch_ns(c.last_seen_at) - epoch_ns(c.last_activity_at) AS idle_ns,
    c.duration_ns,
    c.last_activity_at,
    c.bytes_sent + c.bytes_received AS bytes_total
FROM connections c
WHERE c.protocol = 'tcp' AND c.outcome <> 'failed'
ORDER BY idle_ns DESC, c.duration_ns DESC, c.source, c.conn_id
