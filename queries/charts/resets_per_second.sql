-- name: resets_per_second
-- answers: When were connections reset, and by which side? Resets per second by `reset_by`
--   (`local`: this host sent the RST, `remote`: it received one). One row per time bucket and
--   side: t (bucket start), series, value (per second), bucket_ns.
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
resets AS (
    SELECT epoch_ns(ts) AS at, coalesce(reset_by, 'unknown') AS series FROM events WHERE kind = 'reset'
),
series AS (
    SELECT DISTINCT series FROM resets
),
counts AS (
    SELECT CAST((r.at - b.lo) / b.width AS BIGINT) AS bucket, r.series, count(*) AS n
    FROM resets r
    CROSS JOIN bounds b
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
