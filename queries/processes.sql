-- name: processes
-- answers: Which processes use the network, and how is it going for each? Per command name:
--   pids, connections by outcome, distinct peers, bytes, retransmits.
SELECT
    comm,
    count(DISTINCT pid) AS pids,
    count(*) AS connections,
    sum(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS failed,
    sum(CASE WHEN outcome = 'reset' THEN 1 ELSE 0 END) AS reset,
    sum(CASE WHEN outcome = 'open_at_end' THEN 1 ELSE 0 END) AS open_at_end,
    count(DISTINCT remote_addr) AS peers,
    sum(bytes_sent) AS bytes_sent,
    sum(bytes_received) AS bytes_received,
    sum(retransmits) AS retransmits
FROM connections
GROUP BY comm
ORDER BY connections DESC, comm
