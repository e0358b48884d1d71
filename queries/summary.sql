-- name: summary
-- answers: What window does each recording cover, on which host, how much did it capture, and
--   was anything lost? (events_lost comes from the file metadata: when it is not 0, every count
--   below is a lower bound.)
WITH conns AS (
    SELECT
        source,
        count(*) AS connections,
        min(opened_at) AS first_event_at,
        max(last_seen_at) AS last_event_at
    FROM connections
    GROUP BY source
)
SELECT
    r.source,
    r.hostname,
    r.kernel,
    coalesce(r.started_at, conns.first_event_at) AS started_at,
    coalesce(r.ended_at, conns.last_event_at) AS ended_at,
    epoch_ns(coalesce(r.ended_at, conns.last_event_at))
        - epoch_ns(coalesce(r.started_at, conns.first_event_at)) AS window_ns,
    r.rows AS events,
    coalesce(conns.connections, 0) AS connections,
    r.events_lost,
    CASE
        WHEN r.events_lost > 0 THEN 'EVENTS LOST: ' || CAST(r.events_lost AS VARCHAR)
            || ' events were dropped by the kernel ring buffer; counts are lower bounds'
        ELSE 'none'
    END AS loss
FROM recordings r
LEFT JOIN conns ON conns.source = r.source
ORDER BY r.source
