-- name: summary
-- answers: What window does each recording cover, on which host, how much did it capture, and
--   was anything lost? (events_lost comes from the file metadata: when it is not 0, every count
--   below is a lower bound.)
WITH ev AS (
    SELECT source, count(*) AS events, min(ts) AS first_event_at, max(ts) AS last_event_at
    FROM events
    GROUP BY source
),
conns AS (
    SELECT source, count(*) AS connections
    FROM connections
    GROUP BY source
)
SELECT
    r.source,
    r.hostname,
    r.kernel,
    coalesce(r.started_at, ev.first_event_at) AS started_at,
    coalesce(r.ended_at, ev.last_event_at) AS ended_at,
    epoch_ns(coalesce(r.ended_at, ev.last_event_at))
        - epoch_ns(coalesce(r.started_at, ev.first_event_at)) AS window_ns,
    coalesce(ev.events, 0) AS events,
    coalesce(conns.connections, 0) AS connections,
    r.events_lost,
    CASE
        WHEN r.events_lost > 0 THEN 'EVENTS LOST: ' || CAST(r.events_lost AS VARCHAR)
            || ' events were dropped by the kernel ring buffer; counts are lower bounds'
        ELSE 'none'
    END AS loss
FROM recordings r
LEFT JOIN ev ON ev.source = r.source
LEFT JOIN conns ON conns.source = r.source
ORDER BY r.source
