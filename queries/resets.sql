-- name: resets
-- answers: Who reset whom? Connections ended by a RST, by direction (which side sent it: `local`
--   means this host aborted, `remote` means the peer did), reason, process and peer, with how
--   much had been moved before the reset. The peer is shown with its port when this host
--   connected out (role client); when it accepted (role server), this host's listening port is
--   shown with the process instead. `workload` is the process's container or pod (empty on the
--   host); the column is left out when no connection has one.
SELECT
    workload,
    coalesce(reset_by, 'unknown') AS reset_by,
    CASE coalesce(reset_by, 'unknown')
        WHEN 'local' THEN me || ' -> ' || peer
        WHEN 'remote' THEN peer || ' -> ' || me
        ELSE me || ' <-> ' || peer
    END AS direction,
    role,
    coalesce(reset_reason, '') AS reason,
    coalesce(error, '') AS error,
    count(*) AS resets,
    sum(bytes_sent + bytes_received) AS bytes_before_reset,
    min(ended_at) AS first_at,
    max(ended_at) AS last_at
FROM (
    SELECT
        *,
        CASE WHEN role = 'server' THEN comm || ':' || CAST(local_port AS VARCHAR) ELSE comm END AS me,
        CASE WHEN role = 'server' THEN remote_addr
            -- `[v6]:port`, as everywhere else: a bare IPv6 address and port cannot be told apart.
            WHEN remote_addr LIKE '%:%' THEN '[' || remote_addr || ']:' || CAST(remote_port AS VARCHAR)
            ELSE remote_addr || ':' || CAST(remote_port AS VARCHAR) END AS peer
    FROM connections
    WHERE outcome = 'reset'
) r
GROUP BY workload, reset_by, me, peer, role, reset_reason, error
ORDER BY resets DESC, reset_by, direction, role, reason, error, workload NULLS FIRST
