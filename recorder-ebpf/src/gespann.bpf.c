// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * Gespann's kernel side: TCP connection and UDP flow lifecycle from tracepoints.
 *
 * Attached as raw tracepoints: the same kernel tracepoints as `perf list` shows, without the
 * cost of formatting a trace record for every call; the arguments are the tracepoints' own
 * (TP_PROTO), and socket fields are read with CO-RE.
 *
 * Shape (after libbpf-tools tcplife.bpf.c): per-socket state in hash maps keyed by the socket
 * pointer and deleted on every close path; counters are read from tcp_sock at state changes
 * rather than one event per send; filters are read-only globals set by user space before load;
 * every ring-buffer reserve failure is counted per CPU.
 *
 * TCP  sock:inet_sock_set_state   SYN_SENT (connect, process context: the owner), ESTABLISHED
 *                                 (open), CLOSE (close/reset/failed), LISTEN (listener owner)
 *      tcp:tcp_receive_reset      marks the connection reset by the remote
 *      tcp:tcp_send_reset         marks it reset locally, or amends a just-reported close
 *      tcp:tcp_retransmit_skb     one event per retransmitted segment
 *      tcp:tcp_destroy_sock       forgets the socket
 *      sock:sock_{send,recv}_length  the accepting process of a server connection
 * Both cgroup/connect{4,6} + syscalls:sys_exit_connect  connect() failures the socket's states
 *                                 do not show: refused before any SYN (no route, EACCES, no
 *                                 free local port), with connect()'s own errno
 * UDP  sock:sock_{send,recv}_length  per-flow datagram/byte counters, aggregated here
 *      cgroup/{send,recv}msg{4,6}  the peer of unconnected sendto/recvfrom (same thread, just before)
 *      cgroup/sock_release        ends the socket's flows
 */
#include "types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "gespann.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10

#define SOCK_DONE 1	/* enum sock_flags: set by tcp_fin() when the peer's FIN arrives */

/* Filters, set by user space before load. Zero counts mean "no filter". */
const volatile __u32 filter_pids[GSP_MAX_PIDS] = {};
const volatile __u32 filter_npids = 0;
const volatile char filter_comms[GSP_MAX_COMMS][GSP_COMM_LEN] = {};
const volatile __u32 filter_ncomms = 0;
const volatile __u16 filter_ports[GSP_MAX_PORTS] = {};
const volatile __u32 filter_nports = 0;

/* Wake the reader only once this much is waiting (0: on every event). User space drains on a
 * short timer anyway; a wakeup per event would cost a context switch per event. */
const volatile __u64 wakeup_bytes = 0;

__u64 next_conn_id = 0;

/* Keeps struct gsp_event in the object's BTF, where the layout test reads it. */
const struct gsp_event *gsp_event_btf __attribute__((unused));

#define C_CONFIRMED (1 << 0)	/* owner known for sure (process context) */
#define C_CLOSED (1 << 1)	/* CLOSE reported; kept until destroyed, for an RST that follows */

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

/* Per UDP socket: how many flows, and the first one (the only one, for most sockets). */
struct udp_sock {
	__u32 nflows;
	__u32 _pad;
	struct udp_key first;
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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tcp_conn);
} tcp_conns SEC(".maps");

/* Listening port -> owner, for the provisional owner of accepted connections. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u16);
	__type(value, struct owner);
} listeners SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct peer);
} peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct connect_call);
} connects SEC(".maps");

static __always_inline void count_lost(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&lost, &slot);
	if (v)
		*v += 1;
}

static __always_inline __u64 new_conn_id(void)
{
	return __sync_fetch_and_add(&next_conn_id, 1) + 1;
}

/* The owner is the process (thread group), named after its main thread: a server's worker
 * threads often carry names of their own. */
static __always_inline void current_owner(struct owner *o)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->cgroup_id = bpf_get_current_cgroup_id();
	if (BPF_CORE_READ_STR_INTO(&o->comm, task, group_leader, comm) <= 0)
		bpf_get_current_comm(o->comm, sizeof(o->comm));
}

static __always_inline bool comm_eq(const volatile char *a, const char *b)
{
	for (int i = 0; i < GSP_COMM_LEN; i++) {
		if (a[i] != b[i])
			return false;
		if (a[i] == 0)
			return true;
	}
	return true;
}

static __always_inline bool owner_wanted(const struct owner *o)
{
	if (filter_npids) {
		bool hit = false;
		for (int i = 0; i < GSP_MAX_PIDS; i++)
			if (i < filter_npids && filter_pids[i] == o->pid)
				hit = true;
		if (!hit)
			return false;
	}
	if (filter_ncomms) {
		bool hit = false;
		for (int i = 0; i < GSP_MAX_COMMS; i++)
			if (i < filter_ncomms && comm_eq(filter_comms[i], o->comm))
				hit = true;
		if (!hit)
			return false;
	}
	return true;
}

static __always_inline bool ports_wanted(__u16 sport, __u16 dport)
{
	if (!filter_nports)
		return true;
	for (int i = 0; i < GSP_MAX_PORTS; i++)
		if (i < filter_nports && (filter_ports[i] == sport || filter_ports[i] == dport))
			return true;
	return false;
}

/* The local port. Not skc_num: tcp_set_state(TCP_CLOSE) releases the port (and zeroes
 * skc_num) before the tracepoint fires, while inet_sport keeps it. */
static __always_inline __u16 local_port(struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

static __always_inline void fill_endpoints(struct gsp_event *e, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	e->sk = (__u64)sk;
	e->sport = local_port(sk);
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET6) {
		e->family = 6;
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		e->family = 4;
		BPF_CORE_READ_INTO((__u32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->daddr, sk, __sk_common.skc_daddr);
	}
}

static __always_inline void fill_tcp_counters(struct gsp_event *e, struct sock *sk)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	e->bytes_sent = BPF_CORE_READ(tp, bytes_acked);
	e->bytes_received = BPF_CORE_READ(tp, bytes_received);
	e->packets_sent = BPF_CORE_READ(tp, data_segs_out);
	e->packets_received = BPF_CORE_READ(tp, data_segs_in);
	e->retransmits = BPF_CORE_READ(tp, total_retrans);
	e->rtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->flags |= GSP_F_HAS_RTT;
}

static __always_inline struct gsp_event *reserve(void)
{
	struct gsp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_lost(GSP_LOST_RINGBUF);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	return e;
}

static __always_inline void submit(struct gsp_event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

static __always_inline void set_owner(struct gsp_event *e, const struct owner *o)
{
	e->pid = o->pid;
	e->cgroup_id = o->cgroup_id;
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
}

/* An event about a tracked TCP connection, with endpoints and counters read from the socket. */
static __always_inline void emit_tcp(struct sock *sk, struct tcp_conn *c, __u8 kind, __u8 state,
				     __u8 prev_state)
{
	struct gsp_event *e = reserve();

	if (!e)
		return;
	fill_endpoints(e, sk);
	fill_tcp_counters(e, sk);
	e->kind = kind;
	e->protocol = GSP_PROTO_TCP;
	e->state = state;
	e->prev_state = prev_state;
	e->fin_rcvd = (BPF_CORE_READ(sk, __sk_common.skc_flags) >> SOCK_DONE) & 1;
	if (c) {
		e->conn_id = c->conn_id;
		e->start_ns = c->start_ns;
		e->role = c->role;
		e->flags |= c->flags;
		e->reset_reason = c->reset_reason;
		set_owner(e, &c->owner);
		if (kind == GSP_OPEN && c->handshake_us) {
			e->handshake_us = c->handshake_us;
			e->flags |= GSP_F_HAS_HANDSHAKE;
		}
	} else {
		e->flags |= GSP_F_UNTRACKED;
	}
	if (kind == GSP_FAILED || kind == GSP_RESET)
		e->error = BPF_CORE_READ(sk, sk_err);
	submit(e);
}

static __always_inline bool tcp_wanted(struct sock *sk, const struct owner *o)
{
	__u16 sport = local_port(sk);
	__u16 dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));

	return ports_wanted(sport, dport) && owner_wanted(o);
}

static __always_inline void tcp_to_established(struct sock *sk, int oldstate)
{
	__u64 key = (__u64)sk;
	__u64 now = bpf_ktime_get_ns();
	struct tcp_conn *c;

	if (oldstate == TCP_SYN_SENT) {
		c = bpf_map_lookup_elem(&tcp_conns, &key);
		if (!c)
			return;
		c->handshake_us = (now - c->start_ns) / 1000;
		if (!tcp_wanted(sk, &c->owner)) {
			bpf_map_delete_elem(&tcp_conns, &key);
			return;
		}
		emit_tcp(sk, c, GSP_OPEN, TCP_ESTABLISHED, oldstate);
		return;
	}
	if (oldstate != TCP_SYN_RECV)
		return;

	/* Passive open, in softirq: `current` is whoever happened to be on the CPU. The owner is
	 * the listener's until the accepting process first sends or receives on the socket. */
	struct tcp_conn nc = {};
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	struct owner *lo = bpf_map_lookup_elem(&listeners, &lport);

	if (lo)
		nc.owner = *lo;
	if (!tcp_wanted(sk, &nc.owner))
		return;
	nc.conn_id = new_conn_id();
	nc.start_ns = now;
	nc.role = GSP_ROLE_SERVER;
	/* The server's side of the handshake, SYN-ACK sent to ACK received: the kernel takes
	 * it as the connection's first RTT sample just before this transition. */
	nc.handshake_us = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us) >> 3;
	if (bpf_map_update_elem(&tcp_conns, &key, &nc, BPF_ANY)) {
		count_lost(GSP_LOST_TABLE);
		return;
	}
	emit_tcp(sk, &nc, GSP_OPEN, TCP_ESTABLISHED, oldstate);
}

static __always_inline void tcp_to_close(struct sock *sk, int oldstate)
{
	__u64 key = (__u64)sk;
	struct tcp_conn *c = bpf_map_lookup_elem(&tcp_conns, &key);

	if (c && (c->cflags & C_CLOSED))
		return;
	if (!c) {
		/* A connection that predates the recording: user space matches it by its
		 * endpoints. Half-open children (SYN_RECV) and listeners are not connections. */
		if (oldstate == TCP_SYN_RECV || oldstate == TCP_LISTEN || oldstate == TCP_SYN_SENT)
			return;
		__u16 sport = local_port(sk);
		__u16 dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		if (!ports_wanted(sport, dport))
			return;
		emit_tcp(sk, NULL, GSP_CLOSE, TCP_CLOSE, oldstate);
		return;
	}

	__u8 kind;
	if (oldstate == TCP_SYN_SENT) {
		/* Attempts are tracked from connect(), before the source port exists: the port
		 * filter applies now. */
		if (!ports_wanted(local_port(sk), bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)))) {
			bpf_map_delete_elem(&tcp_conns, &key);
			return;
		}
		kind = GSP_FAILED;
		/* No sk_err: connect() itself failed after SYN_SENT (no free local port), in
		 * process context; its return value will supply the errno. */
		if (!BPF_CORE_READ(sk, sk_err)) {
			__u64 tid = bpf_get_current_pid_tgid();
			struct connect_call *cc = bpf_map_lookup_elem(&connects, &tid);
			if (cc && cc->sk == key)
				cc->need_errno = 1;
		}
	} else if (c->flags & (GSP_F_RESET_LOCAL | GSP_F_RESET_REMOTE))
		kind = GSP_RESET;
	else
		kind = GSP_CLOSE;
	emit_tcp(sk, c, kind, TCP_CLOSE, oldstate);

	/* After an orderly-looking CLOSE, a local RST may still follow (SO_LINGER 0, unread data,
	 * disconnect: the kernel moves to CLOSE first): keep the entry until the socket is
	 * destroyed so tcp_send_reset can amend the row. */
	if (kind == GSP_CLOSE)
		c->cflags |= C_CLOSED;
	else
		bpf_map_delete_elem(&tcp_conns, &key);
}

SEC("raw_tp/inet_sock_set_state")
int handle_set_state(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	int oldstate = (int)ctx->args[1];
	int newstate = (int)ctx->args[2];
	__u64 key = (__u64)sk;

	/* Half of a connection's transitions (SYN_RECV, FIN_WAIT*, CLOSE_WAIT, LAST_ACK) carry
	 * nothing Gespann records: leave before reading anything. */
	if (newstate != TCP_SYN_SENT && newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE &&
	    newstate != TCP_LISTEN)
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;

	switch (newstate) {
	case TCP_SYN_SENT: {
		/* connect(): process context, so `current` owns the socket. Ports are checked at
		 * open, since the source port is chosen after this transition. */
		struct tcp_conn c = {};
		current_owner(&c.owner);
		if (!owner_wanted(&c.owner))
			return 0;
		c.conn_id = new_conn_id();
		c.start_ns = bpf_ktime_get_ns();
		c.role = GSP_ROLE_CLIENT;
		c.cflags = C_CONFIRMED;
		/* BPF_ANY: a socket reused for a new connect starts afresh. */
		if (bpf_map_update_elem(&tcp_conns, &key, &c, BPF_ANY)) {
			count_lost(GSP_LOST_TABLE);
			break;
		}
		__u64 tid = bpf_get_current_pid_tgid();
		struct connect_call *cc = bpf_map_lookup_elem(&connects, &tid);
		if (cc && cc->sk == key)
			cc->conn_id = c.conn_id;
		break;
	}
	case TCP_ESTABLISHED:
		tcp_to_established(sk, oldstate);
		break;
	case TCP_CLOSE:
		if (oldstate == TCP_LISTEN) {
			__u16 lport = local_port(sk);
			bpf_map_delete_elem(&listeners, &lport);
			break;
		}
		tcp_to_close(sk, oldstate);
		break;
	case TCP_LISTEN: {
		struct owner o = {};
		__u16 lport = local_port(sk);
		current_owner(&o);
		bpf_map_update_elem(&listeners, &lport, &o, BPF_ANY);
		break;
	}
	}
	return 0;
}

SEC("raw_tp/tcp_receive_reset")
int handle_receive_reset(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 key = ctx->args[0];
	struct tcp_conn *c = bpf_map_lookup_elem(&tcp_conns, &key);

	if (c && !(c->cflags & C_CLOSED))
		c->flags |= GSP_F_RESET_REMOTE;
	return 0;
}

SEC("raw_tp/tcp_send_reset")
int handle_send_reset(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 key = ctx->args[0];
	__u16 reason = 0;

	/* (sk, skb, reason) since 6.10; older kernels pass no reason. */
	if (bpf_core_enum_value_exists(enum sk_rst_reason, SK_RST_REASON_NOT_SPECIFIED))
		reason = (__u16)ctx->args[2] + 1;
	struct tcp_conn *c;

	if (!key)
		return 0;
	c = bpf_map_lookup_elem(&tcp_conns, &key);
	if (!c)
		return 0;
	if (!(c->cflags & C_CLOSED)) {
		/* RST before the CLOSE transition (keepalive, out of resources, ...). */
		c->flags |= GSP_F_RESET_LOCAL;
		c->reset_reason = reason;
		return 0;
	}
	/* SO_LINGER 0, unread data, disconnect: the socket went to CLOSE just before the RST. */
	struct gsp_event *e = reserve();
	if (e) {
		e->kind = GSP_AMEND_RESET;
		e->protocol = GSP_PROTO_TCP;
		e->conn_id = c->conn_id;
		e->flags = GSP_F_RESET_LOCAL;
		e->reset_reason = reason;
		submit(e);
	}
	bpf_map_delete_elem(&tcp_conns, &key);
	return 0;
}

SEC("raw_tp/tcp_retransmit_skb")
int handle_retransmit(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	__u64 key = (__u64)sk;
	struct tcp_conn *c;
	int state;

	if (!sk)
		return 0;
	if (!ports_wanted(local_port(sk), bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport))))
		return 0;
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	c = bpf_map_lookup_elem(&tcp_conns, &key);
	if (c && (c->cflags & C_CLOSED))
		return 0;
	if (!c && (state == TCP_SYN_SENT || state == TCP_SYN_RECV))
		return 0;
	emit_tcp(sk, c, GSP_RETRANSMIT, state, 0);
	return 0;
}

SEC("raw_tp/tcp_destroy_sock")
int handle_destroy_sock(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 key = ctx->args[0];

	bpf_map_delete_elem(&tcp_conns, &key);
	return 0;
}

/* A server connection's owner is the process that first sends or receives on it. */
static __always_inline void tcp_confirm_owner(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcp_conn *c = bpf_map_lookup_elem(&tcp_conns, &key);

	if (!c || (c->cflags & (C_CONFIRMED | C_CLOSED)))
		return;
	c->cflags |= C_CONFIRMED;

	struct owner o = {};
	current_owner(&o);
	if (o.pid == c->owner.pid && o.cgroup_id == c->owner.cgroup_id)
		return;
	c->owner = o;

	struct gsp_event *e = reserve();
	if (!e)
		return;
	e->kind = GSP_AMEND_OWNER;
	e->protocol = GSP_PROTO_TCP;
	e->conn_id = c->conn_id;
	set_owner(e, &o);
	submit(e);
}

static __always_inline void udp_traffic(struct sock *sk, __u16 family, int bytes, bool sent)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct udp_key key = {};
	struct peer *p = bpf_map_lookup_elem(&peers, &tid);

	key.sk = (__u64)sk;
	if (p) {
		__builtin_memcpy(key.daddr, p->addr, sizeof(key.daddr));
		key.dport = p->port;
		bpf_map_delete_elem(&peers, &tid);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&key.daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		key.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	} else {
		BPF_CORE_READ_INTO((__u32 *)key.daddr, sk, __sk_common.skc_daddr);
		key.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	}
	if (bytes < 0)
		return;

	struct udp_flow *f = bpf_map_lookup_elem(&udp_flows, &key);
	if (!f) {
		struct udp_flow nf = {};
		current_owner(&nf.owner);
		__u16 sport = local_port(sk);
		nf.ignored = !(ports_wanted(sport, key.dport) && owner_wanted(&nf.owner));
		nf.conn_id = nf.ignored ? 0 : new_conn_id();
		nf.start_ns = bpf_ktime_get_ns();
		nf.role = sent ? GSP_ROLE_CLIENT : GSP_ROLE_SERVER;
		if (bpf_map_update_elem(&udp_flows, &key, &nf, BPF_NOEXIST)) {
			count_lost(GSP_LOST_TABLE);
			return;
		}
		f = bpf_map_lookup_elem(&udp_flows, &key);
		if (!f)
			return;

		struct udp_sock *us = bpf_map_lookup_elem(&udp_socks, &key.sk);
		if (us) {
			__sync_fetch_and_add(&us->nflows, 1);
		} else {
			struct udp_sock nus = { .nflows = 1, .first = key };
			bpf_map_update_elem(&udp_socks, &key.sk, &nus, BPF_NOEXIST);
		}

		if (!nf.ignored) {
			struct gsp_event *e = reserve();
			if (e) {
				fill_endpoints(e, sk);
				__builtin_memcpy(e->daddr, key.daddr, sizeof(e->daddr));
				e->dport = key.dport;
				e->kind = GSP_OPEN;
				e->protocol = GSP_PROTO_UDP;
				e->conn_id = nf.conn_id;
				e->start_ns = nf.start_ns;
				e->role = nf.role;
				set_owner(e, &nf.owner);
				if (sent) {
					e->bytes_sent = bytes;
					e->packets_sent = 1;
				} else {
					e->bytes_received = bytes;
					e->packets_received = 1;
				}
				submit(e);
			}
		}
	}
	if (sent) {
		__sync_fetch_and_add(&f->bytes_sent, bytes);
		__sync_fetch_and_add(&f->packets_sent, 1);
	} else {
		__sync_fetch_and_add(&f->bytes_received, bytes);
		__sync_fetch_and_add(&f->packets_received, 1);
	}
}

static __always_inline int msg_length(struct bpf_raw_tracepoint_args *ctx, bool sent)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	int ret = (int)ctx->args[1];
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 protocol;

	if (family != AF_INET && family != AF_INET6)
		return 0;
	protocol = BPF_CORE_READ(sk, sk_protocol);
	if (protocol == IPPROTO_TCP) {
		if (ret > 0)
			tcp_confirm_owner(sk);
	} else if (protocol == IPPROTO_UDP) {
		udp_traffic(sk, family, ret, sent);
	}
	return 0;
}

SEC("raw_tp/sock_send_length")
int handle_send_length(struct bpf_raw_tracepoint_args *ctx)
{
	return msg_length(ctx, true);
}

SEC("raw_tp/sock_recv_length")
int handle_recv_length(struct bpf_raw_tracepoint_args *ctx)
{
	return msg_length(ctx, false);
}

/* The address a sock_addr hook was given (4 bytes for IPv4, network order), and its port. */
static __always_inline __u16 sock_addr_peer(struct bpf_sock_addr *ctx, __u8 family, __u8 addr[16])
{
	__u32 w;

	if (family == 4) {
		w = ctx->user_ip4; __builtin_memcpy(&addr[0], &w, 4);
	} else {
		w = ctx->user_ip6[0]; __builtin_memcpy(&addr[0], &w, 4);
		w = ctx->user_ip6[1]; __builtin_memcpy(&addr[4], &w, 4);
		w = ctx->user_ip6[2]; __builtin_memcpy(&addr[8], &w, 4);
		w = ctx->user_ip6[3]; __builtin_memcpy(&addr[12], &w, 4);
	}
	return bpf_ntohs((__u16)ctx->user_port);
}

static __always_inline void stash_peer(struct bpf_sock_addr *ctx, __u8 family)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct peer p = { .family = family };

	p.port = sock_addr_peer(ctx, family, p.addr);
	bpf_map_update_elem(&peers, &tid, &p, BPF_ANY);
}

SEC("cgroup/sendmsg4")
int udp_sendmsg4(struct bpf_sock_addr *ctx)
{
	stash_peer(ctx, 4);
	return 1;
}

SEC("cgroup/sendmsg6")
int udp_sendmsg6(struct bpf_sock_addr *ctx)
{
	stash_peer(ctx, 6);
	return 1;
}

SEC("cgroup/recvmsg4")
int udp_recvmsg4(struct bpf_sock_addr *ctx)
{
	stash_peer(ctx, 4);
	return 1;
}

SEC("cgroup/recvmsg6")
int udp_recvmsg6(struct bpf_sock_addr *ctx)
{
	stash_peer(ctx, 6);
	return 1;
}

SEC("cgroup/sock_release")
int sock_release(struct bpf_sock *ctx)
{
	if (ctx->protocol != IPPROTO_UDP)
		return 1;

	__u64 skp = (__u64)ctx;
	struct udp_sock *us = bpf_map_lookup_elem(&udp_socks, &skp);
	if (!us)
		return 1;

	if (us->nflows == 1) {
		struct udp_key key = us->first;
		struct udp_flow *f = bpf_map_lookup_elem(&udp_flows, &key);
		if (f && !f->ignored) {
			struct gsp_event *e = reserve();
			if (e) {
				e->kind = GSP_CLOSE;
				e->protocol = GSP_PROTO_UDP;
				e->conn_id = f->conn_id;
				e->start_ns = f->start_ns;
				e->sk = skp;
				e->role = f->role;
				e->bytes_sent = f->bytes_sent;
				e->bytes_received = f->bytes_received;
				e->packets_sent = f->packets_sent;
				e->packets_received = f->packets_received;
				set_owner(e, &f->owner);
				submit(e);
			}
		}
		bpf_map_delete_elem(&udp_flows, &key);
	} else {
		/* Several peers (a server socket): user space ends each flow from the map. */
		struct gsp_event *e = reserve();
		if (e) {
			e->kind = GSP_UDP_RELEASE;
			e->protocol = GSP_PROTO_UDP;
			e->sk = skp;
			submit(e);
		}
	}
	bpf_map_delete_elem(&udp_socks, &skp);
	return 1;
}

static __always_inline void connect_begin(struct bpf_sock_addr *ctx, __u8 family)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct connect_call cc = { .family = family };
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return;
	cc.protocol = sk->protocol;
	if (cc.protocol != IPPROTO_TCP && cc.protocol != IPPROTO_UDP)
		return;
	cc.sk = (__u64)sk;
	cc.start_ns = bpf_ktime_get_ns();
	cc.dport = sock_addr_peer(ctx, family, cc.daddr);
	bpf_map_update_elem(&connects, &tid, &cc, BPF_ANY);
}

SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx)
{
	connect_begin(ctx, 4);
	return 1;
}

SEC("cgroup/connect6")
int connect6(struct bpf_sock_addr *ctx)
{
	connect_begin(ctx, 6);
	return 1;
}

/* The format of syscalls:sys_exit_connect (see its `format` file in tracefs). */
struct sys_exit_connect_args {
	__u64 _common;
	__s32 syscall_nr;
	__s32 _pad;
	__s64 ret;
};

#define EALREADY 114
#define EINPROGRESS 115
#define EISCONN 106

SEC("tracepoint/syscalls/sys_exit_connect")
int handle_exit_connect(struct sys_exit_connect_args *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct connect_call *p = bpf_map_lookup_elem(&connects, &tid);
	struct connect_call cc;
	__s64 ret = ctx->ret;

	if (!p)
		return 0;
	cc = *p;
	bpf_map_delete_elem(&connects, &tid);
	if (ret >= 0 || ret == -EINPROGRESS || ret == -EALREADY || ret == -EISCONN || ret < -4095)
		return 0;

	if (cc.conn_id) {
		/* The attempt reached SYN_SENT, and its FAILED row is out already: amend its errno
		 * if the socket had none to give. */
		if (!cc.need_errno)
			return 0;
		struct gsp_event *e = reserve();
		if (!e)
			return 0;
		e->kind = GSP_AMEND_ERROR;
		e->protocol = GSP_PROTO_TCP;
		e->conn_id = cc.conn_id;
		e->error = (__u16)-ret;
		submit(e);
		return 0;
	}

	/* Refused before the socket changed state: no route, a cgroup or LSM veto, no local
	 * address. One FAILED event, endpoints from the socket and the connect() address. */
	struct sock *sk = (struct sock *)cc.sk;
	struct owner o = {};
	__u16 sport = local_port(sk);

	current_owner(&o);
	if (!owner_wanted(&o) || !ports_wanted(sport, cc.dport))
		return 0;
	struct gsp_event *e = reserve();
	if (!e)
		return 0;
	e->kind = GSP_FAILED;
	e->protocol = cc.protocol == IPPROTO_TCP ? GSP_PROTO_TCP : GSP_PROTO_UDP;
	e->role = GSP_ROLE_CLIENT;
	e->conn_id = new_conn_id();
	e->start_ns = cc.start_ns;
	e->sk = cc.sk;
	e->family = cc.family;
	e->sport = sport;
	e->dport = cc.dport;
	if (cc.family == 6)
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	else
		BPF_CORE_READ_INTO((__u32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
	__builtin_memcpy(e->daddr, cc.daddr, sizeof(e->daddr));
	e->state = TCP_CLOSE;
	e->error = (__u16)-ret;
	set_owner(e, &o);
	submit(e);
	return 0;
}
