//! The Rust mirror of `recorder-ebpf/src/gespann.h`: what the kernel writes into the ring buffer.
//!
//! `RawEvent` is `#[repr(C)]` with every field placed by hand, no implicit padding; the
//! recorder's `layout` test compares its size and field offsets with the BTF of the compiled
//! object so the C and Rust definitions cannot drift apart.

/// `enum gsp_kind`.
pub mod kind {
    pub const OPEN: u8 = 1;
    pub const CLOSE: u8 = 2;
    pub const RESET: u8 = 3;
    pub const FAILED: u8 = 4;
    pub const RETRANSMIT: u8 = 5;
    pub const AMEND_RESET: u8 = 6;
    pub const AMEND_OWNER: u8 = 7;
    pub const UDP_RELEASE: u8 = 8;
    pub const AMEND_ERROR: u8 = 9;
}

/// `GSP_F_*`.
pub mod flags {
    pub const RESET_LOCAL: u8 = 1 << 0;
    pub const RESET_REMOTE: u8 = 1 << 1;
    pub const HAS_HANDSHAKE: u8 = 1 << 2;
    pub const HAS_RTT: u8 = 1 << 3;
    pub const UNTRACKED: u8 = 1 << 4;
}

pub const ROLE_CLIENT: u8 = 1;
pub const ROLE_SERVER: u8 = 2;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Per-CPU counters of the `lost` map, by index.
pub const LOST_RINGBUF: u32 = 0;
pub const LOST_TABLE: u32 = 1;

pub const COMM_LEN: usize = 16;
pub const MAX_PIDS: usize = 8;
pub const MAX_COMMS: usize = 8;
pub const MAX_PORTS: usize = 16;

/// `struct gsp_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawEvent {
    pub ts_ns: u64,
    pub start_ns: u64,
    pub conn_id: u64,
    pub sk: u64,
    pub cgroup_id: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub pid: u32,
    pub retransmits: u32,
    pub rtt_us: u32,
    pub handshake_us: u32,
    pub sport: u16,
    pub dport: u16,
    pub error: u16,
    pub reset_reason: u16,
    pub kind: u8,
    pub protocol: u8,
    pub role: u8,
    pub family: u8,
    pub state: u8,
    pub flags: u8,
    pub prev_state: u8,
    pub fin_rcvd: u8,
    pub comm: [u8; COMM_LEN],
}

/// `struct owner`: the process a socket belongs to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub cgroup_id: u64,
    pub pid: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
}

/// `struct udp_key`: a UDP flow is a socket and one remote endpoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UdpKey {
    pub sk: u64,
    pub daddr: [u8; 16],
    pub dport: u16,
    pub _pad: [u16; 3],
}

/// `struct udp_flow`: a flow's counters, aggregated in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpFlow {
    pub conn_id: u64,
    pub start_ns: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub role: u8,
    pub ignored: u8,
    pub _pad: [u8; 6],
    pub owner: Owner,
}

/// Sizes of the mirrored structs, for the layout test: (C name, Rust size).
pub const MIRRORED_SIZES: &[(&str, usize)] = &[
    ("gsp_event", std::mem::size_of::<RawEvent>()),
    ("owner", std::mem::size_of::<Owner>()),
    ("udp_key", std::mem::size_of::<UdpKey>()),
    ("udp_flow", std::mem::size_of::<UdpFlow>()),
];

/// Field names and offsets of [`RawEvent`], for the layout test against the object's BTF.
pub const RAW_EVENT_FIELDS: &[(&str, usize)] = &[
    ("ts_ns", std::mem::offset_of!(RawEvent, ts_ns)),
    ("start_ns", std::mem::offset_of!(RawEvent, start_ns)),
    ("conn_id", std::mem::offset_of!(RawEvent, conn_id)),
    ("sk", std::mem::offset_of!(RawEvent, sk)),
    ("cgroup_id", std::mem::offset_of!(RawEvent, cgroup_id)),
    ("bytes_sent", std::mem::offset_of!(RawEvent, bytes_sent)),
    ("bytes_received", std::mem::offset_of!(RawEvent, bytes_received)),
    ("packets_sent", std::mem::offset_of!(RawEvent, packets_sent)),
    ("packets_received", std::mem::offset_of!(RawEvent, packets_received)),
    ("saddr", std::mem::offset_of!(RawEvent, saddr)),
    ("daddr", std::mem::offset_of!(RawEvent, daddr)),
    ("pid", std::mem::offset_of!(RawEvent, pid)),
    ("retransmits", std::mem::offset_of!(RawEvent, retransmits)),
    ("rtt_us", std::mem::offset_of!(RawEvent, rtt_us)),
    ("handshake_us", std::mem::offset_of!(RawEvent, handshake_us)),
    ("sport", std::mem::offset_of!(RawEvent, sport)),
    ("dport", std::mem::offset_of!(RawEvent, dport)),
    ("error", std::mem::offset_of!(RawEvent, error)),
    ("reset_reason", std::mem::offset_of!(RawEvent, reset_reason)),
    ("kind", std::mem::offset_of!(RawEvent, kind)),
    ("protocol", std::mem::offset_of!(RawEvent, protocol)),
    ("role", std::mem::offset_of!(RawEvent, role)),
    ("family", std::mem::offset_of!(RawEvent, family)),
    ("state", std::mem::offset_of!(RawEvent, state)),
    ("flags", std::mem::offset_of!(RawEvent, flags)),
    ("prev_state", std::mem::offset_of!(RawEvent, prev_state)),
    ("fin_rcvd", std::mem::offset_of!(RawEvent, fin_rcvd)),
    ("comm", std::mem::offset_of!(RawEvent, comm)),
];

impl RawEvent {
    pub const SIZE: usize = std::mem::size_of::<RawEvent>();

    /// Decodes one ring-buffer record; `None` if it is too short to be a `gsp_event`.
    pub fn from_bytes(bytes: &[u8]) -> Option<RawEvent> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        // SAFETY: RawEvent is repr(C), made only of integers and byte arrays (every bit
        // pattern is valid), and the length was checked; read_unaligned copes with any alignment.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<RawEvent>()) })
    }

    /// The record's bytes, as the kernel wrote them (used by the crash journal).
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: repr(C) without padding (checked by the layout test), so every byte is initialised.
        unsafe { std::slice::from_raw_parts((self as *const RawEvent).cast::<u8>(), Self::SIZE) }
    }

    /// The owner's command name, up to its NUL.
    pub fn comm_str(&self) -> &str {
        comm_to_str(&self.comm)
    }
}

/// A kernel `comm` buffer as text, up to its NUL (lossless for the ASCII names processes use).
pub fn comm_to_str(comm: &[u8]) -> &str {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    std::str::from_utf8(&comm[..end]).unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_event_has_no_padding() {
        let sum: usize = [8usize; 9].iter().sum::<usize>() + 16 + 16 + 4 * 4 + 2 * 4 + 6 + 1 + 1 + COMM_LEN;
        assert_eq!(sum, RawEvent::SIZE);
        assert_eq!(RawEvent::SIZE % 8, 0);
    }

    #[test]
    fn round_trips_through_bytes() {
        let e = RawEvent { ts_ns: 42, conn_id: 7, comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0", ..Default::default() };
        let back = RawEvent::from_bytes(e.as_bytes()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.comm_str(), "curl");
        assert!(RawEvent::from_bytes(&[0u8; 10]).is_none());
    }
}
