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

/*
 * Sockets the tp_btf programs get are BTF pointers: the verifier knows their type, so fields
 * are plain loads (CO-RE relocated), with no bpf_probe_read_kernel call per field. Fields past
 * struct sock (inet_sport, the tcp_sock counters) are reached through bpf_skc_to_tcp_sock.
 * Pointers kept in a map (connect_end's) are not BTF pointers: the *_probe helpers read those.
 */

/* The local port. Not skc_num: tcp_set_state(TCP_CLOSE) releases the port (and zeroes
 * skc_num) before the tracepoint fires, while inet_sport keeps it. */
static __always_inline __u16 tcp_local_port(const struct tcp_sock *tp)
{
	return bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
}

/* The local port of any inet socket (a UDP one has no cast helper: read it). */
static __always_inline __u16 local_port_probe(const struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

static __always_inline __u16 remote_port(const struct sock *sk)
{
	return bpf_ntohs(sk->__sk_common.skc_dport);
}

static __always_inline __u16 remote_port_probe(const struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

/* The inode number of the socket's network namespace: what `ls -l /proc/PID/ns/net` shows. */
static __always_inline __u32 sk_netns(const struct sock *sk)
{
	return sk->__sk_common.skc_net.net->ns.inum;
}

static __always_inline __u32 sk_netns_probe(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline bool sk_is_v6(const struct sock *sk)
{
	return sk->__sk_common.skc_family == AF_INET6;
}

static __always_inline void copy_in6(__u8 (*dst)[16], const struct in6_addr *a)
{
	__u32 w[4] = { a->in6_u.u6_addr32[0], a->in6_u.u6_addr32[1], a->in6_u.u6_addr32[2],
		       a->in6_u.u6_addr32[3] };

	__builtin_memcpy(dst, w, sizeof(w));
}

/* The socket's local and/or remote address (either may be NULL) as struct gsp_event holds
 * them: all 16 bytes of the IPv6 fields when `v6`, else the 4 bytes of the IPv4 ones, network
 * order. */
static __always_inline void sk_addrs(const struct sock *sk, bool v6, __u8 (*saddr)[16], __u8 (*daddr)[16])
{
	if (v6) {
		if (saddr)
			copy_in6(saddr, &sk->__sk_common.skc_v6_rcv_saddr);
		if (daddr)
			copy_in6(daddr, &sk->__sk_common.skc_v6_daddr);
	} else {
		__u32 w;

		if (saddr) {
			w = sk->__sk_common.skc_rcv_saddr;
			__builtin_memcpy(saddr, &w, 4);
		}
		if (daddr) {
			w = sk->__sk_common.skc_daddr;
			__builtin_memcpy(daddr, &w, 4);
		}
	}
}

static __always_inline void sk_addrs_probe(const struct sock *sk, bool v6, __u8 (*saddr)[16], __u8 (*daddr)[16])
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

static __always_inline bool v4_mapped(const __u8 a[16])
{
	__u32 w[3];

	__builtin_memcpy(w, a, sizeof(w));
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

/* An IPv4 address in the mapped form an IPv6 socket holds: ::ffff:a.b.c.d. */
static __always_inline void map_v4(__u8 addr[16], __u32 v4)
{
	__u32 w[4] = { 0, 0, bpf_htonl(0xffff), v4 };

	__builtin_memcpy(addr, w, sizeof(w));
}

/* An IPv6 socket talking to an IPv4 peer (mapped) from an unspecified local address (::, not
 * bound or not connected): the local address in the same form, 0.0.0.0 mapped, so that user
 * space records the flow as IPv4 at both ends. */
static __always_inline void local_like_peer(__u8 saddr[16], const __u8 daddr[16])
{
	__u32 w[4];

	__builtin_memcpy(w, saddr, sizeof(w));
	if (v4_mapped(daddr) && !(w[0] | w[1] | w[2] | w[3]))
		map_v4(saddr, 0);
}

/* The address a sock_addr hook was given, in the form its socket holds addresses: 4 bytes for
 * an AF_INET socket, 16 for AF_INET6. An IPv6 socket can run the IPv4 hooks (a sendmsg to
 * ::ffff:a.b.c.d or to an AF_INET address takes the kernel's IPv4 path), while its replies come
 * through the IPv6 hooks in the mapped form: that form is the one kept, so that both directions
 * make one flow. Returns the form's family (4 or 6); `*port` gets the port, host order. */
static __always_inline __u8 sock_addr_peer(struct bpf_sock_addr *ctx, __u8 hook_family, __u8 addr[16],
					   __u16 *port)
{
	__u32 w;

	*port = bpf_ntohs((__u16)ctx->user_port);
	if (hook_family == 6) {
		w = ctx->user_ip6[0]; __builtin_memcpy(&addr[0], &w, 4);
		w = ctx->user_ip6[1]; __builtin_memcpy(&addr[4], &w, 4);
		w = ctx->user_ip6[2]; __builtin_memcpy(&addr[8], &w, 4);
		w = ctx->user_ip6[3]; __builtin_memcpy(&addr[12], &w, 4);
		return 6;
	}
	w = ctx->user_ip4;
	if (ctx->family == AF_INET6) {
		map_v4(addr, w);
		return 6;
	}
	__builtin_memcpy(&addr[0], &w, 4);
	return 4;
}

/* The owner is the process (thread group), named after its main thread: a server's worker
 * threads often carry names of their own. From tp_btf programs: the task is a BTF pointer. */
static __always_inline void current_owner(struct owner *o)
{
	struct task_struct *task = bpf_get_current_task_btf();

	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->cgroup_id = bpf_get_current_cgroup_id();
	__builtin_memcpy(o->comm, task->group_leader->comm, sizeof(o->comm));
	o->comm[sizeof(o->comm) - 1] = 0;
}

/* The same from a program that has no BTF task pointer (a classic tracepoint). */
static __always_inline void current_owner_probe(struct owner *o)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->cgroup_id = bpf_get_current_cgroup_id();
	if (BPF_CORE_READ_STR_INTO(&o->comm, task, group_leader, comm) <= 0)
		bpf_get_current_comm(o->comm, sizeof(o->comm));
}

#endif /* GESPANN_SOCK_H */
