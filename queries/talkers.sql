-- name: talkers
-- answers: Who moved the most data? Top peers and processes by bytes (both directions), with
--   connection counts. `port` is the peer's port when this host connected out (role client) and
--   this host's listening port when it accepted (role server), so a service's clients group
--   together instead of one row per ephemeral port. `workload` is the process's container or
--   pod (empty on the host); the column is left out when no connection has one.
SELECT
    workload,
    remote_addr,
    CASE WHEN role = 'server' THEN local_port ELSE remote_port END AS port,
    role,
    comm,
    protocol,
    count(*) AS connections,
    sum(bytes_sent) AS bytes_sent,
    sum(bytes_received) AS bytes_received,
    sum(bytes_sent + bytes_received) AS bytes_total
FROM connections
GROUP BY workload, remote_addr, CASE WHEN role = 'server' THEN local_port ELSE remote_port END, role, comm, protocol
ORDER BY bytes_total DESC, remote_addr, port, role, comm, protocol, workload NULLS FIRST
