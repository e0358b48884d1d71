//! Prefix-preserving address anonymization: Crypto-PAn.
//!
//! J. Xu, J. Fan, M. H. Ammar and S. B. Moon, "Prefix-preserving IP address anonymization:
//! measurement-based security evaluation and a new cryptography-based scheme", Proc. 10th IEEE
//! International Conference on Network Protocols (ICNP 2002), pp. 280–289. The 32-byte key is an
//! AES-128 key and 16 bytes whose encryption is the pad. Bit `i` of an address is flipped by the
//! first bit of AES(the address's first `i` bits followed by the pad's bits from `i` on), so the
//! flip of bit `i` depends on the bits before it only. Hence two addresses that share their
//! first `k` bits and differ in bit `k` get the same flips for bits `0..=k`: their images share
//! exactly `k` bits too (two addresses in one /24 stay in one /24, and no two in different /24s
//! meet in one). IPv4 addresses take the first 32 bits of the AES block, as in the authors'
//! implementation; IPv6 addresses use the same construction over all 128 bits, as yacryptopan
//! does (its documented IPv4 and IPv6 examples are this module's reference vectors).
//!
//! The paper shows that every prefix-preserving bijection has this shape: a flip for each
//! prefix. That is what keeps a few addresses verbatim ([`KEPT_V4`], [`KEPT_V6`]): the prefixes
//! of a kept range, and every prefix inside it, get no flip. The mapping stays one-to-one and
//! exactly prefix-preserving (no other address can land on a kept one), at a price that any
//! such mapping pays: an address's common prefix with a kept address is kept as well (so
//! 10.0.0.0/8, which shares its first four bits with 0.0.0.0, stays inside 8.0.0.0/5; 0.0.0.1
//! stays 0.0.0.1; 2000::/3 stays inside 2000::/3; and the first bit of every address is kept).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};

/// IPv4 addresses kept as they are, as (address, prefix length): loopback, which tells that a
/// connection never left the host (127.0.0.53 is the local DNS stub), and 0.0.0.0, which a
/// recording uses for "no address" (an unbound UDP socket, a datagram with no source).
pub const KEPT_V4: [(Ipv4Addr, u32); 2] = [(Ipv4Addr::new(127, 0, 0, 0), 8), (Ipv4Addr::UNSPECIFIED, 32)];

/// IPv6 addresses kept as they are: `::1` (loopback) and `::` (no address).
pub const KEPT_V6: [(Ipv6Addr, u32); 2] = [(Ipv6Addr::LOCALHOST, 128), (Ipv6Addr::UNSPECIFIED, 128)];

/// The Crypto-PAn permutation of one key, with [`KEPT_V4`] and [`KEPT_V6`] left as they are.
#[derive(Clone)]
pub struct CryptoPan {
    cipher: Aes128,
    /// AES(key[16..32]), as a big-endian number.
    pad: u128,
    kept_v4: [(u128, u32); 2],
    kept_v6: [(u128, u32); 2],
}

impl std::fmt::Debug for CryptoPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CryptoPan(..)")
    }
}

/// `a` with its first `bits` bits kept, the rest zero.
fn prefix(a: u128, bits: u32) -> u128 {
    if bits == 0 { 0 } else { a & (u128::MAX << (128 - bits)) }
}

/// How many leading bits `a` and `b` share.
pub fn common_prefix(a: u128, b: u128) -> u32 {
    (a ^ b).leading_zeros()
}

impl CryptoPan {
    /// The permutation of a 32-byte Crypto-PAn key (16 bytes of AES-128 key, 16 of pad).
    pub fn new(key: &[u8; 32]) -> CryptoPan {
        let (aes_key, pad) = key.split_at(16);
        let aes_key: [u8; 16] = aes_key.try_into().expect("16 bytes");
        let pad: [u8; 16] = pad.try_into().expect("16 bytes");
        let cipher = Aes128::new(&aes_key.into());
        let mut block = aes::Block::from(pad);
        cipher.encrypt_block(&mut block);
        let pad = u128::from_be_bytes(block.into());
        let v4 = |(a, len): (Ipv4Addr, u32)| (u128::from(a.to_bits()) << 96, len);
        let v6 = |(a, len): (Ipv6Addr, u32)| (a.to_bits(), len);
        CryptoPan { cipher, pad, kept_v4: KEPT_V4.map(v4), kept_v6: KEPT_V6.map(v6) }
    }

    /// The flips of an address's first `bits` bits (`a` left-aligned in 128), none where the
    /// address is on the way to, or inside, a range of `kept`.
    fn flips(&self, a: u128, bits: u32, kept: &[(u128, u32)]) -> u128 {
        let mut flips = 0u128;
        for i in 0..bits {
            // The prefix a[0..i] is an ancestor of a kept range, or inside one: no flip, so
            // the kept range maps onto itself.
            if kept.iter().any(|&(r, len)| common_prefix(a, r) >= i.min(len)) {
                continue;
            }
            let mask = prefix(u128::MAX, i);
            let input = (a & mask) | (self.pad & !mask);
            let mut block = aes::Block::from(input.to_be_bytes());
            self.cipher.encrypt_block(&mut block);
            flips |= u128::from(block[0] >> 7) << (127 - i);
        }
        flips
    }

    pub fn v4(&self, a: Ipv4Addr) -> Ipv4Addr {
        let bits = u128::from(a.to_bits()) << 96;
        Ipv4Addr::from_bits(((bits ^ self.flips(bits, 32, &self.kept_v4)) >> 96) as u32)
    }

    pub fn v6(&self, a: Ipv6Addr) -> Ipv6Addr {
        let bits = a.to_bits();
        Ipv6Addr::from_bits(bits ^ self.flips(bits, 128, &self.kept_v6))
    }

    pub fn ip(&self, a: IpAddr) -> IpAddr {
        match a {
            IpAddr::V4(a) => IpAddr::V4(self.v4(a)),
            IpAddr::V6(a) => IpAddr::V6(self.v6(a)),
        }
    }

    /// Crypto-PAn as published, with nothing kept: for the reference vectors.
    #[cfg(test)]
    fn plain(&self, a: IpAddr) -> IpAddr {
        match a {
            IpAddr::V4(a) => {
                let bits = u128::from(a.to_bits()) << 96;
                IpAddr::V4(Ipv4Addr::from_bits(((bits ^ self.flips(bits, 32, &[])) >> 96) as u32))
            }
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() ^ self.flips(a.to_bits(), 128, &[]))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: the same pairs on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn u128(&mut self) -> u128 {
            (u128::from(self.next()) << 64) | u128::from(self.next())
        }
    }

    fn key(seed: u8) -> [u8; 32] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
    }

    fn v4_bits(a: Ipv4Addr) -> u128 {
        u128::from(a.to_bits()) << 96
    }

    /// `a` and an address that shares exactly `k` leading bits with it (of `bits`), random after.
    fn partner(rng: &mut Rng, a: u128, k: u32, bits: u32) -> u128 {
        if k == bits {
            return a;
        }
        let flipped = a ^ (1u128 << (127 - k));
        let rest = if k + 1 >= 128 { 0 } else { rng.u128() & (u128::MAX >> (k + 1)) };
        let b = prefix(flipped, k + 1) | rest;
        prefix(b, bits)
    }

    #[test]
    fn reference_vectors_of_the_published_scheme() {
        // yacryptopan's documented examples (IPv4 and IPv6).
        let p = CryptoPan::new(b"32-char-str-for-AES-key-and-pad.");
        for (a, want) in [("192.0.2.1", "192.0.125.244"), ("2001:db8::1", "27fe:8bc7:fee:1e:1e1f:f0fe:f0e1:83fd")] {
            assert_eq!(p.plain(a.parse().unwrap()), want.parse::<IpAddr>().unwrap(), "{a}");
            // Neither address is on the way to a kept one beyond bits the published scheme
            // happens not to flip for this key: keeping changes nothing else.
            assert_eq!(p.ip(a.parse().unwrap()), want.parse::<IpAddr>().unwrap(), "{a}");
        }
    }

    #[test]
    fn the_common_prefix_of_random_ipv4_pairs_keeps_its_length_exactly() {
        let p = CryptoPan::new(&key(1));
        let mut rng = Rng(4);
        for n in 0..20_000u32 {
            let a = prefix(rng.u128(), 32);
            let k = n % 33;
            let b = partner(&mut rng, a, k, 32);
            assert_eq!(common_prefix(a, b).min(32), k);
            let (x, y) = (Ipv4Addr::from_bits((a >> 96) as u32), Ipv4Addr::from_bits((b >> 96) as u32));
            let got = common_prefix(v4_bits(p.v4(x)), v4_bits(p.v4(y))).min(32);
            assert_eq!(got, k, "{x} and {y} share {k} bits, their images {got}");
        }
    }

    #[test]
    fn the_common_prefix_of_random_ipv6_pairs_keeps_its_length_exactly() {
        let p = CryptoPan::new(&key(2));
        let mut rng = Rng(6);
        for n in 0..3_000u32 {
            let a = rng.u128();
            let k = n % 129;
            let b = partner(&mut rng, a, k, 128);
            assert_eq!(common_prefix(a, b), k);
            let (x, y) = (Ipv6Addr::from_bits(a), Ipv6Addr::from_bits(b));
            let got = common_prefix(p.v6(x).to_bits(), p.v6(y).to_bits());
            assert_eq!(got, k, "{x} and {y} share {k} bits, their images {got}");
        }
    }

    #[test]
    fn pairs_with_kept_addresses_keep_their_common_prefix_too() {
        let p = CryptoPan::new(&key(3));
        let v4 = ["127.0.0.1", "127.0.0.53", "127.255.0.1", "126.1.2.3", "128.0.0.1", "0.0.0.0", "0.0.0.1", "10.1.2.3"];
        for a in v4 {
            for b in v4 {
                let (a, b): (Ipv4Addr, Ipv4Addr) = (a.parse().unwrap(), b.parse().unwrap());
                let before = common_prefix(v4_bits(a), v4_bits(b)).min(32);
                assert_eq!(common_prefix(v4_bits(p.v4(a)), v4_bits(p.v4(b))).min(32), before, "{a} {b}");
            }
        }
        let v6 = ["::", "::1", "::2", "::ffff:10.0.0.1", "2001:db8::1", "fe80::1", "fd00::1"];
        for a in v6 {
            for b in v6 {
                let (a, b): (Ipv6Addr, Ipv6Addr) = (a.parse().unwrap(), b.parse().unwrap());
                let before = common_prefix(a.to_bits(), b.to_bits());
                assert_eq!(common_prefix(p.v6(a).to_bits(), p.v6(b).to_bits()), before, "{a} {b}");
            }
        }
    }

    #[test]
    fn loopback_and_unspecified_stay_and_nothing_else_lands_on_them() {
        let p = CryptoPan::new(&key(4));
        for a in ["127.0.0.1", "127.0.0.53", "127.1.2.3", "0.0.0.0"] {
            let a: Ipv4Addr = a.parse().unwrap();
            assert_eq!(p.v4(a), a);
        }
        for a in [Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED] {
            assert_eq!(p.v6(a), a);
        }
        let mut rng = Rng(8);
        for _ in 0..5_000 {
            let a = Ipv4Addr::from_bits(rng.next() as u32);
            if a.is_loopback() || a.is_unspecified() {
                continue;
            }
            let b = p.v4(a);
            assert!(!b.is_loopback() && !b.is_unspecified(), "{a} -> {b}");
            let c = Ipv6Addr::from_bits(rng.u128());
            assert!(!p.v6(c).is_loopback() && !p.v6(c).is_unspecified(), "{c}");
        }
        // What shares a long prefix with a kept address shares it after too: 0.0.0.1 (31 bits
        // with 0.0.0.0) has nowhere else to go, 0.1.2.3 keeps its first 16 bits only.
        assert_eq!(p.v4("0.0.0.1".parse().unwrap()), "0.0.0.1".parse::<Ipv4Addr>().unwrap());
        let near = p.v4("0.1.2.3".parse().unwrap());
        assert_eq!(near.to_bits() >> 16, 1, "{near}");
        assert_ne!(near, "0.1.2.3".parse::<Ipv4Addr>().unwrap());
        let near = p.v6("::1:2:3".parse().unwrap());
        assert_eq!(near.to_bits() >> 32, 1, "{near}");
        assert_ne!(near, "::1:2:3".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn one_slash_24_stays_in_one_slash_24_and_neighbours_in_one_slash_23() {
        let p = CryptoPan::new(&key(5));
        let net = |a: Ipv4Addr| a.to_bits() >> 8;
        let a: Vec<Ipv4Addr> = (0..=255).map(|i| Ipv4Addr::new(10, 1, 2, i)).collect();
        let images: Vec<Ipv4Addr> = a.iter().map(|&x| p.v4(x)).collect();
        assert!(images.iter().all(|&x| net(x) == net(images[0])), "{images:?}");
        let distinct: std::collections::HashSet<_> = images.iter().collect();
        assert_eq!(distinct.len(), 256, "one-to-one");
        let next = p.v4(Ipv4Addr::new(10, 1, 3, 1));
        assert_ne!(net(next), net(images[0]));
        assert_eq!(next.to_bits() >> 9, images[0].to_bits() >> 9);
        assert_ne!(images[7], a[7], "addresses are replaced");
    }

    #[test]
    fn the_same_key_maps_the_same_way_and_another_key_differently() {
        let (p, q, r) = (CryptoPan::new(&key(6)), CryptoPan::new(&key(6)), CryptoPan::new(&key(7)));
        let mut rng = Rng(10);
        let mut differ = 0;
        for _ in 0..200 {
            let a = IpAddr::V4(Ipv4Addr::from_bits(rng.next() as u32 | 0x8000_0000));
            let b = IpAddr::V6(Ipv6Addr::from_bits(rng.u128() | (1 << 127)));
            assert_eq!(p.ip(a), q.ip(a));
            assert_eq!(p.ip(b), q.ip(b));
            differ += usize::from(p.ip(a) != r.ip(a)) + usize::from(p.ip(b) != r.ip(b));
        }
        assert!(differ >= 390, "another key gave the same image for {} of 400 addresses", 400 - differ);
    }
}
