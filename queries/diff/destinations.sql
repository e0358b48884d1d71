-- name: diff-destinations
-- answers: What changed per destination between before and after? New and vanished
--   destinations first, then those that got worse (failure or reset share up 5 points or more,
--   or median RTT up by half or more), then better, then unchanged; connections, failures,
--   resets, median RTT and bytes side by side. A destination is a remote endpoint this host
--   connected to, or, for connections it accepted, its own listening port (peer `(clients)`),
--   for each container or pod (`workload`, empty on the host; the column is left out when no
--   connection has one). A pod replaced between the two (a rollout) has a new name, so its
--   destinations show as vanished under the old pod and new under the new one.
WITH per AS (
    SELECT
        s.side,
        coalesce(c.workload, '') AS wk,
        c.protocol,
        CASE WHEN c.role = 'server' THEN '(clients)' ELSE c.remote_addr END AS peer,
        CASE WHEN c.role = 'server' THEN c.local_port ELSE c.remote_port END AS port,
        count(*) AS connections,
        sum(CASE WHEN c.outcome = 'failed' THEN 1 ELSE 0 END) AS failures,
        sum(CASE WHEN c.outcome = 'reset' THEN 1 ELSE 0 END) AS resets,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY c.rtt_avg_us) AS rtt_p50_us,
        sum(c.bytes_sent + c.bytes_received) AS bytes_total
    FROM connections c
    JOIN sides s ON s.source = c.source
    GROUP BY 1, 2, 3, 4, 5
),
b AS (SELECT * FROM per WHERE side = 'before'),
a AS (SELECT * FROM per WHERE side = 'after'),
j AS (
    SELECT
        coalesce(a.wk, b.wk) AS wk,
        coalesce(a.protocol, b.protocol) AS protocol,
        coalesce(a.peer, b.peer) AS peer,
        coalesce(a.port, b.port) AS port,
        b.connections AS connections_before,
        a.connections AS connections_after,
        b.failures AS failures_before,
        a.failures AS failures_after,
        b.resets AS resets_before,
        a.resets AS resets_after,
        b.rtt_p50_us AS rtt_p50_before_us,
        a.rtt_p50_us AS rtt_p50_after_us,
        b.bytes_total AS bytes_before,
        a.bytes_total AS bytes_after,
        100.0 * b.failures / b.connections AS fb,
        100.0 * a.failures / a.connections AS fa,
        100.0 * b.resets / b.connections AS rb,
        100.0 * a.resets / a.connections AS ra
    FROM a
    FULL OUTER JOIN b ON a.wk = b.wk AND a.protocol = b.protocol AND a.peer = b.peer AND a.port = b.port
),
k AS (
    SELECT
        *,
        CASE
            WHEN connections_before IS NULL THEN 'new'
            WHEN connections_after IS NULL THEN 'vanished'
            WHEN fa - fb >= 5 OR ra - rb >= 5
                OR rtt_p50_after_us >= 1.5 * rtt_p50_before_us THEN 'worse'
            WHEN fb - fa >= 5 OR rb - ra >= 5
                OR rtt_p50_before_us >= 1.5 * rtt_p50_after_us THEN 'better'
            ELSE 'same'
        END AS change
    FROM j
)
SELECT
    nullif(wk, '') AS workload,
    change,
    protocol,
    peer,
    port,
    connections_before,
    connections_after,
    failures_before,
    failures_after,
    round(fb, 1) AS failed_before_pct,
    round(fa, 1) AS failed_after_pct,
    resets_before,
    resets_after,
    rtt_p50_before_us,
    rtt_p50_after_us,
    bytes_before,
    bytes_after
FROM k
ORDER BY
    CASE change WHEN 'new' THEN 0 WHEN 'vanished' THEN 1 WHEN 'worse' THEN 2 WHEN 'better' THEN 3 ELSE 4 END,
    abs(coalesce(fa, 0) - coalesce(fb, 0)) + abs(coalesce(ra, 0) - coalesce(rb, 0)) DESC,
    coalesce(connections_after, 0) + coalesce(connections_before, 0) DESC,
    protocol,
    peer,
    port,
    wk
