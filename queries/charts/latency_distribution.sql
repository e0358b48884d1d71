-- name: latency_distribution
-- answers: How are RTT and handshake times spread for the busiest destinations? For the five TCP
--   destinations (this host as client) with the most connections that have an RTT: the share of
--   their connections at or below each time, in buckets a quarter of a power of two wide (a
--   cumulative distribution). Containers and pods are counted together. One row per panel
--   (`rtt`: each connection's average smoothed RTT; `handshake`: SYN sent to ESTABLISHED),
--   destination and bucket: panel, series (destination), x (bucket upper bound, µs), value
--   (share of the destination's connections, 0 to 1).
WITH conns AS (
    SELECT
        CASE WHEN family = 6 THEN '[' || remote_addr || ']' ELSE remote_addr END
            || ':' || CAST(remote_port AS VARCHAR) AS destination,
        CAST(rtt_avg_us AS DOUBLE) AS rtt_us,
        CAST(handshake_us AS DOUBLE) AS handshake_us
    FROM connections
    WHERE protocol = 'tcp' AND role = 'client' AND rtt_avg_us IS NOT NULL
),
top AS (
    SELECT destination, count(*) AS n FROM conns GROUP BY destination ORDER BY n DESC, destination LIMIT 5
),
times AS (
    SELECT 'rtt' AS panel, c.destination, c.rtt_us AS us FROM conns c JOIN top t ON t.destination = c.destination
    UNION ALL
    SELECT 'handshake' AS panel, c.destination, c.handshake_us AS us
    FROM conns c JOIN top t ON t.destination = c.destination
    WHERE c.handshake_us IS NOT NULL
),
bucketed AS (
    SELECT panel, destination AS series, power(2.0, ceil(log2(greatest(us, 1.0)) * 4) / 4) AS x, count(*) AS n
    FROM times
    GROUP BY 1, 2, 3
)
SELECT
    panel,
    series,
    x,
    CAST(sum(n) OVER (PARTITION BY panel, series ORDER BY x) AS DOUBLE)
        / CAST(sum(n) OVER (PARTITION BY panel, series) AS DOUBLE) AS value
FROM bucketed
ORDER BY panel DESC, series, x
