-- name: udp
-- answers: Which UDP flows were there, and were they answered? Per remote endpoint and process:
--   flows, packets and bytes each way, flows that got no reply at all (a DNS resolver that does
--   not answer shows here), and how long flows stayed open.
SELECT
    remote_addr,
    remote_port,
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
GROUP BY remote_addr, remote_port, comm
ORDER BY flows DESC, remote_addr, remote_port, comm
