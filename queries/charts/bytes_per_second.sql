-- name: bytes_per_second
-- answers: How much payload moved per second, each way? Bytes sent and received per second over
--   all connections and flows (TCP acknowledged / received in order, UDP datagram payload). One
--   row per time bucket and direction: t (bucket start), series (`sent`, `received`), value
--   (bytes per second).
-- The time axis: wall-clock buckets of whole seconds over each input's window (its first to its
-- last event), every bucket of a window present (zero when nothing happened), none between
-- windows. Buckets are wide enough for at most 240 of them over the windows' total length (plus
-- one per input).
WITH windows AS (
    SELECT source, min(epoch_ns(ts)) AS lo, max(epoch_ns(ts)) AS hi FROM events GROUP BY source
),
bounds AS (
    SELECT
        min(lo) AS lo,
        greatest(CAST(1000000000 AS BIGINT),
                 CAST(ceil(sum(hi - lo + 1) / 240.0 / 1e9) AS BIGINT) * 1000000000) AS width
    FROM windows
),
buckets AS (
    SELECT DISTINCT bucket FROM (
        SELECT unnest(range(CAST((w.lo - b.lo) / b.width AS BIGINT), CAST((w.hi - b.lo) / b.width AS BIGINT) + 1))
            AS bucket
        FROM windows w
        CROSS JOIN bounds b
    ) w
),
-- Counters are cumulative per connection: what a row adds is its value minus the one of the
-- connection's previous row. The first row of a connection open before the recording began adds
-- nothing (its counters hold what moved before).
deltas AS (
    SELECT
        epoch_ns(ts) AS at,
        CAST(bytes_sent AS BIGINT) - coalesce(
            lag(CAST(bytes_sent AS BIGINT)) OVER (PARTITION BY source, conn_id ORDER BY ts, bytes_sent, bytes_received, retransmits),
            CASE WHEN coalesce(preexisting, false) THEN CAST(bytes_sent AS BIGINT) ELSE 0 END) AS sent,
        CAST(bytes_received AS BIGINT) - coalesce(
            lag(CAST(bytes_received AS BIGINT)) OVER (PARTITION BY source, conn_id ORDER BY ts, bytes_sent, bytes_received, retransmits),
            CASE WHEN coalesce(preexisting, false) THEN CAST(bytes_received AS BIGINT) ELSE 0 END) AS received,
        CAST(retransmits AS BIGINT) - coalesce(
            lag(CAST(retransmits AS BIGINT)) OVER (PARTITION BY source, conn_id ORDER BY ts, bytes_sent, bytes_received, retransmits),
            CASE WHEN coalesce(preexisting, false) THEN CAST(retransmits AS BIGINT) ELSE 0 END) AS retransmits
    FROM events
),
series AS (
    SELECT * FROM (VALUES ('sent'), ('received')) AS v(series)
),
counts AS (
    SELECT CAST((d.at - b.lo) / b.width AS BIGINT) AS bucket, s.series,
           sum(CASE WHEN s.series = 'sent' THEN d.sent ELSE d.received END) AS n
    FROM deltas d
    CROSS JOIN bounds b
    CROSS JOIN series s
    GROUP BY 1, 2
)
SELECT
    make_timestamp_ns(b.lo + k.bucket * b.width) AS t,
    s.series,
    CAST(coalesce(c.n, 0) AS DOUBLE) * 1e9 / b.width AS value,
    b.width AS bucket_ns
FROM buckets k
CROSS JOIN series s
CROSS JOIN bounds b
LEFT JOIN counts c ON c.bucket = k.bucket AND c.series = s.series
ORDER BY t, series
