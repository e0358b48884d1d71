-- name: talkers
-- answers: Who moved the most data? Top remote endpoints and processes by bytes (both
--   directions), with connection counts.
SELECT
    remote_addr,
    remote_port,
    comm,
    protocol,
    count(*) AS connections,
    sum(bytes_sent) AS bytes_sent,
    sum(bytes_received) AS bytes_received,
    sum(bytes_sent + bytes_received) AS bytes_total
FROM connections
GROUP BY remote_addr, remote_port, comm, protocol
ORDER BY bytes_total DESC, remote_addr, remote_port, comm, protocol
