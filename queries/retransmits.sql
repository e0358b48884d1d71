-- name: retransmits
-- answers: Where are packets being lost? Per TCP peer and port (the peer's port when this host
--   connected out, this host's listening port when it accepted): retransmitted segments against
--   segments sent, and how many connections saw any retransmit.
SELECT
    remote_addr,
    CASE WHEN role = 'server' THEN local_port ELSE remote_port END AS port,
    role,
    count(*) AS connections,
    sum(CASE WHEN retransmits > 0 THEN 1 ELSE 0 END) AS connections_retransmitting,
    sum(retransmits) AS retransmits,
    sum(packets_sent) AS packets_sent,
    round(100.0 * sum(retransmits) / greatest(sum(packets_sent), 1), 2) AS retransmit_pct
FROM connections
WHERE protocol = 'tcp'
GROUP BY remote_addr, CASE WHEN role = 'server' THEN local_port ELSE remote_port END, role
HAVING sum(retransmits) > 0
ORDER BY retransmits DESC, retransmit_pct DESC, remote_addr, port, role
