//! The Rust mirror of `recorder-ebpf/src/gespann.h`: what the kernel writes into the ring buffer.
//!
//! Every struct is `#[repr(C)]` with every field placed by hand, no implicit padding. The tables
//! at the end ([`MIRRORED_STRUCTS`], [`MIRRORED_ENUMS`]) describe the mirror in one place: the
//! recorder's `layout` test compares each struct field by field (name, offset, size) and each
//! enum name by name and value by value with the BTF of the compiled object, so the C and Rust
//! definitions cannot drift apart.

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

/// Per-CPU counters of the `lost` map, by index (`enum gsp_lost_slot`).
pub const LOST_RINGBUF: u32 = 0;
pub const LOST_TABLE: u32 = 1;
/// The number of slots.
pub const LOST_SLOTS: u32 = 2;

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
    pub netns: u32,
    pub _pad: u32,
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
    pub _pad: [u8; 2],
    pub netns: u32,
    pub owner: Owner,
}

/// `struct udp_sock`: a UDP socket's flow count and first flow, value of the kernel's
/// `udp_socks` map (its keys are the sockets with flows, until they are released).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpSock {
    pub nflows: u32,
    pub _pad: u32,
    pub first: UdpKey,
}

/// `struct tcp_tuple`: a TCP connection's endpoints, key of the kernel's `wanted_preexisting`
/// map. Addresses in IPv6 form (IPv4 as `::ffff:a.b.c.d`, see [`TcpTuple::new`]), ports in host
/// order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpTuple {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub netns: u32,
}

/// `struct listener_key`: a listening address in its namespace, key of the kernel's `listeners`
/// map (see [`ListenerKey::new`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ListenerKey {
    pub netns: u32,
    pub port: u16,
    pub family: u8,
    pub _pad: u8,
    pub addr: [u8; 16],
}

impl ListenerKey {
    /// The key of a socket of `family` (4 or 6) listening on `addr:port` in `netns`, as the
    /// kernel builds it: an IPv4 address in the first 4 bytes, the unspecified address as zeros.
    pub fn new(netns: u32, family: u8, addr: std::net::IpAddr, port: u16) -> ListenerKey {
        let mut a = [0u8; 16];
        match addr {
            std::net::IpAddr::V4(v4) if family == 4 => a[..4].copy_from_slice(&v4.octets()),
            std::net::IpAddr::V4(v4) => a = v4.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(v6) => a = v6.octets(),
        }
        ListenerKey { netns, port, family, _pad: 0, addr: a }
    }
}

/// `struct listener`: a listening address's owner and how many sockets listen there.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listener {
    pub owner: Owner,
    pub sockets: u32,
    pub _pad: u32,
}

impl TcpTuple {
    /// The tuple as the kernel builds it from a socket, whatever its family.
    pub fn new(netns: u32, local: std::net::IpAddr, sport: u16, remote: std::net::IpAddr, dport: u16) -> TcpTuple {
        let v6 = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(v6) => v6.octets(),
        };
        TcpTuple { saddr: v6(local), daddr: v6(remote), sport, dport, netns }
    }
}

/// One field of a mirrored struct: its C name, byte offset and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
}

/// A mirrored struct: its C name (`struct NAME` in `gespann.h`), size, and every field in order.
#[derive(Clone, Copy, Debug)]
pub struct MirroredStruct {
    pub c_name: &'static str,
    pub size: usize,
    pub fields: &'static [Field],
}

/// A mirrored C enum (`enum NAME` in `gespann.h`): every enumerator and its value, in order.
#[derive(Clone, Copy, Debug)]
pub struct MirroredEnum {
    pub c_name: &'static str,
    pub values: &'static [(&'static str, i64)],
}

const fn size_of_pointee<T>(_: *const T) -> usize {
    std::mem::size_of::<T>()
}

/// `Field`s of a struct, by name: offsets and sizes computed from the Rust definition.
macro_rules! fields {
    ($t:ty { $($f:ident),* $(,)? }) => {
        &[$(Field {
            name: stringify!($f),
            offset: std::mem::offset_of!($t, $f),
            size: {
                let u = std::mem::MaybeUninit::<$t>::uninit();
                // SAFETY: only the field's address is taken (inside a live local), never read.
                size_of_pointee(unsafe { &raw const (*u.as_ptr()).$f })
            },
        }),*]
    };
}

/// Every struct that crosses the kernel boundary, for the layout test against the object's BTF.
pub const MIRRORED_STRUCTS: &[MirroredStruct] = &[
    MirroredStruct {
        c_name: "gsp_event",
        size: std::mem::size_of::<RawEvent>(),
        fields: fields!(RawEvent {
            ts_ns,
            start_ns,
            conn_id,
            sk,
            cgroup_id,
            bytes_sent,
            bytes_received,
            packets_sent,
            packets_received,
            saddr,
            daddr,
            pid,
            retransmits,
            rtt_us,
            handshake_us,
            netns,
            _pad,
            sport,
            dport,
            error,
            reset_reason,
            kind,
            protocol,
            role,
            family,
            state,
            flags,
            prev_state,
            fin_rcvd,
            comm,
        }),
    },
    MirroredStruct {
        c_name: "owner",
        size: std::mem::size_of::<Owner>(),
        fields: fields!(Owner { cgroup_id, pid, _pad, comm }),
    },
    MirroredStruct {
        c_name: "udp_key",
        size: std::mem::size_of::<UdpKey>(),
        fields: fields!(UdpKey { sk, daddr, dport, _pad }),
    },
    MirroredStruct {
        c_name: "udp_flow",
        size: std::mem::size_of::<UdpFlow>(),
        fields: fields!(UdpFlow {
            conn_id,
            start_ns,
            bytes_sent,
            bytes_received,
            packets_sent,
            packets_received,
            role,
            ignored,
            _pad,
            netns,
            owner,
        }),
    },
    MirroredStruct {
        c_name: "udp_sock",
        size: std::mem::size_of::<UdpSock>(),
        fields: fields!(UdpSock { nflows, _pad, first }),
    },
    MirroredStruct {
        c_name: "tcp_tuple",
        size: std::mem::size_of::<TcpTuple>(),
        fields: fields!(TcpTuple { saddr, daddr, sport, dport, netns }),
    },
    MirroredStruct {
        c_name: "listener_key",
        size: std::mem::size_of::<ListenerKey>(),
        fields: fields!(ListenerKey { netns, port, family, _pad, addr }),
    },
    MirroredStruct {
        c_name: "listener",
        size: std::mem::size_of::<Listener>(),
        fields: fields!(Listener { owner, sockets, _pad }),
    },
];

/// Every enum that crosses the kernel boundary, against the Rust constants.
pub const MIRRORED_ENUMS: &[MirroredEnum] = &[
    MirroredEnum {
        c_name: "gsp_limit",
        values: &[
            ("GSP_COMM_LEN", COMM_LEN as i64),
            ("GSP_MAX_PIDS", MAX_PIDS as i64),
            ("GSP_MAX_COMMS", MAX_COMMS as i64),
            ("GSP_MAX_PORTS", MAX_PORTS as i64),
        ],
    },
    MirroredEnum {
        c_name: "gsp_kind",
        values: &[
            ("GSP_OPEN", kind::OPEN as i64),
            ("GSP_CLOSE", kind::CLOSE as i64),
            ("GSP_RESET", kind::RESET as i64),
            ("GSP_FAILED", kind::FAILED as i64),
            ("GSP_RETRANSMIT", kind::RETRANSMIT as i64),
            ("GSP_AMEND_RESET", kind::AMEND_RESET as i64),
            ("GSP_AMEND_OWNER", kind::AMEND_OWNER as i64),
            ("GSP_UDP_RELEASE", kind::UDP_RELEASE as i64),
            ("GSP_AMEND_ERROR", kind::AMEND_ERROR as i64),
        ],
    },
    MirroredEnum {
        c_name: "gsp_flag",
        values: &[
            ("GSP_F_RESET_LOCAL", flags::RESET_LOCAL as i64),
            ("GSP_F_RESET_REMOTE", flags::RESET_REMOTE as i64),
            ("GSP_F_HAS_HANDSHAKE", flags::HAS_HANDSHAKE as i64),
            ("GSP_F_HAS_RTT", flags::HAS_RTT as i64),
            ("GSP_F_UNTRACKED", flags::UNTRACKED as i64),
        ],
    },
    MirroredEnum {
        c_name: "gsp_role",
        values: &[("GSP_ROLE_CLIENT", ROLE_CLIENT as i64), ("GSP_ROLE_SERVER", ROLE_SERVER as i64)],
    },
    MirroredEnum {
        c_name: "gsp_proto",
        values: &[("GSP_PROTO_TCP", PROTO_TCP as i64), ("GSP_PROTO_UDP", PROTO_UDP as i64)],
    },
    MirroredEnum {
        c_name: "gsp_lost_slot",
        values: &[
            ("GSP_LOST_RINGBUF", LOST_RINGBUF as i64),
            ("GSP_LOST_TABLE", LOST_TABLE as i64),
            ("GSP_LOST_SLOTS", LOST_SLOTS as i64),
        ],
    },
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

    /// Each table lists every byte of its struct: fields back to back, the last ending at the
    /// struct's end. So no field is missing from a table and no struct has implicit padding.
    #[test]
    fn mirrored_structs_are_listed_whole_and_have_no_padding() {
        for s in MIRRORED_STRUCTS {
            let mut end = 0;
            for f in s.fields {
                assert_eq!(f.offset, end, "struct {}: field {} does not follow the previous one", s.c_name, f.name);
                end = f.offset + f.size;
            }
            assert_eq!(end, s.size, "struct {}: the fields do not fill it", s.c_name);
        }
    }

    #[test]
    fn tcp_tuples_use_the_ipv6_form() {
        let t = TcpTuple::new(9, [127, 0, 0, 1].into(), 5, "::1".parse().unwrap(), 6);
        assert_eq!(t.saddr, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
        assert_eq!(t.daddr[15], 1);
        assert_eq!((t.sport, t.dport, t.netns), (5, 6, 9));
        let k = ListenerKey::new(9, 4, [127, 0, 0, 1].into(), 80);
        assert_eq!(&k.addr[..5], &[127, 0, 0, 1, 0]);
        assert_eq!(ListenerKey::new(9, 6, [127, 0, 0, 1].into(), 80).addr[10..12], [0xff, 0xff]);
    }

    #[test]
    fn raw_event_has_no_padding() {
        let sum: usize = [8usize; 9].iter().sum::<usize>() + 16 + 16 + 4 * 6 + 2 * 4 + 6 + 1 + 1 + COMM_LEN;
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
