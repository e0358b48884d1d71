/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * connect() failures the socket's states do not show: refused before any SYN (no route, a
 * cgroup or LSM veto, no free local port). cgroup/connect{4,6} note the call per thread;
 * syscalls:sys_exit_connect sees connect()'s own errno.
 */
#ifndef GESPANN_CONNECT_H
#define GESPANN_CONNECT_H

#include "types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "gespann.h"
#include "maps.h"
#include "filters.h"
#include "sock.h"
#include "emit.h"

/* The format of syscalls:sys_exit_connect (see its `format` file in tracefs). */
struct sys_exit_connect_args {
	__u64 _common;
	__s32 syscall_nr;
	__s32 _pad;
	__s64 ret;
};

static __always_inline void connect_begin(struct bpf_sock_addr *ctx, __u8 family)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct connect_call cc = {};
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return;
	cc.protocol = sk->protocol;
	if (cc.protocol != IPPROTO_TCP && cc.protocol != IPPROTO_UDP)
		return;
	cc.sk = (__u64)sk;
	cc.start_ns = bpf_ktime_get_ns();
	cc.family = sock_addr_peer(ctx, family, cc.daddr, &cc.dport);
	bpf_map_update_elem(&connects, &tid, &cc, BPF_ANY);
}

static __always_inline void connect_end(__s64 ret)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct connect_call *p = bpf_map_lookup_elem(&connects, &tid);
	struct connect_call cc;

	if (!p)
		return;
	cc = *p;
	bpf_map_delete_elem(&connects, &tid);
	if (ret >= 0 || ret == -EINPROGRESS || ret == -EALREADY || ret == -EISCONN || ret < -4095)
		return;

	if (cc.conn_id) {
		/* The attempt reached SYN_SENT, and its FAILED row is out already: amend its errno
		 * if the socket had none to give. */
		if (!cc.need_errno)
			return;
		struct gsp_event *e = reserve(bpf_ktime_get_ns());
		if (!e)
			return;
		e->kind = GSP_AMEND_ERROR;
		e->protocol = GSP_PROTO_TCP;
		e->conn_id = cc.conn_id;
		e->error = (__u16)-ret;
		submit(e);
		return;
	}

	/* Refused before the socket changed state: no route, a cgroup or LSM veto, no local
	 * address. One FAILED event, endpoints from the socket and the connect() address. */
	struct sock *sk = (struct sock *)cc.sk;
	struct owner o = {};
	__u16 sport = local_port_probe(sk);

	__u32 netns = sk_netns_probe(sk);

	current_owner_probe(&o);
	if (!owner_wanted(&o) || !ports_wanted(sport, cc.dport) || !netns_wanted(netns))
		return;
	struct gsp_event *e = reserve(bpf_ktime_get_ns());
	if (!e)
		return;
	e->kind = GSP_FAILED;
	e->protocol = cc.protocol == IPPROTO_TCP ? GSP_PROTO_TCP : GSP_PROTO_UDP;
	e->role = GSP_ROLE_CLIENT;
	e->conn_id = new_conn_id();
	e->start_ns = cc.start_ns;
	e->sk = cc.sk;
	e->family = cc.family;
	e->netns = netns;
	e->sport = sport;
	e->dport = cc.dport;
	sk_addrs_probe(sk, cc.family == 6, &e->saddr, NULL);
	__builtin_memcpy(e->daddr, cc.daddr, sizeof(e->daddr));
	if (cc.family == 6)
		local_like_peer(e->saddr, e->daddr);
	e->state = TCP_CLOSE;
	e->error = (__u16)-ret;
	set_owner(e, &o);
	submit(e);
}

#endif /* GESPANN_CONNECT_H */
