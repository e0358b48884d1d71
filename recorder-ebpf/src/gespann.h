/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The one definition of everything that crosses the kernel/user boundary.
 *
 * The Rust mirror lives in common/src/raw.rs (`RawEvent`, `Owner`, `UdpKey`, `UdpFlow`, `TcpTuple`,
 * the `kind`/`flags` constants, ...). recorder/tests/layout.rs reads the BTF of the compiled object
 * (recorder-ebpf/gespann.bpf.o) and checks every struct below field by field (name, offset, size)
 * and every enum below name by name and value by value against the mirror, so the two cannot drift
 * apart silently. Keep the structs free of implicit padding: every field is placed by hand.
 */
#ifndef GESPANN_H
#define GESPANN_H

/*
 * Every constant user space shares is a named enum, so that it lands in the object's BTF (see
 * `gsp_btf_anchor` in maps.h) and the layout test can check each name and value against the Rust
 * constants in common/src/raw.rs.
 */

/* Sizes of the filter tables and of a command name. */
enum gsp_limit {
	GSP_COMM_LEN = 16,
	GSP_MAX_PIDS = 8,
	GSP_MAX_COMMS = 8,
	GSP_MAX_PORTS = 16,
};

/* What a `struct gsp_event` reports. */
enum gsp_kind {
	GSP_OPEN = 1,		/* TCP established / first datagram of a UDP flow */
	GSP_CLOSE = 2,		/* orderly end (FIN) or UDP socket released */
	GSP_RESET = 3,		/* ended by RST (reset_by in flags) */
	GSP_FAILED = 4,		/* connect attempt that never established */
	GSP_RETRANSMIT = 5,	/* a retransmitted segment */
	GSP_AMEND_RESET = 6,	/* the CLOSE just reported for conn_id was followed by a local RST */
	GSP_AMEND_OWNER = 7,	/* a server connection's owner, learnt at its first send/recv */
	GSP_UDP_RELEASE = 8,	/* a UDP socket with several flows was released: user space ends them */
	GSP_AMEND_ERROR = 9,	/* the FAILED just reported for conn_id failed with `error` (connect's errno) */
};

/* gsp_event.flags, a bit set. */
enum gsp_flag {
	GSP_F_RESET_LOCAL = 1 << 0,	/* an RST was sent by this host */
	GSP_F_RESET_REMOTE = 1 << 1,	/* an RST was received */
	GSP_F_HAS_HANDSHAKE = 1 << 2,	/* handshake_us is meaningful */
	GSP_F_HAS_RTT = 1 << 3,		/* rtt_us was read from tcp_sock (0 there: no sample yet) */
	GSP_F_UNTRACKED = 1 << 4,	/* socket not seen opening (older than the recording) */
};

/* gsp_event.role, udp_flow.role */
enum gsp_role {
	GSP_ROLE_CLIENT = 1,	/* this host initiated: connect / first datagram sent */
	GSP_ROLE_SERVER = 2,	/* accepted / first datagram received */
};

/* gsp_event.protocol: the IP protocol numbers. */
enum gsp_proto {
	GSP_PROTO_TCP = 6,
	GSP_PROTO_UDP = 17,
};

/* Per-CPU counters in the `lost` map, by index; user space writes their sum to
 * `gespann.events_lost`. */
enum gsp_lost_slot {
	GSP_LOST_RINGBUF = 0,	/* ring buffer full: event dropped */
	GSP_LOST_TABLE = 1,	/* a connection/flow table full: connection or flow not tracked */
	GSP_LOST_SLOTS = 2,	/* the number of slots */
};

struct gsp_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 start_ns;		/* when the connection/attempt/flow began, same clock; 0 if unknown */
	__u64 conn_id;		/* unique within a recording; 0 for untracked sockets */
	__u64 sk;		/* socket address, an opaque handle */
	__u64 cgroup_id;	/* owner's cgroup v2 id */
	__u64 bytes_sent;	/* TCP: bytes_acked; UDP: payload sent */
	__u64 bytes_received;	/* TCP: bytes_received (in order); UDP: payload received */
	__u64 packets_sent;	/* TCP: data_segs_out; UDP: datagrams */
	__u64 packets_received;	/* TCP: data_segs_in; UDP: datagrams */
	__u8 saddr[16];		/* local address: 4 bytes for IPv4, network order */
	__u8 daddr[16];		/* remote address */
	__u32 pid;		/* owner's tgid */
	__u32 retransmits;	/* TCP total_retrans */
	__u32 rtt_us;		/* TCP smoothed RTT */
	__u32 handshake_us;	/* TCP client: SYN_SENT -> ESTABLISHED; server: SYN-ACK -> ACK */
	__u32 netns;		/* inode number of the socket's network namespace */
	__u32 _pad;
	__u16 sport;		/* local port, host order */
	__u16 dport;		/* remote port, host order */
	__u16 error;		/* errno (sk_err) on failed/reset */
	__u16 reset_reason;	/* enum sk_rst_reason + 1 for a local RST; 0 = none */
	__u8 kind;		/* enum gsp_kind */
	__u8 protocol;		/* enum gsp_proto */
	__u8 role;		/* enum gsp_role */
	__u8 family;		/* 4 or 6 */
	__u8 state;		/* TCP state after the event (TCP_ESTABLISHED = 1, ...) */
	__u8 flags;		/* enum gsp_flag bits */
	__u8 prev_state;	/* TCP state before a CLOSE (to know whether our FIN was acked) */
	__u8 fin_rcvd;		/* TCP: the peer's FIN was received (SOCK_DONE) */
	char comm[GSP_COMM_LEN];
};

/* Map types user space reads too (UDP flows are sampled and ended from user space). */
struct owner {
	__u64 cgroup_id;
	__u32 pid;
	__u32 _pad;
	char comm[GSP_COMM_LEN];
};

struct udp_key {
	__u64 sk;
	__u8 daddr[16];
	__u16 dport;
	__u16 _pad[3];
};

struct udp_flow {
	__u64 conn_id;
	__u64 start_ns;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 packets_sent;
	__u64 packets_received;
	__u8 role;
	__u8 ignored;
	__u8 _pad[2];
	__u32 netns;		/* the socket's network namespace */
	struct owner owner;
};

/* Per UDP socket: how many flows, and the first one (the only one, for most sockets). Value of
 * `udp_socks`; sock_release deletes the entry whatever else happens, so user space takes a flow
 * whose socket has no entry for one released (its release record may have been lost). */
struct udp_sock {
	__u32 nflows;
	__u32 _pad;
	struct udp_key first;
};

/* A TCP connection's endpoints in its network namespace, every address in IPv6 form (IPv4 as
 * ::ffff:a.b.c.d), ports in host order. Key of `wanted_preexisting`: with owner filters on, user
 * space puts there the connections older than the recording that it wants (it knows their owners
 * from sock_diag). */
struct tcp_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 netns;
};

/* A listening address: namespace, family, port and local address (all zero for a wildcard
 * listener; IPv6 form for an AF_INET6 socket, the 4 bytes first for AF_INET). Key of `listeners`:
 * an accepted connection gets the owner of the listener in its own namespace, bound to its local
 * address or else to the wildcard. */
struct listener_key {
	__u32 netns;
	__u16 port;
	__u8 family;		/* 4 or 6 */
	__u8 _pad;
	__u8 addr[16];
};

/* Value of `listeners`: the owner (who called listen() first, or sock_diag's owner for a listener
 * older than the recording) and how many sockets listen there (SO_REUSEPORT groups): the entry
 * goes when the last of them closes. */
struct listener {
	struct owner owner;
	__u32 sockets;
	__u32 _pad;
};

#endif /* GESPANN_H */
