//! Rows to Arrow and Parquet: [`BatchBuilder`] (events into batches of the v2 schema) and the
//! [`writer_properties`] every recording is written with.
//!
//! Pure and in memory: nothing here touches a file, so the hot path of the recorder (one
//! `push` per event) and the encoding choices (zstd, dictionaries, delta-encoded time and ids)
//! are in one place, shared by the writer, the compaction and the benchmarks.

use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::new_null_array;
use arrow::array::{
    ArrayRef, BooleanBuilder, DictionaryArray, Int32Array, StringArray, StringBuilder, TimestampNanosecondBuilder,
    UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Int32Type};
use arrow::record_batch::RecordBatch;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::event::{Event, ResetBy, Workload};
use crate::schema::{self, col};

/// Accumulates rows column by column and turns them into Arrow batches of the v2 schema.
pub struct BatchBuilder {
    ts: TimestampNanosecondBuilder,
    kind: StringBuilder,
    conn_id: UInt64Builder,
    protocol: StringBuilder,
    role: StringBuilder,
    family: UInt8Builder,
    local_addr: StringBuilder,
    local_port: UInt16Builder,
    remote_addr: StringBuilder,
    remote_port: UInt16Builder,
    pid: UInt32Builder,
    comm: StringBuilder,
    cgroup_id: UInt64Builder,
    netns: UInt32Builder,
    workloads: WorkloadColumn,
    state: StringBuilder,
    bytes_sent: UInt64Builder,
    bytes_received: UInt64Builder,
    packets_sent: UInt64Builder,
    packets_received: UInt64Builder,
    retransmits: UInt32Builder,
    rtt_us: UInt32Builder,
    handshake_us: UInt32Builder,
    duration_ns: UInt64Builder,
    error: StringBuilder,
    reset_by: StringBuilder,
    reset_reason: StringBuilder,
    preexisting: BooleanBuilder,
    len: usize,
    addr_buf: String,
    /// Formatting an address costs more than looking it up; hosts talk to few addresses.
    addrs: rustc_hash::FxHashMap<IpAddr, Box<str>>,
}

/// The workload columns (`cgroup` .. `pod_namespace`) of a batch, kept as one index per row
/// into the batch's distinct workloads: rows share a few `Arc<Workload>`s, so a row costs a
/// pointer comparison, and the columns are built at the end (the dictionary of `cgroup` directly,
/// and a column no workload of the batch has as one null array).
#[derive(Default)]
struct WorkloadColumn {
    distinct: Vec<Arc<Workload>>,
    /// `Arc` address -> index in `distinct` (the `Arc`s are held there, so no address is reused).
    index: rustc_hash::FxHashMap<usize, i32>,
    last: Option<(usize, i32)>,
    rows: Vec<i32>,
}

impl WorkloadColumn {
    fn push(&mut self, w: &Arc<Workload>) {
        let addr = Arc::as_ptr(w) as usize;
        let i = match self.last {
            Some((a, i)) if a == addr => i,
            _ => {
                let next = self.distinct.len() as i32;
                let i = *self.index.entry(addr).or_insert(next);
                if i == next {
                    self.distinct.push(w.clone());
                }
                self.last = Some((addr, i));
                i
            }
        };
        self.rows.push(i);
    }

    /// The six columns, in schema order; the column is left empty for the next batch.
    fn finish(&mut self) -> [ArrayRef; 6] {
        let mut values: Vec<&str> = Vec::new();
        let mut value_of: rustc_hash::FxHashMap<&str, i32> = rustc_hash::FxHashMap::default();
        let key_of: Vec<i32> = self
            .distinct
            .iter()
            .map(|w| {
                *value_of.entry(&w.cgroup).or_insert_with(|| {
                    values.push(&w.cgroup);
                    values.len() as i32 - 1
                })
            })
            .collect();
        let keys = Int32Array::from_iter_values(self.rows.iter().map(|&i| key_of[i as usize]));
        let cgroup = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::from(values)))
            .expect("every key indexes the values");
        let text = |field: fn(&Workload) -> Option<&str>| -> ArrayRef {
            if self.distinct.iter().all(|w| field(w).is_none()) {
                return new_null_array(&DataType::Utf8, self.rows.len());
            }
            let by_index: Vec<Option<&str>> = self.distinct.iter().map(|w| field(w)).collect();
            Arc::new(StringArray::from_iter(self.rows.iter().map(|&i| by_index[i as usize])))
        };
        let out = [
            Arc::new(cgroup) as ArrayRef,
            text(|w| w.container_id.as_deref()),
            text(|w| w.container_name.as_deref()),
            text(|w| w.pod_uid.as_deref()),
            text(|w| w.pod_name.as_deref()),
            text(|w| w.pod_namespace.as_deref()),
        ];
        self.distinct.clear();
        self.index.clear();
        self.last = None;
        self.rows.clear();
        out
    }
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::with_capacity(8192)
    }
}

impl BatchBuilder {
    pub fn with_capacity(n: usize) -> Self {
        let s = || StringBuilder::with_capacity(n, n * 8);
        BatchBuilder {
            ts: TimestampNanosecondBuilder::with_capacity(n),
            kind: s(),
            conn_id: UInt64Builder::with_capacity(n),
            protocol: s(),
            role: s(),
            family: UInt8Builder::with_capacity(n),
            local_addr: s(),
            local_port: UInt16Builder::with_capacity(n),
            remote_addr: s(),
            remote_port: UInt16Builder::with_capacity(n),
            pid: UInt32Builder::with_capacity(n),
            comm: s(),
            cgroup_id: UInt64Builder::with_capacity(n),
            netns: UInt32Builder::with_capacity(n),
            workloads: WorkloadColumn { rows: Vec::with_capacity(n), ..Default::default() },
            state: s(),
            bytes_sent: UInt64Builder::with_capacity(n),
            bytes_received: UInt64Builder::with_capacity(n),
            packets_sent: UInt64Builder::with_capacity(n),
            packets_received: UInt64Builder::with_capacity(n),
            retransmits: UInt32Builder::with_capacity(n),
            rtt_us: UInt32Builder::with_capacity(n),
            handshake_us: UInt32Builder::with_capacity(n),
            duration_ns: UInt64Builder::with_capacity(n),
            error: s(),
            reset_by: s(),
            reset_reason: s(),
            preexisting: BooleanBuilder::with_capacity(n),
            len: 0,
            addr_buf: String::with_capacity(48),
            addrs: rustc_hash::FxHashMap::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, e: &Event) {
        self.ts.append_value(e.ts_ns);
        self.kind.append_value(e.kind.as_str());
        self.conn_id.append_value(e.conn_id);
        self.protocol.append_value(e.protocol.as_str());
        self.role.append_value(e.role.as_str());
        self.family.append_value(e.family());
        self.local_addr.append_value(addr_text(&mut self.addrs, &mut self.addr_buf, e.local_addr));
        self.local_port.append_value(e.local_port);
        self.remote_addr.append_value(addr_text(&mut self.addrs, &mut self.addr_buf, e.remote_addr));
        self.remote_port.append_value(e.remote_port);
        self.pid.append_value(e.pid);
        self.comm.append_value(&*e.comm);
        self.cgroup_id.append_value(e.cgroup_id);
        self.netns.append_value(e.netns);
        self.workloads.push(&e.workload);
        self.state.append_option(e.state);
        self.bytes_sent.append_value(e.bytes_sent);
        self.bytes_received.append_value(e.bytes_received);
        self.packets_sent.append_value(e.packets_sent);
        self.packets_received.append_value(e.packets_received);
        self.retransmits.append_value(e.retransmits);
        self.rtt_us.append_option(e.rtt_us);
        self.handshake_us.append_option(e.handshake_us);
        self.duration_ns.append_option(e.duration_ns);
        self.error.append_option(e.error);
        self.reset_by.append_option(e.reset_by.map(ResetBy::as_str));
        self.reset_reason.append_option(e.reset_reason.as_deref());
        self.preexisting.append_value(e.preexisting);
        self.len += 1;
    }

    /// The rows pushed so far as one batch; the builder is left empty.
    pub fn finish(&mut self) -> RecordBatch {
        let [cgroup, container_id, container_name, pod_uid, pod_name, pod_namespace] = self.workloads.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.kind.finish()),
            Arc::new(self.conn_id.finish()),
            Arc::new(self.protocol.finish()),
            Arc::new(self.role.finish()),
            Arc::new(self.family.finish()),
            Arc::new(self.local_addr.finish()),
            Arc::new(self.local_port.finish()),
            Arc::new(self.remote_addr.finish()),
            Arc::new(self.remote_port.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.comm.finish()),
            Arc::new(self.cgroup_id.finish()),
            Arc::new(self.netns.finish()),
            cgroup,
            container_id,
            container_name,
            pod_uid,
            pod_name,
            pod_namespace,
            Arc::new(self.state.finish()),
            Arc::new(self.bytes_sent.finish()),
            Arc::new(self.bytes_received.finish()),
            Arc::new(self.packets_sent.finish()),
            Arc::new(self.packets_received.finish()),
            Arc::new(self.retransmits.finish()),
            Arc::new(self.rtt_us.finish()),
            Arc::new(self.handshake_us.finish()),
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.error.finish()),
            Arc::new(self.reset_by.finish()),
            Arc::new(self.reset_reason.finish()),
            Arc::new(self.preexisting.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(schema::schema(), columns).expect("builder columns match the v2 schema")
    }
}

fn addr_text<'a>(cache: &'a mut rustc_hash::FxHashMap<IpAddr, Box<str>>, buf: &mut String, addr: IpAddr) -> &'a str {
    use std::fmt::Write as _;
    if cache.len() > 65536 {
        cache.clear();
    }
    cache.entry(addr).or_insert_with(|| {
        buf.clear();
        let _ = write!(buf, "{addr}");
        buf.as_str().into()
    })
}

/// Writer properties for recordings: zstd, dictionary-encoded strings, delta-encoded time and ids.
pub fn writer_properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("valid zstd level")))
        .set_max_row_group_row_count(Some(1 << 20))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by(format!("gespann {}", env!("CARGO_PKG_VERSION")));
    // Time, ids and the per-connection counters take many distinct values: a dictionary would
    // cost a hash per value (the writer's largest cost) and then be abandoned at its size
    // limit, so they go straight to delta encoding (the counters grow along a connection).
    for c in [
        col::TS,
        col::CONN_ID,
        col::DURATION_NS,
        col::BYTES_SENT,
        col::BYTES_RECEIVED,
        col::PACKETS_SENT,
        col::PACKETS_RECEIVED,
        col::RTT_US,
        col::HANDSHAKE_US,
        col::NETNS,
    ] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_encoding(ColumnPath::from(c), Encoding::DELTA_BINARY_PACKED);
    }
    b.build()
}
