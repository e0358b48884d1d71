-- name: failures
-- answers: Which destinations could not be connected to, and why (errno)? How many attempts
--   failed out of how many, which processes tried, and when (first and last failure)? Each
--   container or pod (`workload`, empty on the host) that tried is its own row, its attempts
--   counted on their own; the column is left out when no connection has one.
WITH attempts AS (
    SELECT coalesce(workload, '') AS wk, remote_addr, remote_port, count(*) AS attempts
    FROM connections
    WHERE protocol = 'tcp' AND role = 'client'
    GROUP BY coalesce(workload, ''), remote_addr, remote_port
),
failed AS (
    SELECT
        coalesce(workload, '') AS wk,
        remote_addr,
        remote_port,
        coalesce(error, 'unknown') AS error,
        count(*) AS failures,
        count(DISTINCT comm) AS processes,
        min(comm) AS first_process,
        min(opened_at) AS first_at,
        max(opened_at) AS last_at,
        CAST(avg(duration_ns) AS BIGINT) AS avg_attempt_ns
    FROM connections
    WHERE outcome = 'failed'
    GROUP BY coalesce(workload, ''), remote_addr, remote_port, coalesce(error, 'unknown')
)
SELECT
    nullif(f.wk, '') AS workload,
    f.remote_addr,
    f.remote_port,
    f.error,
    f.failures,
    a.attempts,
    round(100.0 * f.failures / a.attempts, 1) AS failed_pct,
    f.processes,
    f.first_process,
    f.first_at,
    f.last_at,
    f.avg_attempt_ns
FROM failed f
JOIN attempts a ON a.wk = f.wk AND a.remote_addr = f.remote_addr AND a.remote_port = f.remote_port
ORDER BY f.failures DESC, f.remote_addr, f.remote_port, f.error, f.wk
