-- name: outcomes
-- answers: How many connections and flows were there, by protocol, role and outcome (closed,
--   reset, failed, open_at_end), and how much did each group move?
SELECT
    protocol,
    role,
    outcome,
    count(*) AS connections,
    round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY protocol), 1) AS share_of_protocol_pct,
    sum(bytes_sent) AS bytes_sent,
    sum(bytes_received) AS bytes_received,
    sum(CASE WHEN preexisting THEN 1 ELSE 0 END) AS preexisting
FROM connections
GROUP BY protocol, role, outcome
ORDER BY protocol, role, connections DESC, outcome
