-- name: udp
-- answers: Which UDP flows were there, and were they answered? Per peer, port and process:
--   flows, packets and bytes each way, flows that got no reply at all (a DNS resolver that does
--   not answer shows here), and how long flows stayed open. `port` is the peer's port for flows
--   this host started (role client) and this host's own port for flows it answered (role server).
SELECT
    remote_addr,
    CASE WHEN role = 'server' THEN local_port ELSE remote_port END AS port,
    role,
    comm,
    count(*) AS flows,
    sum(CASE WHEN packets_received = 0 THEN 1 ELSE 0 END) AS unanswered,
    round(100.0 * sum(CASE WHEN packets_received = 0 THEN 1 ELSE 0 END) / count(*), 1) AS unanswered_pct,
    sum(packets_sent) AS packets_sent,
    sum(packets_received) AS packets_received,
    sum(bytes_sent) AS bytes_sent,
    sum(bytes_received) AS bytes_received,
    CAST(avg(duration_ns) AS BIGINT) AS avg_duration_ns
FROM connections
WHERE protocol = 'udp'
GROUP BY remote_addr, CASE WHEN role = 'server' THEN local_port ELSE remote_port END, role, comm
ORDER BY flows DESC, remote_addr, port, role, comm
