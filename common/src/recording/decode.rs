//! Arrow back to rows: [`events_from_batch`] turns a batch of a recording (schema version 1, 2 or 3) into [`Event`]s.
//!
//! The inverse of `encode`, kept apart from the reader so that anything holding a batch (the
//! reader, the replay source, a test) decodes it the same way; every bad value is an error naming
//! the file and the column, never a panic.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, StringArray, TimestampNanosecondArray, UInt8Array, UInt16Array, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::error::FormatError;
use crate::event::{Event, EventKind, Protocol, ResetBy, Role, Workload, errno_static, tcp_state_static};
use crate::schema::col;

fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    if a.is_null(i) { None } else { Some(a.value(i)) }
}

fn column<'a, T: 'static>(path: &Path, batch: &'a RecordBatch, name: &'static str) -> Result<&'a T, FormatError> {
    let c = batch.column_by_name(name).ok_or_else(|| FormatError::BadValue {
        path: path.to_owned(),
        column: name,
        what: "missing or of the wrong type".into(),
    })?;
    column_of(path, c, name)
}

fn column_of<'a, T: 'static>(path: &Path, c: &'a ArrayRef, name: &'static str) -> Result<&'a T, FormatError> {
    c.as_any().downcast_ref::<T>().ok_or_else(|| FormatError::BadValue {
        path: path.to_owned(),
        column: name,
        what: "missing or of the wrong type".into(),
    })
}

/// The columns version 2 added, each `None` in a version 1 batch.
struct WorkloadColumns {
    netns: Option<UInt32Array>,
    cgroup: Option<StringArray>,
    container_id: Option<StringArray>,
    container_name: Option<StringArray>,
    pod_uid: Option<StringArray>,
    pod_name: Option<StringArray>,
    pod_namespace: Option<StringArray>,
}

impl WorkloadColumns {
    fn of(path: &Path, batch: &RecordBatch) -> Result<Self, FormatError> {
        let text =
            |name: &'static str| -> Result<Option<StringArray>, FormatError> {
                let Some(c) = batch.column_by_name(name) else { return Ok(None) };
                let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).map_err(|e| {
                    FormatError::BadValue { path: path.to_owned(), column: name, what: format!("not text: {e}") }
                })?;
                Ok(c.as_any().downcast_ref::<StringArray>().cloned())
            };
        let netns = match batch.column_by_name(col::NETNS) {
            Some(_) => Some(column::<UInt32Array>(path, batch, col::NETNS)?.clone()),
            None => None,
        };
        Ok(WorkloadColumns {
            netns,
            cgroup: text(col::CGROUP)?,
            container_id: text(col::CONTAINER_ID)?,
            container_name: text(col::CONTAINER_NAME)?,
            pod_uid: text(col::POD_UID)?,
            pod_name: text(col::POD_NAME)?,
            pod_namespace: text(col::POD_NAMESPACE)?,
        })
    }

    fn workload(&self, i: usize, strings: &mut HashMap<String, Arc<str>>) -> Workload {
        let mut get = |a: &Option<StringArray>| {
            a.as_ref().and_then(|a| opt_str(a, i)).map(|s| match strings.get(s) {
                Some(v) => v.clone(),
                None => {
                    let v: Arc<str> = Arc::from(s);
                    strings.insert(s.to_owned(), v.clone());
                    v
                }
            })
        };
        Workload {
            cgroup: get(&self.cgroup).unwrap_or_else(|| Arc::from("")),
            container_id: get(&self.container_id),
            container_name: get(&self.container_name),
            pod_uid: get(&self.pod_uid),
            pod_name: get(&self.pod_name),
            pod_namespace: get(&self.pod_namespace),
        }
    }
}

/// Converts a batch of a recording back into events.
pub fn events_from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<Event>, FormatError> {
    // Microseconds since version 3, nanoseconds before: events carry nanoseconds.
    let ts = batch
        .column_by_name(col::TS)
        .and_then(|c| arrow::compute::cast(c, &DataType::Timestamp(TimeUnit::Nanosecond, None)).ok())
        .ok_or_else(|| FormatError::BadValue {
            path: path.to_owned(),
            column: col::TS,
            what: "missing or not a timestamp".into(),
        })?;
    let ts = column_of::<TimestampNanosecondArray>(path, &ts, col::TS)?;
    let kind = column::<StringArray>(path, batch, col::KIND)?;
    let conn_id = column::<UInt64Array>(path, batch, col::CONN_ID)?;
    let protocol = column::<StringArray>(path, batch, col::PROTOCOL)?;
    let role = column::<StringArray>(path, batch, col::ROLE)?;
    let _family = column::<UInt8Array>(path, batch, col::FAMILY)?;
    let local_addr = column::<StringArray>(path, batch, col::LOCAL_ADDR)?;
    let local_port = column::<UInt16Array>(path, batch, col::LOCAL_PORT)?;
    let remote_addr = column::<StringArray>(path, batch, col::REMOTE_ADDR)?;
    let remote_port = column::<UInt16Array>(path, batch, col::REMOTE_PORT)?;
    let pid = column::<UInt32Array>(path, batch, col::PID)?;
    let comm = column::<StringArray>(path, batch, col::COMM)?;
    let cgroup_id = column::<UInt64Array>(path, batch, col::CGROUP_ID)?;
    let state = column::<StringArray>(path, batch, col::STATE)?;
    let bytes_sent = column::<UInt64Array>(path, batch, col::BYTES_SENT)?;
    let bytes_received = column::<UInt64Array>(path, batch, col::BYTES_RECEIVED)?;
    let packets_sent = column::<UInt64Array>(path, batch, col::PACKETS_SENT)?;
    let packets_received = column::<UInt64Array>(path, batch, col::PACKETS_RECEIVED)?;
    let retransmits = column::<UInt32Array>(path, batch, col::RETRANSMITS)?;
    let rtt_us = column::<UInt32Array>(path, batch, col::RTT_US)?;
    let handshake_us = column::<UInt32Array>(path, batch, col::HANDSHAKE_US)?;
    let duration_ns = column::<UInt64Array>(path, batch, col::DURATION_NS)?;
    let error = column::<StringArray>(path, batch, col::ERROR)?;
    let reset_by = column::<StringArray>(path, batch, col::RESET_BY)?;
    let reset_reason = column::<StringArray>(path, batch, col::RESET_REASON)?;
    let preexisting = column::<BooleanArray>(path, batch, col::PREEXISTING)?;
    let added = WorkloadColumns::of(path, batch)?;
    let mut strings: HashMap<String, Arc<str>> = HashMap::new();
    // Consecutive rows mostly share a workload: one allocation per change, not per row.
    let mut last_workload: Option<Arc<Workload>> = None;

    let bad = |column: &'static str, what: String| FormatError::BadValue { path: path.to_owned(), column, what };
    let opt_u32 = |a: &UInt32Array, i: usize| if a.is_null(i) { None } else { Some(a.value(i)) };
    let mut comms: HashMap<String, Arc<str>> = HashMap::new();
    let mut reasons: HashMap<String, Arc<str>> = HashMap::new();
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let k = kind.value(i);
        let p = protocol.value(i);
        let r = role.value(i);
        let la = local_addr.value(i);
        let ra = remote_addr.value(i);
        let c = comm.value(i);
        let comm_arc = match comms.get(c) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = Arc::from(c);
                comms.insert(c.to_owned(), a.clone());
                a
            }
        };
        let reason = opt_str(reset_reason, i).map(|s| match reasons.get(s) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = Arc::from(s);
                reasons.insert(s.to_owned(), a.clone());
                a
            }
        });
        let w = added.workload(i, &mut strings);
        let workload = match &last_workload {
            Some(l) if **l == w => l.clone(),
            _ if w == Workload::default() => Workload::unknown(),
            _ => Arc::new(w),
        };
        last_workload = Some(workload.clone());
        out.push(Event {
            ts_ns: ts.value(i),
            kind: EventKind::parse(k).ok_or_else(|| bad(col::KIND, format!("unknown kind `{k}`")))?,
            conn_id: conn_id.value(i),
            protocol: Protocol::parse(p).ok_or_else(|| bad(col::PROTOCOL, format!("unknown protocol `{p}`")))?,
            role: Role::parse(r).ok_or_else(|| bad(col::ROLE, format!("unknown role `{r}`")))?,
            local_addr: la
                .parse::<IpAddr>()
                .map_err(|_| bad(col::LOCAL_ADDR, format!("`{la}` is not an IP address")))?,
            remote_addr: ra
                .parse::<IpAddr>()
                .map_err(|_| bad(col::REMOTE_ADDR, format!("`{ra}` is not an IP address")))?,
            local_port: local_port.value(i),
            remote_port: remote_port.value(i),
            pid: pid.value(i),
            comm: comm_arc,
            cgroup_id: cgroup_id.value(i),
            netns: added.netns.as_ref().map_or(0, |a| a.value(i)),
            workload,
            state: opt_str(state, i).and_then(tcp_state_static),
            bytes_sent: bytes_sent.value(i),
            bytes_received: bytes_received.value(i),
            packets_sent: packets_sent.value(i),
            packets_received: packets_received.value(i),
            retransmits: retransmits.value(i),
            rtt_us: opt_u32(rtt_us, i),
            handshake_us: opt_u32(handshake_us, i),
            duration_ns: if duration_ns.is_null(i) { None } else { Some(duration_ns.value(i)) },
            error: opt_str(error, i).map(|e| errno_static(e).unwrap_or("EUNKNOWN")),
            reset_by: opt_str(reset_by, i).and_then(ResetBy::parse),
            reset_reason: reason,
            preexisting: preexisting.value(i),
        });
    }
    Ok(out)
}
