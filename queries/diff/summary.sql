-- name: diff-summary
-- answers: How do the two sides compare overall? Per side (before, after): recordings, window,
--   events and events lost, connections by outcome, bytes, median RTT, distinct destinations.
WITH rec AS (
    SELECT
        s.side,
        count(*) AS recordings,
        sum(r.rows) AS events,
        sum(r.events_lost) AS events_lost,
        sum(epoch_ns(r.ended_at) - epoch_ns(r.started_at)) AS window_ns
    FROM recordings r
    JOIN sides s ON s.source = r.source
    GROUP BY s.side
),
con AS (
    SELECT
        s.side,
        count(*) AS connections,
        sum(CASE WHEN c.outcome = 'closed' THEN 1 ELSE 0 END) AS closed,
        sum(CASE WHEN c.outcome = 'reset' THEN 1 ELSE 0 END) AS reset,
        sum(CASE WHEN c.outcome = 'failed' THEN 1 ELSE 0 END) AS failed,
        sum(CASE WHEN c.outcome = 'open_at_end' THEN 1 ELSE 0 END) AS open_at_end,
        sum(c.bytes_sent + c.bytes_received) AS bytes_total,
        sum(c.retransmits) AS retransmits,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY c.rtt_avg_us) AS rtt_p50_us,
        count(DISTINCT CASE WHEN c.role = 'client' THEN c.remote_addr || ':' || CAST(c.remote_port AS VARCHAR) END)
            AS destinations
    FROM connections c
    JOIN sides s ON s.source = c.source
    GROUP BY s.side
)
SELECT
    rec.side,
    rec.recordings,
    rec.window_ns,
    rec.events,
    rec.events_lost,
    con.connections,
    con.closed,
    con.reset,
    con.failed,
    con.open_at_end,
    round(100.0 * con.failed / con.connections, 2) AS failed_pct,
    round(100.0 * con.reset / con.connections, 2) AS reset_pct,
    con.bytes_total,
    con.retransmits,
    con.rtt_p50_us,
    con.destinations
FROM rec
LEFT JOIN con ON con.side = rec.side
ORDER BY CASE rec.side WHEN 'before' THEN 0 ELSE 1 END
