-- name: retransmits
-- answers: Where are packets being lost? Per TCP peer: retransmitted segments against segments
--   sent, and how many connections saw any retransmit.
SELECT
    remote_addr,
    remote_port,
    count(*) AS connections,
    sum(CASE WHEN retransmits > 0 THEN 1 ELSE 0 END) AS connections_retransmitting,
    sum(retransmits) AS retransmits,
    sum(packets_sent) AS packets_sent,
    round(100.0 * sum(retransmits) / greatest(sum(packets_sent), 1), 2) AS retransmit_pct
FROM connections
WHERE protocol = 'tcp'
GROUP BY remote_addr, remote_port
HAVING sum(retransmits) > 0
ORDER BY retransmits DESC, retransmit_pct DESC, remote_addr, remote_port
