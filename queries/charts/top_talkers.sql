-- name: top_talkers
-- answers: Who moved the most data? The ten peers and processes with the most bytes both ways,
--   grouped as in the `talkers` report (`port`: the peer's when this host connected out, this
--   host's listening port when it accepted; containers and pods counted together). One row per
--   bar: label, bytes_sent, bytes_received.
SELECT label, bytes_sent, bytes_received
FROM (
SELECT
    coalesce(comm, '?') || CASE WHEN role = 'server' THEN ' <- ' ELSE ' -> ' END
        || CASE WHEN family = 6 THEN '[' || remote_addr || ']' ELSE remote_addr END
        || ':' || CAST(CASE WHEN role = 'server' THEN local_port ELSE remote_port END AS VARCHAR)
        || ' ' || protocol AS label,
    CAST(sum(bytes_sent) AS DOUBLE) AS bytes_sent,
    CAST(sum(bytes_received) AS DOUBLE) AS bytes_received
FROM connections
GROUP BY 1
) talkers
ORDER BY bytes_sent + bytes_received DESC, label
LIMIT 10
