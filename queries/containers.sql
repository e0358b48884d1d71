-- name: containers
-- answers: Which container or pod is in trouble? Per Kubernetes pod (`namespace/name`) or, outside
--   a pod, per container (its name, or its id's first 12 digits): connections by outcome, resets
--   by which side sent the RST (`reset_local`: this host's process aborted, `reset_remote`: the
--   peer did), the three commonest errnos of its failed attempts, bytes each way, and the three
--   destinations it connected to most (connections in parentheses). Everything outside a
--   container is one `(host)` line, so the host's share stays in view; `(unknown)` is a schema
--   version 1 recording, which does not say. Troubled first (failed and reset connections).
WITH c AS (
    SELECT
        *,
        coalesce(workload, CASE WHEN cgroup IS NULL THEN '(unknown)' ELSE '(host)' END) AS who,
        CASE
            WHEN pod_uid IS NOT NULL OR pod_name IS NOT NULL THEN 'pod'
            WHEN container_id IS NOT NULL OR container_name IS NOT NULL THEN 'container'
            WHEN cgroup IS NULL THEN 'unknown'
            ELSE 'host'
        END AS kind
    FROM connections
),
per AS (
    SELECT
        who,
        kind,
        count(DISTINCT container_id) AS containers,
        count(*) AS connections,
        sum(CASE WHEN outcome = 'closed' THEN 1 ELSE 0 END) AS closed,
        sum(CASE WHEN outcome = 'reset' THEN 1 ELSE 0 END) AS reset,
        sum(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS failed,
        sum(CASE WHEN outcome = 'open_at_end' THEN 1 ELSE 0 END) AS open_at_end,
        sum(CASE WHEN outcome = 'reset' AND reset_by = 'local' THEN 1 ELSE 0 END) AS reset_local,
        sum(CASE WHEN outcome = 'reset' AND reset_by = 'remote' THEN 1 ELSE 0 END) AS reset_remote,
        sum(bytes_sent) AS bytes_sent,
        sum(bytes_received) AS bytes_received
    FROM c
    GROUP BY who, kind
),
errors AS (
    SELECT who, kind, error, n, row_number() OVER (PARTITION BY who, kind ORDER BY n DESC, error) AS rank
    FROM (
        SELECT who, kind, coalesce(error, 'unknown') AS error, count(*) AS n
        FROM c
        WHERE outcome = 'failed'
        GROUP BY who, kind, coalesce(error, 'unknown')
    ) e
),
destinations AS (
    SELECT who, kind, dest, n, row_number() OVER (PARTITION BY who, kind ORDER BY n DESC, dest) AS rank
    FROM (
        -- Grouped first, then written out: one string per destination, not per connection.
        SELECT
            who,
            kind,
            CASE WHEN family = 6 THEN '[' || remote_addr || ']' ELSE remote_addr END
                || ':' || CAST(remote_port AS VARCHAR) AS dest,
            n
        FROM (
            SELECT who, kind, family, remote_addr, remote_port, count(*) AS n
            FROM c
            WHERE role = 'client'
            GROUP BY who, kind, family, remote_addr, remote_port
        ) g
    ) d
),
error_text AS (
    SELECT who, kind, string_agg(error || ' ' || CAST(n AS VARCHAR), ', ' ORDER BY n DESC, error) AS top_errors
    FROM errors
    WHERE rank <= 3
    GROUP BY who, kind
),
destination_text AS (
    SELECT who, kind, string_agg(dest || ' (' || CAST(n AS VARCHAR) || ')', ', ' ORDER BY n DESC, dest) AS top_destinations
    FROM destinations
    WHERE rank <= 3
    GROUP BY who, kind
)
SELECT
    p.who AS workload,
    p.kind,
    p.containers,
    p.connections,
    p.closed,
    p.reset,
    p.failed,
    p.open_at_end,
    p.reset_local,
    p.reset_remote,
    coalesce(e.top_errors, '') AS top_errors,
    p.bytes_sent,
    p.bytes_received,
    coalesce(d.top_destinations, '') AS top_destinations
FROM per p
LEFT JOIN error_text e ON e.who = p.who AND e.kind = p.kind
LEFT JOIN destination_text d ON d.who = p.who AND d.kind = p.kind
ORDER BY p.failed + p.reset DESC, p.connections DESC, p.who, p.kind
