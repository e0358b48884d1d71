/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Writing events: ring-buffer reserve (every failure counted per CPU) and submit, connection
 * ids, and filling a struct gsp_event from a socket or an owner.
 */
#ifndef GESPANN_EMIT_H
#define GESPANN_EMIT_H

#include "types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "gespann.h"
#include "maps.h"
#include "sock.h"

/* Wake the reader when this much is waiting (0: on every event). User space drains on a short
 * timer anyway; a wakeup per event would cost a context switch per event. */
const volatile __u64 wakeup_bytes = 0;

__u64 next_conn_id = 0;

static __always_inline __u64 new_conn_id(void)
{
	return __sync_fetch_and_add(&next_conn_id, 1) + 1;
}

/* A zeroed event stamped `now` (the program's one clock read), or NULL if the ring is full
 * (counted). */
static __always_inline struct gsp_event *reserve(__u64 now)
{
	struct gsp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_lost(GSP_LOST_RINGBUF);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = now;
	return e;
}

/* Submits without waking the reader, except for the one record that takes the waiting data
 * to `wakeup_bytes` or over: user space drains on a short timer, and past the threshold it is
 * awake already. The waiting data counts this record (reserved, with its 8-byte header). */
static __always_inline void submit(struct gsp_event *e)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (avail >= wakeup_bytes && avail < wakeup_bytes + sizeof(*e) + 8)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

static __always_inline void set_owner(struct gsp_event *e, const struct owner *o)
{
	e->pid = o->pid;
	e->cgroup_id = o->cgroup_id;
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
}

static __always_inline void fill_endpoints(struct gsp_event *e, const struct sock *sk, __u16 sport)
{
	bool v6 = sk_is_v6(sk);

	e->sk = (__u64)sk;
	e->sport = sport;
	e->dport = remote_port(sk);
	e->family = v6 ? 6 : 4;
	e->netns = sk_netns(sk);
	sk_addrs(sk, v6, &e->saddr, &e->daddr);
}

static __always_inline void fill_tcp_counters(struct gsp_event *e, const struct tcp_sock *tp)
{
	e->bytes_sent = tp->bytes_acked;
	e->bytes_received = tp->bytes_received;
	e->packets_sent = tp->data_segs_out;
	e->packets_received = tp->data_segs_in;
	e->retransmits = tp->total_retrans;
	e->rtt_us = tp->srtt_us >> 3;
	e->flags |= GSP_F_HAS_RTT;
}

/* An event about a TCP connection, with endpoints and counters read from the socket; `c` is
 * its table entry, NULL for a socket the kernel side does not track (GSP_F_UNTRACKED). */
static __always_inline void emit_tcp(const struct sock *sk, const struct tcp_sock *tp, struct tcp_conn *c,
				     __u8 kind, __u8 state, __u8 prev_state, __u64 now)
{
	struct gsp_event *e = reserve(now);

	if (!e)
		return;
	fill_endpoints(e, sk, tcp_local_port(tp));
	fill_tcp_counters(e, tp);
	e->kind = kind;
	e->protocol = GSP_PROTO_TCP;
	e->state = state;
	e->prev_state = prev_state;
	e->fin_rcvd = (sk->__sk_common.skc_flags >> SOCK_DONE) & 1;
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
		e->error = sk->sk_err;
	submit(e);
}

#endif /* GESPANN_EMIT_H */
