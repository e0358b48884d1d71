//! Payload accounting: what the kernel's TCP counters mean in payload bytes, and the RTT rule.
//! Every byte count a recording holds passes through here, from raw records and from sock_diag
//! alike, so the SYN and FIN rules live in one place.

use gespann_common::Role;
use gespann_common::raw::{self, RawEvent, flags, kind};

use crate::sockdiag::TcpInfo;

pub const TCP_FIN_WAIT2: u8 = 5;
pub const TCP_CLOSE_WAIT: u8 = 8;
pub const TCP_LAST_ACK: u8 = 9;
pub const TCP_CLOSING: u8 = 11;

/// Payload bytes from the kernel's counters. `bytes_acked` and `bytes_received` (in `tcp_sock`
/// and `tcp_info` alike) count sequence space: the SYN the client sent is acknowledged once
/// (the server's SYN-ACK is not counted: its connection is born after it), and each FIN
/// counts one. Recordings hold payload, so those are taken out here, in this one place.
pub fn tcp_payload(
    role: Role,
    bytes_acked: u64,
    bytes_received: u64,
    our_fin_acked: bool,
    their_fin_received: bool,
) -> (u64, u64) {
    let syn = u64::from(role == Role::Client && bytes_acked > 0);
    let sent = bytes_acked.saturating_sub(syn + u64::from(our_fin_acked));
    let received = bytes_received.saturating_sub(u64::from(their_fin_received));
    (sent, received)
}

/// A connection's cumulative counters, as a row carries them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub retransmits: u32,
}

impl Counters {
    /// The counters a raw record carries, in payload bytes.
    pub fn of_record(r: &RawEvent, role: Role) -> Counters {
        let (bytes_sent, bytes_received) = if r.protocol == raw::PROTO_TCP {
            // An orderly close (CLOSE) after FIN_WAIT2, CLOSING or LAST_ACK means our FIN was
            // acknowledged; an RST or a timeout (sk_err set) in CLOSING/LAST_ACK means it was not.
            let fin_acked = match r.kind {
                kind::CLOSE | kind::RESET => {
                    r.prev_state == TCP_FIN_WAIT2
                        || (r.kind == kind::CLOSE && r.error == 0 && matches!(r.prev_state, TCP_CLOSING | TCP_LAST_ACK))
                }
                _ => r.state == TCP_FIN_WAIT2,
            };
            tcp_payload(role, r.bytes_sent, r.bytes_received, fin_acked, r.fin_rcvd != 0)
        } else {
            (r.bytes_sent, r.bytes_received)
        };
        Counters {
            bytes_sent,
            bytes_received,
            packets_sent: r.packets_sent,
            packets_received: r.packets_received,
            retransmits: r.retransmits,
        }
    }

    /// The counters of a live socket from sock_diag, where the state tells the FINs apart.
    pub fn of_socket(role: Role, state: u8, info: &TcpInfo) -> Counters {
        let our_fin_acked = state == TCP_FIN_WAIT2;
        let their_fin = matches!(state, TCP_CLOSE_WAIT | TCP_LAST_ACK | TCP_CLOSING);
        let (bytes_sent, bytes_received) =
            tcp_payload(role, info.bytes_acked, info.bytes_received, our_fin_acked, their_fin);
        Counters {
            bytes_sent,
            bytes_received,
            packets_sent: u64::from(info.data_segs_out),
            packets_received: u64::from(info.data_segs_in),
            retransmits: info.total_retrans,
        }
    }
}

/// A smoothed RTT (from a raw record or tcp_info), if the kernel has measured one: an srtt of 0
/// means no sample yet (a failed attempt never has one; the kernel counts any sample as at
/// least 1 µs).
pub fn measured_rtt(rtt_us: u32) -> Option<u32> {
    (rtt_us != 0).then_some(rtt_us)
}

/// The RTT of a TCP record, see [`measured_rtt`].
pub fn rtt_of(r: &RawEvent) -> Option<u32> {
    if r.flags & flags::HAS_RTT != 0 { measured_rtt(r.rtt_us) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_and_fins_are_not_payload() {
        // Client that sent 1000 and received 500, orderly close: SYN and FIN acked, FIN received.
        assert_eq!(tcp_payload(Role::Client, 1002, 501, true, true), (1000, 500));
        // Server side of the same connection: no SYN in its bytes_acked.
        assert_eq!(tcp_payload(Role::Server, 501, 1001, true, true), (500, 1000));
        // Reset before any FIN.
        assert_eq!(tcp_payload(Role::Client, 301, 0, false, false), (300, 0));
        // A refused connect acknowledged nothing.
        assert_eq!(tcp_payload(Role::Client, 0, 0, false, false), (0, 0));
    }
}
