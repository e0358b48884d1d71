//! Addresses as the kernel hands them over (4 or 16 bytes, a family) and as recordings hold
//! them: IPv4-mapped IPv6 addresses are IPv4 on the wire, so they are recorded as IPv4. Used by
//! the tracker (raw records) and by sock_diag (dumped sockets) alike.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as IPv4.
pub fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// An address from a raw record: the first 4 bytes for family 4, all 16 for family 6.
pub fn addr_of(family: u8, bytes: &[u8; 16]) -> IpAddr {
    if family == 6 {
        unmap(IpAddr::V6(Ipv6Addr::from(*bytes)))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    }
}
