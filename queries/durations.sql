-- name: durations
-- answers: Which connections lived longest, and which sat idle? Per connection: how long it
--   lived (a lower bound for connections open before the recording), how it ended, what it moved,
--   and for how long before its end (or the end of the recording) its counters had not moved.
SELECT
    c.source,
    c.conn_id,
    c.comm,
    c.pid,
    c.role,
    c.remote_addr,
    c.remote_port,
    c.outcome,
    c.preexisting,
    c.opened_at,
    c.duration_ns,
    c.bytes_sent + c.bytes_received AS bytes_total,
    epoch_ns(c.last_seen_at) - epoch_ns(c.last_activity_at) AS idle_ns
FROM connections c
WHERE c.protocol = 'tcp' AND c.outcome <> 'failed'
ORDER BY c.duration_ns DESC, idle_ns DESC, c.source, c.conn_id
