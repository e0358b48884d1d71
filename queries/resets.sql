-- name: resets
-- answers: Who reset whom? Connections ended by a RST, by direction (which side sent it: `local`
--   means this host aborted, `remote` means the peer did), reason, process and peer, with how
--   much had been moved before the reset.
SELECT
    coalesce(reset_by, 'unknown') AS reset_by,
    CASE coalesce(reset_by, 'unknown')
        WHEN 'local' THEN comm || ' -> ' || remote_addr || ':' || CAST(remote_port AS VARCHAR)
        WHEN 'remote' THEN remote_addr || ':' || CAST(remote_port AS VARCHAR) || ' -> ' || comm
        ELSE comm || ' <-> ' || remote_addr || ':' || CAST(remote_port AS VARCHAR)
    END AS direction,
    role,
    coalesce(reset_reason, '') AS reason,
    coalesce(error, '') AS error,
    count(*) AS resets,
    sum(bytes_sent + bytes_received) AS bytes_before_reset,
    min(ended_at) AS first_at,
    max(ended_at) AS last_at
FROM connections
WHERE outcome = 'reset'
GROUP BY reset_by, comm, remote_addr, remote_port, role, reset_reason, error
ORDER BY resets DESC, reset_by, direction, role, reason, error
