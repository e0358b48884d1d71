-- name: latency
-- answers: Which destinations are slowest? Per TCP destination (this host as client): the median
--   and 99th percentile of the connections' smoothed RTT and of the TCP handshake time, and the
--   worst RTT seen. Each container or pod (`workload`, empty on the host) is its own row, as its
--   network path may differ; the column is left out when no connection has one.
SELECT
    workload,
    remote_addr,
    remote_port,
    count(*) AS connections,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY rtt_avg_us) AS rtt_p50_us,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY rtt_avg_us) AS rtt_p99_us,
    max(rtt_max_us) AS rtt_max_us,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY handshake_us) AS handshake_p50_us,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY handshake_us) AS handshake_p99_us
FROM connections
WHERE protocol = 'tcp' AND role = 'client' AND rtt_avg_us IS NOT NULL
GROUP BY workload, remote_addr, remote_port
ORDER BY rtt_p99_us DESC, rtt_p50_us DESC, remote_addr, remote_port, workload NULLS FIRST
