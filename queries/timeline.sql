-- name: timeline
-- answers: How did the connection rate move over time? Connections opened (not counting those
--   open before the recording), closed, reset and failed, per time bucket, with opens per second.
--   Buckets are whole seconds, wide enough for at most 60 rows.
WITH marks AS (
    SELECT epoch_ns(ts) AS t, kind
    FROM events
    WHERE kind IN ('open', 'close', 'reset', 'failed') AND NOT preexisting
),
bounds AS (
    SELECT
        min(t) AS lo,
        greatest(CAST(1000000000 AS BIGINT),
                 CAST(ceil((max(t) - min(t) + 1) / 60.0 / 1e9) AS BIGINT) * 1000000000) AS width
    FROM marks
),
bucketed AS (
    SELECT
        CAST((m.t - b.lo) / b.width AS BIGINT) AS bucket,
        b.lo,
        b.width,
        m.kind
    FROM marks m
    CROSS JOIN bounds b
)
SELECT
    make_timestamp_ns(min(lo) + bucket * min(width)) AS bucket_start,
    min(width) AS bucket_ns,
    sum(CASE WHEN kind = 'open' THEN 1 ELSE 0 END) AS opened,
    sum(CASE WHEN kind = 'close' THEN 1 ELSE 0 END) AS closed,
    sum(CASE WHEN kind = 'reset' THEN 1 ELSE 0 END) AS reset,
    sum(CASE WHEN kind = 'failed' THEN 1 ELSE 0 END) AS failed,
    round(sum(CASE WHEN kind IN ('open', 'failed') THEN 1 ELSE 0 END) * 1e9 / min(width), 1)
        AS attempts_per_s
FROM bucketed
GROUP BY bucket
ORDER BY bucket_start
