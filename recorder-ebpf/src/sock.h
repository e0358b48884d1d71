/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Reading sockets (with CO-RE), sock_addr hook contexts and the current task: ports,
 * addresses, owners.
 */
#ifndef GESPANN_SOCK_H
#define GESPANN_SOCK_H

#include "types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "gespann.h"

/* The local port. Not skc_num: tcp_set_state(TCP_CLOSE) releases the port (and zeroes
 * skc_num) before the tracepoint fires, while inet_sport keeps it. */
static __always_inline __u16 local_port(struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

static __always_inline __u16 remote_port(struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

static __always_inline bool sk_is_v6(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET6;
}

/* The socket's local and/or remote address (either may be NULL) as struct gsp_event holds
 * them: all 16 bytes of the IPv6 fields when `v6`, else the 4 bytes of the IPv4 ones, network
 * order. */
static __always_inline void sk_addrs(struct sock *sk, bool v6, __u8 (*saddr)[16], __u8 (*daddr)[16])
{
	if (v6) {
		if (saddr)
			BPF_CORE_READ_INTO(saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		if (daddr)
			BPF_CORE_READ_INTO(daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		if (saddr)
			BPF_CORE_READ_INTO((__u32 *)saddr, sk, __sk_common.skc_rcv_saddr);
		if (daddr)
			BPF_CORE_READ_INTO((__u32 *)daddr, sk, __sk_common.skc_daddr);
	}
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

#endif /* GESPANN_SOCK_H */
