//! `gespann anonymize`: makes a recording shareable. Addresses are replaced prefix-preservingly
//! and names by keyed hashes; every count, time, port, protocol, outcome and id number is kept,
//! so every report of the anonymized recording gives the numbers of the original.
//!
//! Shaped around one secret key, because what makes anonymized recordings useful is that they
//! stay comparable: with the same key, two recordings (two hosts, before and after a change)
//! get the same replacement for the same address or name, so they can be analyzed together and
//! `gespann analyze --diff` compares them as it would the originals. One job per module:
//!
//! - [`key`]: the key file and the two keys derived from it;
//! - [`cryptopan`]: addresses, with Crypto-PAn (Xu et al., ICNP 2002) over AES-128: two
//!   addresses that share their first `k` bits still share exactly `k` bits, for IPv4 and IPv6;
//!   loopback and the unspecified address are kept as they are;
//! - [`names`]: process, host, container and pod names, container ids, pod uids and cgroup paths,
//!   as HMAC-SHA-256 hashes in the shapes the analyzer and analysts rely on;
//! - [`rows`]: one row at a time, each distinct value worked out once;
//! - [`file`]: a whole recording in, an anonymized one out, with its metadata.
//!
//! Kept as they are: ports, protocol, role, family, times, every counter, RTTs, durations,
//! `conn_id`, `pid`, `cgroup_id`, `netns`, the kernel's words (`kind`, `state`, `error`,
//! `reset_by`, `reset_reason`), and in the metadata the versions, kernel, window, events lost,
//! sample interval and closing counts. This crate prints nothing: the binary shows progress.

pub mod cryptopan;
mod error;
pub mod file;
pub mod key;
pub mod names;
pub mod rows;

pub use error::AnonymizeError;
pub use file::{COMMAND_LINE, METHOD, Summary, anonymize};
pub use key::{Key, MIN_KEY_BYTES};
pub use rows::{Anonymizer, Seen};
