-- name: connections
-- answers: One row per connection or UDP flow, keyed by (source, conn_id): who, to where, when,
--   how it ended, for how long, how much it moved, how fast the path was.
--   Counters in events are cumulative, so a connection's totals are their maximum; the terminal
--   row (close, reset, failed) carries duration, error and reset details. A connection without
--   a terminal row was still open when the recording ended (outcome `open_at_end`); its duration
--   then runs from its first to its last row (a lower bound when `preexisting`).
SELECT
    source,
    conn_id,
    max(protocol) AS protocol,
    max(role) AS role,
    max(family) AS family,
    max(local_addr) AS local_addr,
    max(local_port) AS local_port,
    max(remote_addr) AS remote_addr,
    max(remote_port) AS remote_port,
    max(pid) AS pid,
    max(comm) AS comm,
    max(cgroup_id) AS cgroup_id,
    min(ts) AS opened_at,
    max(CASE WHEN kind IN ('close', 'reset', 'failed') THEN ts END) AS ended_at,
    max(ts) AS last_seen_at,
    CASE max(CASE kind WHEN 'reset' THEN 3 WHEN 'failed' THEN 2 WHEN 'close' THEN 1 ELSE 0 END)
        WHEN 3 THEN 'reset'
        WHEN 2 THEN 'failed'
        WHEN 1 THEN 'closed'
        ELSE 'open_at_end'
    END AS outcome,
    coalesce(CAST(max(duration_ns) AS BIGINT), epoch_ns(max(ts)) - epoch_ns(min(ts))) AS duration_ns,
    max(bytes_sent) AS bytes_sent,
    max(bytes_received) AS bytes_received,
    max(packets_sent) AS packets_sent,
    max(packets_received) AS packets_received,
    max(retransmits) AS retransmits,
    min(rtt_us) AS rtt_min_us,
    avg(rtt_us) AS rtt_avg_us,
    max(rtt_us) AS rtt_max_us,
    max(handshake_us) AS handshake_us,
    max(error) AS error,
    max(reset_by) AS reset_by,
    max(reset_reason) AS reset_reason,
    bool_or(preexisting) AS preexisting,
    count(*) AS events
FROM events
GROUP BY source, conn_id
