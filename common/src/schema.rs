//! Schema version 3 of a Gespann recording: the public contract (documented in the README).
//!
//! Version 3 stores `ts` in microseconds (Parquet `TIMESTAMP(MICROS, UTC)`) instead of
//! nanoseconds: Spark refuses nanosecond timestamps, and every engine reads microseconds
//! natively. Durations stay in nanoseconds (`duration_ns`), so nothing the kernel measured is
//! rounded but the instant of each row. Readers take a version 1 or 2 file's nanosecond `ts` as
//! it is.
//!
//! Version 2 added where a connection lives ([`V2_COLUMNS`]: its network namespace, cgroup,
//! container and pod) after `cgroup_id`; a version 1 file has every other column, and readers
//! take the added ones as unknown (`netns` 0, the rest empty).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const SCHEMA_VERSION: u32 = 3;

/// Parquet key-value metadata keys.
pub mod meta {
    pub const SCHEMA_VERSION: &str = "gespann.schema_version";
    pub const VERSION: &str = "gespann.version";
    pub const HOSTNAME: &str = "gespann.hostname";
    pub const KERNEL: &str = "gespann.kernel";
    pub const STARTED_AT: &str = "gespann.started_at";
    pub const ENDED_AT: &str = "gespann.ended_at";
    pub const EVENTS_LOST: &str = "gespann.events_lost";
    pub const COMMAND_LINE: &str = "gespann.command_line";
    /// The sampling period in milliseconds.
    pub const SAMPLE_INTERVAL_MS: &str = "gespann.sample_interval_ms";
    /// Rows that arrived after a newer row had been written: the file is out of time order
    /// by that many rows (0 in a healthy recording).
    pub const LATE_ROWS: &str = "gespann.late_rows";
    /// Kernel amendments (a local RST after a close, connect()'s errno, the accepting
    /// process) that arrived after the rows they change had been written.
    pub const LATE_AMENDMENTS: &str = "gespann.late_amendments";
    /// Kernel records of a kind or size this version does not know (dropped).
    pub const UNKNOWN_RECORDS: &str = "gespann.unknown_records";
    /// UDP flows ended because the kernel's table lost them without a `close` record (which
    /// was lost, and counted in `gespann.events_lost`).
    pub const UDP_ENDS_INFERRED: &str = "gespann.udp_ends_inferred";
    /// TCP connections that ended without the kernel's record of their end, found out at the
    /// end of the recording (the kernel no longer held them): ended by a `close` row then.
    pub const TCP_ENDS_INFERRED: &str = "gespann.tcp_ends_inferred";
    /// How a shared recording was anonymized (`gespann anonymize`); absent in a recording as
    /// the recorder wrote it.
    pub const ANONYMIZED: &str = "gespann.anonymized";
}

/// Column names, in file order.
pub mod col {
    pub const TS: &str = "ts";
    pub const KIND: &str = "kind";
    pub const CONN_ID: &str = "conn_id";
    pub const PROTOCOL: &str = "protocol";
    pub const ROLE: &str = "role";
    pub const FAMILY: &str = "family";
    pub const LOCAL_ADDR: &str = "local_addr";
    pub const LOCAL_PORT: &str = "local_port";
    pub const REMOTE_ADDR: &str = "remote_addr";
    pub const REMOTE_PORT: &str = "remote_port";
    pub const PID: &str = "pid";
    pub const COMM: &str = "comm";
    pub const CGROUP_ID: &str = "cgroup_id";
    pub const NETNS: &str = "netns";
    pub const CGROUP: &str = "cgroup";
    pub const CONTAINER_ID: &str = "container_id";
    pub const CONTAINER_NAME: &str = "container_name";
    pub const POD_UID: &str = "pod_uid";
    pub const POD_NAME: &str = "pod_name";
    pub const POD_NAMESPACE: &str = "pod_namespace";
    pub const STATE: &str = "state";
    pub const BYTES_SENT: &str = "bytes_sent";
    pub const BYTES_RECEIVED: &str = "bytes_received";
    pub const PACKETS_SENT: &str = "packets_sent";
    pub const PACKETS_RECEIVED: &str = "packets_received";
    pub const RETRANSMITS: &str = "retransmits";
    pub const RTT_US: &str = "rtt_us";
    pub const HANDSHAKE_US: &str = "handshake_us";
    pub const DURATION_NS: &str = "duration_ns";
    pub const ERROR: &str = "error";
    pub const RESET_BY: &str = "reset_by";
    pub const RESET_REASON: &str = "reset_reason";
    pub const PREEXISTING: &str = "preexisting";
}

/// The `ts` column's type: microseconds since the Unix epoch, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The `ts` column's type in a file of schema `version`: nanoseconds before version 3.
pub fn timestamp_type_of(version: u32) -> DataType {
    if version >= 3 { timestamp_type() } else { DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())) }
}

/// The columns version 2 added (after `cgroup_id`); a version 1 file lacks them.
pub const V2_COLUMNS: [&str; 7] =
    [col::NETNS, col::CGROUP, col::CONTAINER_ID, col::CONTAINER_NAME, col::POD_UID, col::POD_NAME, col::POD_NAMESPACE];

/// The `cgroup` column's type: few distinct paths over many rows.
pub fn cgroup_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The columns a file of schema `version` must have: all of [`schema`] from version 2 (with a
/// nanosecond `ts` before version 3), all but [`V2_COLUMNS`] for version 1.
pub fn required_fields(version: u32) -> Vec<Field> {
    schema()
        .fields()
        .iter()
        .filter(|f| version >= 2 || !V2_COLUMNS.contains(&f.name().as_str()))
        .map(|f| {
            let f = f.as_ref().clone();
            if f.name() == col::TS { f.with_data_type(timestamp_type_of(version)) } else { f }
        })
        .collect()
}

/// The Arrow schema of the current version ([`SCHEMA_VERSION`]).
pub fn schema() -> SchemaRef {
    use col::*;
    let f = |name: &str, dt: DataType, nullable: bool| Field::new(name, dt, nullable);
    Arc::new(Schema::new(vec![
        f(TS, timestamp_type(), false),
        f(KIND, DataType::Utf8, false),
        f(CONN_ID, DataType::UInt64, false),
        f(PROTOCOL, DataType::Utf8, false),
        f(ROLE, DataType::Utf8, false),
        f(FAMILY, DataType::UInt8, false),
        f(LOCAL_ADDR, DataType::Utf8, false),
        f(LOCAL_PORT, DataType::UInt16, false),
        f(REMOTE_ADDR, DataType::Utf8, false),
        f(REMOTE_PORT, DataType::UInt16, false),
        f(PID, DataType::UInt32, false),
        f(COMM, DataType::Utf8, false),
        f(CGROUP_ID, DataType::UInt64, false),
        f(NETNS, DataType::UInt32, false),
        f(CGROUP, cgroup_type(), false),
        f(CONTAINER_ID, DataType::Utf8, true),
        f(CONTAINER_NAME, DataType::Utf8, true),
        f(POD_UID, DataType::Utf8, true),
        f(POD_NAME, DataType::Utf8, true),
        f(POD_NAMESPACE, DataType::Utf8, true),
        f(STATE, DataType::Utf8, true),
        f(BYTES_SENT, DataType::UInt64, false),
        f(BYTES_RECEIVED, DataType::UInt64, false),
        f(PACKETS_SENT, DataType::UInt64, false),
        f(PACKETS_RECEIVED, DataType::UInt64, false),
        f(RETRANSMITS, DataType::UInt32, false),
        f(RTT_US, DataType::UInt32, true),
        f(HANDSHAKE_US, DataType::UInt32, true),
        f(DURATION_NS, DataType::UInt64, true),
        f(ERROR, DataType::Utf8, true),
        f(RESET_BY, DataType::Utf8, true),
        f(RESET_REASON, DataType::Utf8, true),
        f(PREEXISTING, DataType::Boolean, false),
    ]))
}
