-- name: connections
-- answers: One row per connection or UDP flow, keyed by (source, conn_id): who, to where, when,
--   how it ended, for how long, how much it moved, how fast the path was.
--   Counters in events are cumulative, so a connection's totals are their maxima; its identity
--   (protocol, role, endpoints, process, and where the process runs: network namespace, cgroup,
--   container, pod) comes from its terminal row (close, reset, failed: with duration, error and
--   reset details) or else its open row. `workload` names the container or pod for people:
--   `namespace/pod_name` for a Kubernetes pod (`pod <uid>` when its name is unknown), else the
--   container's name (its id's first 12 digits when the name is unknown); NULL on the host, and
--   in a schema version 1 recording, whose identity columns beyond cgroup_id are all NULL. A connection without a terminal
--   row was still open when the recording ended (outcome `open_at_end`); its duration then runs
--   from its first to its last row (a lower bound when `preexisting`). last_activity_at is when
--   its byte counters last moved: the earliest row that already had its final total.
--   A template: the analyzer runs it once per input file ({events}: that file's rows, {source}:
--   its name) and unions the results, so every grouping and join key is the conn_id alone.
WITH totals AS (
    SELECT
        conn_id,
        min(ts) AS opened_at,
        max(CASE WHEN kind IN ('close', 'reset', 'failed') THEN ts END) AS ended_at,
        max(ts) AS last_seen_at,
        max(CASE kind WHEN 'reset' THEN 3 WHEN 'failed' THEN 2 WHEN 'close' THEN 1 ELSE 0 END) AS ending,
        max(duration_ns) AS duration_ns,
        max(bytes_sent) AS bytes_sent,
        max(bytes_received) AS bytes_received,
        max(packets_sent) AS packets_sent,
        max(packets_received) AS packets_received,
        max(retransmits) AS retransmits,
        min(rtt_us) AS rtt_min_us,
        avg(rtt_us) AS rtt_avg_us,
        max(rtt_us) AS rtt_max_us,
        max(handshake_us) AS handshake_us,
        bool_or(preexisting) AS preexisting,
        count(*) AS events,
        -- For last_activity_at, in this same pass: the row with the largest byte total and,
        -- among those, the earliest, found by maximizing both packed into one DECIMAL(38, 0):
        -- total * 10^19 + (2^63 - 1 - ts in ns). The low 19 digits give the time back.
        max(
            CAST(bytes_sent + bytes_received AS DECIMAL(38, 0)) * CAST(10000000000000000000 AS DECIMAL(38, 0))
            + CAST(9223372036854775807 - epoch_ns(ts) AS DECIMAL(38, 0))
        ) AS activity_key
    FROM {events}
    GROUP BY conn_id
),
closing AS (
    SELECT
        conn_id, protocol, role, family, local_addr, local_port, remote_addr, remote_port, pid,
        comm, cgroup_id, netns, cgroup, container_id, container_name, pod_uid, pod_name, pod_namespace,
        error, reset_by, reset_reason
    FROM {events}
    WHERE kind IN ('close', 'reset', 'failed')
),
opening AS (
    SELECT
        conn_id, protocol, role, family, local_addr, local_port, remote_addr, remote_port, pid,
        comm, cgroup_id, netns, cgroup, container_id, container_name, pod_uid, pod_name, pod_namespace
    FROM {events}
    WHERE kind = 'open'
)
SELECT
    *,
    coalesce(pod_namespace || '/' || pod_name, 'pod ' || pod_uid, container_name, left(container_id, 12)) AS workload
FROM (
SELECT
    {source} AS source,
    t.conn_id,
    coalesce(c.protocol, o.protocol) AS protocol,
    coalesce(c.role, o.role) AS role,
    coalesce(c.family, o.family) AS family,
    coalesce(c.local_addr, o.local_addr) AS local_addr,
    coalesce(c.local_port, o.local_port) AS local_port,
    coalesce(c.remote_addr, o.remote_addr) AS remote_addr,
    coalesce(c.remote_port, o.remote_port) AS remote_port,
    coalesce(c.pid, o.pid) AS pid,
    coalesce(c.comm, o.comm) AS comm,
    coalesce(c.cgroup_id, o.cgroup_id) AS cgroup_id,
    coalesce(c.netns, o.netns) AS netns,
    coalesce(c.cgroup, o.cgroup) AS cgroup,
    coalesce(c.container_id, o.container_id) AS container_id,
    coalesce(c.container_name, o.container_name) AS container_name,
    coalesce(c.pod_uid, o.pod_uid) AS pod_uid,
    coalesce(c.pod_name, o.pod_name) AS pod_name,
    coalesce(c.pod_namespace, o.pod_namespace) AS pod_namespace,
    t.opened_at,
    t.ended_at,
    t.last_seen_at,
    make_timestamp_ns(
        9223372036854775807 - CAST(t.activity_key % CAST(10000000000000000000 AS DECIMAL(38, 0)) AS BIGINT)
    ) AS last_activity_at,
    CASE t.ending
        WHEN 3 THEN 'reset'
        WHEN 2 THEN 'failed'
        WHEN 1 THEN 'closed'
        ELSE 'open_at_end'
    END AS outcome,
    coalesce(CAST(t.duration_ns AS BIGINT), epoch_ns(t.last_seen_at) - epoch_ns(t.opened_at)) AS duration_ns,
    t.bytes_sent,
    t.bytes_received,
    t.packets_sent,
    t.packets_received,
    t.retransmits,
    t.rtt_min_us,
    t.rtt_avg_us,
    t.rtt_max_us,
    t.handshake_us,
    c.error,
    c.reset_by,
    c.reset_reason,
    t.preexisting,
    t.events
FROM totals t
LEFT JOIN closing c ON c.conn_id = t.conn_id
LEFT JOIN opening o ON o.conn_id = t.conn_id
) j
