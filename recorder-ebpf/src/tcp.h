/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * TCP: a connection's life from sock:inet_sock_set_state (SYN_SENT in process context: the
 * owner; ESTABLISHED: open; CLOSE: close/reset/failed; LISTEN: the listener's owner), the reset
 * and retransmit tracepoints, and the accepting process learnt at its first send/recv.
 */
#ifndef GESPANN_TCP_H
#define GESPANN_TCP_H

#include "types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "gespann.h"
#include "maps.h"
#include "filters.h"
#include "sock.h"
#include "emit.h"

static __always_inline bool tcp_wanted(const struct sock *sk, const struct tcp_sock *tp, const struct owner *o)
{
	__u16 sport = tcp_local_port(tp);
	__u16 dport = remote_port(sk);

	return ports_wanted(sport, dport) && owner_wanted(o) && netns_wanted(sk_netns(sk));
}

/* The socket's endpoints as struct tcp_tuple holds them (IPv6 form). */
static __always_inline void sk_tuple(const struct sock *sk, const struct tcp_sock *tp, struct tcp_tuple *t)
{
	if (sk_is_v6(sk)) {
		sk_addrs(sk, true, &t->saddr, &t->daddr);
	} else {
		__u8 s[16] = {}, d[16] = {};
		__u32 w;

		sk_addrs(sk, false, &s, &d);
		__builtin_memcpy(&w, s, 4);
		map_v4(t->saddr, w);
		__builtin_memcpy(&w, d, 4);
		map_v4(t->daddr, w);
	}
	t->sport = tcp_local_port(tp);
	t->dport = remote_port(sk);
	t->netns = sk_netns(sk);
}

/* The `listeners` key of a socket's local endpoint; `wildcard`: with the unspecified address. */
static __always_inline void sk_listener_key(const struct sock *sk, __u16 port, bool wildcard, struct listener_key *k)
{
	bool v6 = sk_is_v6(sk);

	k->netns = sk_netns(sk);
	k->port = port;
	k->family = v6 ? 6 : 4;
	if (!wildcard)
		sk_addrs(sk, v6, &k->addr, NULL);
}

/* The listener an accepted connection came through: the one bound to its local address in its
 * namespace, or else the wildcard one there. */
static __always_inline struct listener *listener_of(const struct sock *sk, __u16 port)
{
	struct listener_key k = {};
	struct listener *l;

	sk_listener_key(sk, port, false, &k);
	l = bpf_map_lookup_elem(&listeners, &k);
	if (l)
		return l;
	__builtin_memset(&k.addr, 0, sizeof(k.addr));
	return bpf_map_lookup_elem(&listeners, &k);
}

/* listen(): the listener's owner, unless its address has one already (SO_REUSEPORT). */
static __always_inline void listener_add(const struct sock *sk, const struct tcp_sock *tp)
{
	struct listener_key k = {};
	struct listener nl = {}, *l;

	sk_listener_key(sk, tcp_local_port(tp), false, &k);
	l = bpf_map_lookup_elem(&listeners, &k);
	if (l) {
		__sync_fetch_and_add(&l->sockets, 1);
		return;
	}
	current_owner(&nl.owner);
	nl.sockets = 1;
	bpf_map_update_elem(&listeners, &k, &nl, BPF_NOEXIST);
}

static __always_inline void listener_remove(const struct sock *sk, const struct tcp_sock *tp)
{
	struct listener_key k = {};
	struct listener *l;

	sk_listener_key(sk, tcp_local_port(tp), false, &k);
	l = bpf_map_lookup_elem(&listeners, &k);
	if (!l)
		return;
	if (l->sockets <= 1) {
		bpf_map_delete_elem(&listeners, &k);
		return;
	}
	__sync_fetch_and_add(&l->sockets, -1);
}

/* Whether an event about an untracked TCP socket (no tcp_conns entry: older than the recording,
 * or left out by the owner filters) goes to user space. Without owner filters, always: user
 * space matches it by its endpoints. With them, only for a connection user space listed in
 * wanted_preexisting, once that list is complete. `ends`: the connection ends here, so its entry
 * goes. */
static __always_inline bool untracked_wanted(const struct sock *sk, const struct tcp_sock *tp, bool ends)
{
	struct tcp_tuple t = {};
	__u32 zero = 0;
	__u32 *ready;

	if (!netns_wanted(sk_netns(sk)))
		return false;
	if (!owner_filters_on())
		return true;
	ready = bpf_map_lookup_elem(&preexisting_ready, &zero);
	if (!ready || !*ready)
		return true;
	sk_tuple(sk, tp, &t);
	if (!bpf_map_lookup_elem(&wanted_preexisting, &t))
		return false;
	if (ends)
		bpf_map_delete_elem(&wanted_preexisting, &t);
	return true;
}

static __always_inline void tcp_to_established(const struct sock *sk, const struct tcp_sock *tp, int oldstate)
{
	__u64 now = bpf_ktime_get_ns();
	struct tcp_conn *c;

	if (oldstate == TCP_SYN_SENT) {
		c = conn_of(sk);
		if (!c)
			return;
		c->handshake_us = (now - c->start_ns) / 1000;
		if (!tcp_wanted(sk, tp, &c->owner)) {
			conn_forget(sk);
			return;
		}
		emit_tcp(sk, tp, c, GSP_OPEN, TCP_ESTABLISHED, oldstate, now);
		return;
	}
	if (oldstate != TCP_SYN_RECV)
		return;

	/* Passive open, in softirq: `current` is whoever happened to be on the CPU. The owner is
	 * the listener's until the accepting process first sends or receives on the socket. */
	struct listener *l = listener_of(sk, sk->__sk_common.skc_num);
	struct tcp_conn nc = {};

	if (l)
		nc.owner = l->owner;
	if (!tcp_wanted(sk, tp, &nc.owner))
		return;
	nc.conn_id = new_conn_id();
	nc.start_ns = now;
	nc.role = GSP_ROLE_SERVER;
	/* The server's side of the handshake, SYN-ACK sent to ACK received: the kernel takes
	 * it as the connection's first RTT sample just before this transition. */
	nc.handshake_us = tp->srtt_us >> 3;
	if (!conn_put(sk, &nc))
		return;
	emit_tcp(sk, tp, &nc, GSP_OPEN, TCP_ESTABLISHED, oldstate, now);
}

static __always_inline void tcp_to_close(const struct sock *sk, const struct tcp_sock *tp, int oldstate)
{
	struct tcp_conn *c = conn_of(sk);

	if (c && (c->cflags & C_CLOSED))
		return;
	if (!c) {
		/* A connection that predates the recording (user space matches it by its
		 * endpoints), or one the owner filters left out. Half-open children (SYN_RECV)
		 * and listeners are not connections. */
		if (oldstate == TCP_SYN_RECV || oldstate == TCP_LISTEN || oldstate == TCP_SYN_SENT)
			return;
		if (!ports_wanted(tcp_local_port(tp), remote_port(sk)) || !untracked_wanted(sk, tp, true))
			return;
		emit_tcp(sk, tp, NULL, GSP_CLOSE, TCP_CLOSE, oldstate, bpf_ktime_get_ns());
		return;
	}

	__u8 kind;
	if (oldstate == TCP_SYN_SENT) {
		/* Attempts are tracked from connect(), before the source port exists: the port
		 * filter applies now. */
		if (!ports_wanted(tcp_local_port(tp), remote_port(sk))) {
			conn_forget(sk);
			return;
		}
		kind = GSP_FAILED;
		/* No sk_err: connect() itself failed after SYN_SENT (no free local port), in
		 * process context; its return value will supply the errno. */
		if (connect_errors && !sk->sk_err) {
			__u64 tid = bpf_get_current_pid_tgid();
			struct connect_call *cc = bpf_map_lookup_elem(&connects, &tid);
			if (cc && cc->sk == (__u64)sk)
				cc->need_errno = 1;
		}
	} else if (c->flags & (GSP_F_RESET_LOCAL | GSP_F_RESET_REMOTE))
		kind = GSP_RESET;
	else
		kind = GSP_CLOSE;
	emit_tcp(sk, tp, c, kind, TCP_CLOSE, oldstate, bpf_ktime_get_ns());

	/* After an orderly-looking CLOSE, a local RST may still follow (SO_LINGER 0, unread data,
	 * disconnect: the kernel moves to CLOSE first): keep the entry until the socket is
	 * destroyed so tcp_send_reset can amend the row. */
	if (kind == GSP_CLOSE)
		c->cflags |= C_CLOSED;
	else
		conn_forget(sk);
}

/* A state change of a TCP socket (sk_protocol checked by the caller). */
static __always_inline void tcp_set_state(const struct sock *sk, const struct tcp_sock *tp, int oldstate,
					  int newstate)
{
	switch (newstate) {
	case TCP_SYN_SENT: {
		/* connect(): process context, so `current` owns the socket. Ports are checked at
		 * open, since the source port is chosen after this transition. */
		struct tcp_conn c = {};
		current_owner(&c.owner);
		if (!owner_wanted(&c.owner) || !netns_wanted(sk_netns(sk)))
			return;
		c.conn_id = new_conn_id();
		c.start_ns = bpf_ktime_get_ns();
		c.role = GSP_ROLE_CLIENT;
		c.cflags = C_CONFIRMED;
		/* A socket reused for a new connect starts afresh. */
		if (!conn_put(sk, &c))
			break;
		if (connect_errors) {
			__u64 tid = bpf_get_current_pid_tgid();
			struct connect_call *cc = bpf_map_lookup_elem(&connects, &tid);
			if (cc && cc->sk == (__u64)sk)
				cc->conn_id = c.conn_id;
		}
		break;
	}
	case TCP_ESTABLISHED:
		tcp_to_established(sk, tp, oldstate);
		break;
	case TCP_CLOSE:
		if (oldstate == TCP_LISTEN) {
			listener_remove(sk, tp);
			break;
		}
		tcp_to_close(sk, tp, oldstate);
		break;
	case TCP_LISTEN:
		listener_add(sk, tp);
		break;
	}
}

/* An RST received: the connection ends as a reset by the remote at its CLOSE. */
static __always_inline void tcp_reset_received(const struct sock *sk)
{
	struct tcp_conn *c = conn_of(sk);

	if (c && !(c->cflags & C_CLOSED))
		c->flags |= GSP_F_RESET_REMOTE;
}

/* An RST sent, with the kernel's reason + 1 (0: none given). */
static __always_inline void tcp_reset_sent(const struct sock *sk, __u16 reason)
{
	struct tcp_conn *c = conn_of(sk);

	if (!c)
		return;
	if (!(c->cflags & C_CLOSED)) {
		/* RST before the CLOSE transition (keepalive, out of resources, ...). */
		c->flags |= GSP_F_RESET_LOCAL;
		c->reset_reason = reason;
		return;
	}
	/* SO_LINGER 0, unread data, disconnect: the socket went to CLOSE just before the RST. */
	struct gsp_event *e = reserve(bpf_ktime_get_ns());
	if (e) {
		e->kind = GSP_AMEND_RESET;
		e->protocol = GSP_PROTO_TCP;
		e->conn_id = c->conn_id;
		e->flags = GSP_F_RESET_LOCAL;
		e->reset_reason = reason;
		submit(e);
	}
	conn_forget(sk);
}

static __always_inline void tcp_retransmit(const struct sock *sk, const struct tcp_sock *tp)
{
	struct tcp_conn *c;
	int state;

	if (!ports_wanted(tcp_local_port(tp), remote_port(sk)))
		return;
	state = sk->__sk_common.skc_state;
	c = conn_of(sk);
	if (c && (c->cflags & C_CLOSED))
		return;
	if (!c && (state == TCP_SYN_SENT || state == TCP_SYN_RECV || !untracked_wanted(sk, tp, false)))
		return;
	emit_tcp(sk, tp, c, GSP_RETRANSMIT, state, 0, bpf_ktime_get_ns());
}

/* A server connection's owner is the process that first sends or receives on it. */
static __always_inline void tcp_confirm_owner(const struct sock *sk)
{
	struct tcp_conn *c = conn_of(sk);

	if (!c || (c->cflags & (C_CONFIRMED | C_CLOSED)))
		return;
	c->cflags |= C_CONFIRMED;

	struct owner o = {};
	current_owner(&o);
	if (o.pid == c->owner.pid && o.cgroup_id == c->owner.cgroup_id)
		return;
	c->owner = o;

	struct gsp_event *e = reserve(bpf_ktime_get_ns());
	if (!e)
		return;
	e->kind = GSP_AMEND_OWNER;
	e->protocol = GSP_PROTO_TCP;
	e->conn_id = c->conn_id;
	set_owner(e, &o);
	submit(e);
}

#endif /* GESPANN_TCP_H */
