/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The kernel side's state: the ring buffer, the lost counters, and the per-socket tables (each
 * entry deleted on every path that ends its socket), with the value types only the kernel uses.
 * The types user space reads too are in gespann.h.
 */
#ifndef GESPANN_MAPS_H
#define GESPANN_MAPS_H

#include "types.h"
#include <bpf/bpf_helpers.h>
#include "gespann.h"

#define C_CONFIRMED (1 << 0)	/* owner known for sure (process context) */
#define C_CLOSED (1 << 1)	/* CLOSE reported; kept until destroyed, for an RST that follows */

/* A tracked TCP connection (or attempt), from SYN_SENT / passive open to its end. */
struct tcp_conn {
	__u64 conn_id;
	__u64 start_ns;
	__u32 handshake_us;
	__u8 role;
	__u8 flags;		/* GSP_F_RESET_* */
	__u8 cflags;		/* C_* */
	__u8 _pad;
	__u16 reset_reason;
	__u16 _pad2[3];
	struct owner owner;
};

/* A connect() in progress on a thread, from the cgroup hook to the syscall's return. */
struct connect_call {
	__u64 sk;
	__u64 start_ns;
	__u64 conn_id;		/* the attempt's id once it reached SYN_SENT (TCP) */
	__u8 daddr[16];
	__u16 dport;
	__u8 family;
	__u8 protocol;
	__u8 need_errno;	/* its FAILED was reported without an errno (sk_err unset) */
	__u8 _pad[3];
};

/* Peer of an unconnected sendmsg/recvmsg, left by the cgroup hook for the tracepoint. */
struct peer {
	__u8 addr[16];
	__u16 port;
	__u8 family;
	__u8 _pad[5];
};

/* Never instantiated: a pointer of this type makes the compiler put every type and enum user
 * space mirrors into the object's BTF, where recorder/tests/layout.rs reads them (map key and
 * value types get there anyway; the event and the enums would not). */
struct gsp_btf_anchor {
	struct gsp_event event;
	struct owner owner;
	struct udp_key udp_key;
	struct udp_flow udp_flow;
	struct udp_sock udp_sock;
	struct tcp_tuple tcp_tuple;
	struct listener_key listener_key;
	struct listener listener;
	enum gsp_limit limit;
	enum gsp_kind kind;
	enum gsp_flag flag;
	enum gsp_role role;
	enum gsp_proto proto;
	enum gsp_lost_slot lost_slot;
};
const struct gsp_btf_anchor *gsp_btf_anchor __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GSP_LOST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Tracked TCP connections by socket address; each entry is deleted on every path that ends
 * its socket (tcp_destroy_sock last). Not socket-local storage, measured: creating a socket's
 * storage costs two memcg-charged kmallocs (about 1.3 µs per connection here), an entry of this
 * hash one take from the BPF allocator's per-CPU cache. Not preallocated (BPF_F_NO_PREALLOC):
 * the cap is high for hosts with many idle connections, and memory follows what is tracked;
 * a connection past the cap is counted in GSP_LOST_TABLE. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 262144);
	__type(key, __u64);
	__type(value, struct tcp_conn);
} tcp_conns SEC(".maps");

/* Listening address -> owner, for the provisional owner of accepted connections. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listener_key);
	__type(value, struct listener);
} listeners SEC(".maps");

/* With --cgroup/--container: the wanted owners' cgroup v2 ids (user space adds the cgroups of
 * containers that start while recording). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} filter_cgroups SEC(".maps");

/* With --netns: the wanted network namespaces' inode numbers. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} filter_netns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct udp_key);
	__type(value, struct udp_flow);
} udp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct udp_sock);
} udp_socks SEC(".maps");

/* Thread -> the peer its current sendmsg/recvmsg named (family 0: none waiting). Set by the
 * cgroup hook, taken by the tracepoint that follows on the same thread. Task-local storage,
 * not a hash keyed by thread id: the slot hangs off the task itself, so a datagram costs no
 * hash insert and delete (made at a thread's first unconnected datagram, freed with the task). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct peer);
} peers SEC(".maps");

/* With owner filters (--pid, --comm): the connections older than the recording that user space
 * wants (it knows their owners from sock_diag), filled at start. Events about other untracked
 * sockets are dropped here rather than in user space; each entry goes at its connection's end. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tcp_tuple);
	__type(value, __u8);
} wanted_preexisting SEC(".maps");

/* Slot 0: set to 1 by user space once wanted_preexisting is complete. Until then (or if it could
 * not be completed) untracked events all go to user space, which filters them as before. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} preexisting_ready SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct connect_call);
} connects SEC(".maps");

/* Set by user space before load when the connect hooks that fill `connects` are attached
 * (--connect-errors); without them the TCP paths do not look there. */
const volatile __u32 connect_errors = 0;

static __always_inline void count_lost(enum gsp_lost_slot slot)
{
	__u32 key = slot;
	__u64 *v = bpf_map_lookup_elem(&lost, &key);

	if (v)
		*v += 1;
}

/* The socket's connection, or NULL if it is not tracked. */
static __always_inline struct tcp_conn *conn_of(const struct sock *sk)
{
	__u64 key = (__u64)sk;

	return bpf_map_lookup_elem(&tcp_conns, &key);
}

/* Tracks `sk` as `c` (replacing what it had); false if the table is full (counted). */
static __always_inline bool conn_put(const struct sock *sk, const struct tcp_conn *c)
{
	__u64 key = (__u64)sk;

	if (bpf_map_update_elem(&tcp_conns, &key, c, BPF_ANY)) {
		count_lost(GSP_LOST_TABLE);
		return false;
	}
	return true;
}

static __always_inline void conn_forget(const struct sock *sk)
{
	__u64 key = (__u64)sk;

	bpf_map_delete_elem(&tcp_conns, &key);
}

#endif /* GESPANN_MAPS_H */
