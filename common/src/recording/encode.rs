//! Rows to Arrow and Parquet: [`BatchBuilder`] (events into batches of the v2 schema) and the
//! [`writer_properties`] every recording is written with (zstd, or LZ4 while recording:
//! [`Pages`]).
//!
//! Pure and in memory: nothing here touches a file, so the hot path of the recorder (one
//! `push` per event) and the encoding choices (zstd, dictionaries, delta-encoded time and ids)
//! are in one place, shared by the writer, the compaction and the benchmarks.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, DictionaryArray, Int32Array, PrimitiveArray, StringArray, TimestampMicrosecondArray,
    new_null_array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Int32Type};
use arrow::record_batch::RecordBatch;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use rustc_hash::FxHashMap;

use crate::event::{Event, EventKind, Protocol, ResetBy, Role, Workload};
use crate::schema::{self, col};

/// Accumulates rows column by column and turns them into Arrow batches of the v2 schema.
///
/// Built for the recorder's hot path (one [`BatchBuilder::push`] per event): numbers go into
/// plain vectors that become the arrays' buffers as they are; the text columns hold few
/// distinct values over many rows (a handful of kinds, states and errors, the host's
/// addresses, its process names), so a row stores an index into the column's distinct texts
/// and the text is copied into the array only at [`BatchBuilder::finish`]. No row allocates.
pub struct BatchBuilder {
    ts: Vec<i64>,
    kind: Vec<u8>,
    conn_id: Vec<u64>,
    protocol: Vec<u8>,
    role: Vec<u8>,
    family: Vec<u8>,
    local_addr: Texts<IpAddr>,
    local_port: Vec<u16>,
    remote_addr: Texts<IpAddr>,
    remote_port: Vec<u16>,
    pid: Vec<u32>,
    comm: Texts<usize>,
    cgroup_id: Vec<u64>,
    netns: Vec<u32>,
    workloads: WorkloadColumn,
    state: Texts<(usize, usize)>,
    bytes_sent: Vec<u64>,
    bytes_received: Vec<u64>,
    packets_sent: Vec<u64>,
    packets_received: Vec<u64>,
    retransmits: Vec<u32>,
    rtt_us: Optional<u32>,
    handshake_us: Optional<u32>,
    duration_ns: Optional<u64>,
    error: Texts<(usize, usize)>,
    /// 0 for none, else `ResetBy` + 1.
    reset_by: Vec<u8>,
    reset_reason: Texts<usize>,
    preexisting: Vec<bool>,
    capacity: usize,
    addr_buf: String,
}

/// The row of a text column that is NULL.
const NULL: u32 = u32::MAX;

/// A text column as indices into its distinct texts. The texts are kept across batches (the
/// same few recur in every batch) until there are more than [`Texts::KEEP_AT_MOST`], when they
/// are dropped at the end of a batch.
///
/// `K` tells two texts apart cheaply: the address for an IP address (its text is made once), the
/// pointer for an `Arc<str>` (the tracker shares one `Arc` per process name; the `Arc` is held
/// in `texts`, so its address cannot be reused while it is a key), pointer and length for a
/// `&'static str`. Equal texts under two keys are simply stored twice: the key only saves work.
struct Texts<K> {
    index: FxHashMap<K, u32>,
    texts: Vec<Arc<str>>,
    /// The last key pushed and its index: consecutive rows often share a text.
    last: Option<(K, u32)>,
    rows: Vec<u32>,
    has_null: bool,
}

impl<K: Copy + Eq + Hash> Texts<K> {
    const KEEP_AT_MOST: usize = 65536;

    fn with_capacity(n: usize) -> Self {
        Texts {
            index: FxHashMap::default(),
            texts: Vec::new(),
            last: None,
            rows: Vec::with_capacity(n),
            has_null: false,
        }
    }

    #[inline]
    fn push(&mut self, key: K, text: impl FnOnce() -> Arc<str>) {
        let i = match self.last {
            Some((k, i)) if k == key => i,
            _ => {
                let texts = &mut self.texts;
                let i = *self.index.entry(key).or_insert_with(|| {
                    texts.push(text());
                    texts.len() as u32 - 1
                });
                self.last = Some((key, i));
                i
            }
        };
        self.rows.push(i);
    }

    #[inline]
    fn push_null(&mut self) {
        self.has_null = true;
        self.rows.push(NULL);
    }

    /// The column as an array; the rows are cleared for the next batch.
    fn finish(&mut self) -> ArrayRef {
        let array = strings(&self.rows, self.has_null, |i| &self.texts[i as usize]);
        self.rows.clear();
        self.has_null = false;
        if self.texts.len() > Self::KEEP_AT_MOST {
            self.texts.clear();
            self.index.clear();
            self.last = None;
        }
        array
    }
}

/// A string array of `rows` (indices, [`NULL`] for none), each index's text given by `text`.
fn strings<'a>(rows: &[u32], has_null: bool, text: impl Fn(u32) -> &'a str) -> ArrayRef {
    let mut offsets: Vec<i32> = Vec::with_capacity(rows.len() + 1);
    offsets.push(0);
    let mut bytes: Vec<u8> = Vec::with_capacity(rows.len() * 8);
    for &i in rows {
        if i != NULL {
            bytes.extend_from_slice(text(i).as_bytes());
        }
        offsets.push(i32::try_from(bytes.len()).expect("a batch's texts fit 2 GiB"));
    }
    let nulls = has_null.then(|| NullBuffer::from_iter(rows.iter().map(|&i| i != NULL)));
    Arc::new(
        StringArray::try_new(OffsetBuffer::new(ScalarBuffer::from(offsets)), bytes.into(), nulls)
            .expect("offsets and UTF-8 of whole texts"),
    )
}

/// A column of small codes, each naming a `&'static str` (`None`: NULL).
fn coded(rows: &[u8], name: impl Fn(u8) -> Option<&'static str>) -> ArrayRef {
    let has_null = rows.iter().any(|&c| name(c).is_none());
    let mut offsets: Vec<i32> = Vec::with_capacity(rows.len() + 1);
    offsets.push(0);
    let mut bytes: Vec<u8> = Vec::with_capacity(rows.len() * 8);
    let mut valid = has_null.then(|| Vec::with_capacity(rows.len()));
    for &c in rows {
        let s = name(c);
        if let Some(s) = s {
            bytes.extend_from_slice(s.as_bytes());
        }
        if let Some(v) = &mut valid {
            v.push(s.is_some());
        }
        offsets.push(bytes.len() as i32);
    }
    let nulls = valid.map(|v| NullBuffer::new(BooleanBuffer::from(v)));
    Arc::new(
        StringArray::try_new(OffsetBuffer::new(ScalarBuffer::from(offsets)), bytes.into(), nulls)
            .expect("offsets and UTF-8 of whole texts"),
    )
}

/// A nullable number column: values (0 where NULL) and which rows have one.
struct Optional<T> {
    values: Vec<T>,
    valid: Vec<bool>,
    has_null: bool,
}

impl<T: arrow::datatypes::ArrowNativeType> Optional<T> {
    fn with_capacity(n: usize) -> Self {
        Optional { values: Vec::with_capacity(n), valid: Vec::with_capacity(n), has_null: false }
    }

    #[inline]
    fn push(&mut self, v: Option<T>) {
        self.values.push(v.unwrap_or_default());
        self.valid.push(v.is_some());
        self.has_null |= v.is_none();
    }

    fn finish<P: ArrowPrimitiveType<Native = T>>(&mut self, n: usize) -> ArrayRef {
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(n));
        let nulls = self.has_null.then(|| NullBuffer::new(BooleanBuffer::from(self.valid.as_slice())));
        self.valid.clear();
        self.has_null = false;
        Arc::new(PrimitiveArray::<P>::new(ScalarBuffer::from(values), nulls))
    }
}

/// `v`'s values as an array; `v` is left empty with room for `n` rows.
fn numbers<P: ArrowPrimitiveType>(v: &mut Vec<P::Native>, n: usize) -> PrimitiveArray<P> {
    PrimitiveArray::<P>::new(ScalarBuffer::from(std::mem::replace(v, Vec::with_capacity(n))), None)
}

/// A `&'static str`'s identity: where it is and how long.
fn static_key(s: &'static str) -> (usize, usize) {
    (s.as_ptr() as usize, s.len())
}

fn kind_code(k: EventKind) -> u8 {
    EventKind::ALL.iter().position(|&x| x == k).expect("every kind is in ALL") as u8
}

/// The workload columns (`cgroup` .. `pod_namespace`) of a batch, kept as one index per row
/// into the batch's distinct workloads: rows share a few `Arc<Workload>`s, so a row costs a
/// pointer comparison, and the columns are built at the end (the dictionary of `cgroup` directly,
/// and a column no workload of the batch has as one null array).
#[derive(Default)]
struct WorkloadColumn {
    distinct: Vec<Arc<Workload>>,
    /// `Arc` address -> index in `distinct` (the `Arc`s are held there, so no address is reused).
    index: FxHashMap<usize, i32>,
    last: Option<(usize, i32)>,
    rows: Vec<i32>,
}

impl WorkloadColumn {
    #[inline]
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
        let mut value_of: FxHashMap<&str, i32> = FxHashMap::default();
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
        let rows: &[i32] = &self.rows;
        let text = |field: fn(&Workload) -> Option<&str>| -> ArrayRef {
            if self.distinct.iter().all(|w| field(w).is_none()) {
                return new_null_array(&DataType::Utf8, rows.len());
            }
            let by_index: Vec<Option<&str>> = self.distinct.iter().map(|w| field(w)).collect();
            let idx: Vec<u32> =
                rows.iter().map(|&i| if by_index[i as usize].is_some() { i as u32 } else { NULL }).collect();
            strings(&idx, idx.contains(&NULL), |i| by_index[i as usize].unwrap_or_default())
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
        BatchBuilder {
            ts: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            conn_id: Vec::with_capacity(n),
            protocol: Vec::with_capacity(n),
            role: Vec::with_capacity(n),
            family: Vec::with_capacity(n),
            local_addr: Texts::with_capacity(n),
            local_port: Vec::with_capacity(n),
            remote_addr: Texts::with_capacity(n),
            remote_port: Vec::with_capacity(n),
            pid: Vec::with_capacity(n),
            comm: Texts::with_capacity(n),
            cgroup_id: Vec::with_capacity(n),
            netns: Vec::with_capacity(n),
            workloads: WorkloadColumn { rows: Vec::with_capacity(n), ..Default::default() },
            state: Texts::with_capacity(n),
            bytes_sent: Vec::with_capacity(n),
            bytes_received: Vec::with_capacity(n),
            packets_sent: Vec::with_capacity(n),
            packets_received: Vec::with_capacity(n),
            retransmits: Vec::with_capacity(n),
            rtt_us: Optional::with_capacity(n),
            handshake_us: Optional::with_capacity(n),
            duration_ns: Optional::with_capacity(n),
            error: Texts::with_capacity(n),
            reset_by: Vec::with_capacity(n),
            reset_reason: Texts::with_capacity(n),
            preexisting: Vec::with_capacity(n),
            capacity: n,
            addr_buf: String::with_capacity(48),
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    pub fn push(&mut self, e: &Event) {
        // Schema version 3 stores microseconds (see `schema`).
        self.ts.push(e.ts_ns.div_euclid(1_000));
        self.kind.push(kind_code(e.kind));
        self.conn_id.push(e.conn_id);
        self.protocol.push(e.protocol as u8);
        self.role.push(e.role as u8);
        self.family.push(e.family());
        let buf = &mut self.addr_buf;
        self.local_addr.push(e.local_addr, || addr_text(buf, e.local_addr));
        self.local_port.push(e.local_port);
        self.remote_addr.push(e.remote_addr, || addr_text(buf, e.remote_addr));
        self.remote_port.push(e.remote_port);
        self.pid.push(e.pid);
        self.comm.push(Arc::as_ptr(&e.comm) as *const u8 as usize, || e.comm.clone());
        self.cgroup_id.push(e.cgroup_id);
        self.netns.push(e.netns);
        self.workloads.push(&e.workload);
        match e.state {
            Some(s) => self.state.push(static_key(s), || s.into()),
            None => self.state.push_null(),
        }
        self.bytes_sent.push(e.bytes_sent);
        self.bytes_received.push(e.bytes_received);
        self.packets_sent.push(e.packets_sent);
        self.packets_received.push(e.packets_received);
        self.retransmits.push(e.retransmits);
        self.rtt_us.push(e.rtt_us);
        self.handshake_us.push(e.handshake_us);
        self.duration_ns.push(e.duration_ns);
        match e.error {
            Some(s) => self.error.push(static_key(s), || s.into()),
            None => self.error.push_null(),
        }
        self.reset_by.push(e.reset_by.map_or(0, |r| r as u8 + 1));
        match &e.reset_reason {
            Some(r) => self.reset_reason.push(Arc::as_ptr(r) as *const u8 as usize, || r.clone()),
            None => self.reset_reason.push_null(),
        }
        self.preexisting.push(e.preexisting);
    }

    /// The rows pushed so far as one batch; the builder is left empty.
    pub fn finish(&mut self) -> RecordBatch {
        use arrow::datatypes::{UInt8Type, UInt16Type, UInt32Type, UInt64Type};
        let n = self.capacity;
        let [cgroup, container_id, container_name, pod_uid, pod_name, pod_namespace] = self.workloads.finish();
        let ts = TimestampMicrosecondArray::new(
            ScalarBuffer::from(std::mem::replace(&mut self.ts, Vec::with_capacity(n))),
            None,
        )
        .with_timezone("UTC");
        let preexisting = BooleanArray::new(BooleanBuffer::from(self.preexisting.as_slice()), None);
        self.preexisting.clear();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(ts),
            coded(&self.kind, |c| Some(EventKind::ALL[c as usize].as_str())),
            Arc::new(numbers::<UInt64Type>(&mut self.conn_id, n)),
            coded(&self.protocol, |c| Some(if c == Protocol::Tcp as u8 { "tcp" } else { "udp" })),
            coded(&self.role, |c| Some(if c == Role::Client as u8 { "client" } else { "server" })),
            Arc::new(numbers::<UInt8Type>(&mut self.family, n)),
            self.local_addr.finish(),
            Arc::new(numbers::<UInt16Type>(&mut self.local_port, n)),
            self.remote_addr.finish(),
            Arc::new(numbers::<UInt16Type>(&mut self.remote_port, n)),
            Arc::new(numbers::<UInt32Type>(&mut self.pid, n)),
            self.comm.finish(),
            Arc::new(numbers::<UInt64Type>(&mut self.cgroup_id, n)),
            Arc::new(numbers::<UInt32Type>(&mut self.netns, n)),
            cgroup,
            container_id,
            container_name,
            pod_uid,
            pod_name,
            pod_namespace,
            self.state.finish(),
            Arc::new(numbers::<UInt64Type>(&mut self.bytes_sent, n)),
            Arc::new(numbers::<UInt64Type>(&mut self.bytes_received, n)),
            Arc::new(numbers::<UInt64Type>(&mut self.packets_sent, n)),
            Arc::new(numbers::<UInt64Type>(&mut self.packets_received, n)),
            Arc::new(numbers::<UInt32Type>(&mut self.retransmits, n)),
            self.rtt_us.finish::<UInt32Type>(n),
            self.handshake_us.finish::<UInt32Type>(n),
            self.duration_ns.finish::<UInt64Type>(n),
            self.error.finish(),
            coded(&self.reset_by, |c| match c {
                0 => None,
                c if c == ResetBy::Local as u8 + 1 => Some(ResetBy::Local.as_str()),
                _ => Some(ResetBy::Remote.as_str()),
            }),
            self.reset_reason.finish(),
            Arc::new(preexisting),
        ];
        self.kind.clear();
        self.protocol.clear();
        self.role.clear();
        self.reset_by.clear();
        RecordBatch::try_new(schema::schema(), columns).expect("builder columns match the v2 schema")
    }
}

/// An address as the recording writes it (`127.0.0.1`, `::1`), made once per distinct address.
fn addr_text(buf: &mut String, addr: IpAddr) -> Arc<str> {
    use std::fmt::Write as _;
    buf.clear();
    let _ = write!(buf, "{addr}");
    Arc::from(buf.as_str())
}

/// How a recording's pages are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pages {
    /// zstd, level 1: the files that are kept (compaction, anonymize, the test kit's).
    Small,
    /// LZ4 (`LZ4_RAW`): what `gespann record` writes while it records. Measured in
    /// `bench-record`'s paced churn, about 0.3-0.4 µs less recorder CPU per connection (about a
    /// tenth) than zstd: zstd makes a compression and a decompression context for every column
    /// of every row group (one row group per checkpoint, each second) and compresses more
    /// slowly. The recorder's compaction at the end rewrites the pages as [`Pages::Small`];
    /// only a recording too large for that, or one rebuilt by `gespann recover`, keeps LZ4
    /// pages (every engine the README names reads them).
    Fast,
}

/// Writer properties for recordings: `pages` compression; dictionaries only for the text
/// columns where they pay; delta-encoded time, ids and counters; min/max statistics where
/// readers use them.
///
/// Dictionary encoding costs the writer a hash and a lookup per value (its largest cost), so it
/// is kept only for text whose plain bytes zstd cannot shrink as well (addresses, process names,
/// reset reasons, the workload columns). The short low-cardinality texts (`kind`, `protocol`,
/// `role`, `state`, `error`, `reset_by`) and the small integers (family, ports, pid, cgroup id,
/// retransmits) are written plain and left to zstd, which costs a synthetic recording of a busy
/// host (`cargo xtask synth`) about 6% more bytes and the writer about a quarter less time.
///
/// Statistics: `ts` and `conn_id` keep min/max (time ranges; the analyzer sizes its join from
/// the span of `conn_id`), the container and pod columns keep theirs for their null counts (the
/// analyzer asks whether any row names a container or pod). The other text columns have none:
/// min/max of a text costs a byte comparison per value, and no reader prunes on them.
pub fn writer_properties(pages: Pages) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(match pages {
            Pages::Small => Compression::ZSTD(ZstdLevel::try_new(1).expect("valid zstd level")),
            Pages::Fast => Compression::LZ4_RAW,
        })
        .set_max_row_group_row_count(Some(1 << 20))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by(format!("gespann {}", env!("CARGO_PKG_VERSION")));
    // Time, ids and the per-connection counters take many distinct values: a dictionary would
    // cost a hash per value and then be abandoned at its size limit, so they go straight to
    // delta encoding (the counters grow along a connection).
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
    for c in [
        col::KIND,
        col::PROTOCOL,
        col::ROLE,
        col::STATE,
        col::ERROR,
        col::RESET_BY,
        col::FAMILY,
        col::LOCAL_PORT,
        col::REMOTE_PORT,
        col::PID,
        col::CGROUP_ID,
        col::RETRANSMITS,
    ] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_encoding(ColumnPath::from(c), Encoding::PLAIN);
    }
    for c in [
        col::KIND,
        col::PROTOCOL,
        col::ROLE,
        col::LOCAL_ADDR,
        col::REMOTE_ADDR,
        col::COMM,
        col::CGROUP,
        col::STATE,
        col::ERROR,
        col::RESET_BY,
        col::RESET_REASON,
    ] {
        b = b.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text columns are built from per-key indices: rows whose texts are equal but held
    /// in different `Arc`s or string literals, NULLs between them, and batches after the first
    /// (which reuse the kept texts) all read back as they were pushed.
    #[test]
    fn text_columns_read_back_whatever_holds_the_text() {
        let owned = String::from("ESTABLISHED");
        let leaked: &'static str = owned.leak();
        let rows: Vec<Event> = (0..40u64)
            .map(|i| Event {
                ts_ns: i as i64 * 1_000, // whole microseconds: what the file keeps
                conn_id: i,
                kind: EventKind::ALL[(i % 6) as usize],
                comm: Arc::from(if i % 3 == 0 { "curl" } else { "nginx" }),
                local_addr: if i % 2 == 0 { "127.0.0.1".parse().unwrap() } else { "::1".parse().unwrap() },
                state: [None, Some("ESTABLISHED"), Some(leaked)][(i % 3) as usize],
                error: (i % 4 == 1).then_some("ECONNRESET"),
                reset_by: [None, Some(ResetBy::Local), Some(ResetBy::Remote)][(i % 3) as usize],
                reset_reason: (i % 5 == 0).then(|| Arc::from(format!("R{}", i % 2))),
                rtt_us: (i % 2 == 0).then_some(i as u32),
                ..Event::default()
            })
            .collect();
        let mut b = BatchBuilder::with_capacity(4);
        for half in rows.chunks(20) {
            for e in half {
                b.push(e);
            }
            let batch = b.finish();
            let back = crate::recording::events_from_batch(std::path::Path::new("t"), &batch).unwrap();
            assert_eq!(back, half);
        }
    }
}
