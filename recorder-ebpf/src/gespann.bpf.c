// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * Gespann's kernel side: TCP connection and UDP flow lifecycle from tracepoints.
 *
 * Attached as BTF-typed raw tracepoints (tp_btf): the same kernel tracepoints as `perf list`
 * shows, without the cost of formatting a trace record for every call, and with arguments the
 * verifier knows the types of, so socket fields are plain (CO-RE relocated) loads instead of a
 * bpf_probe_read_kernel call each. tp_btf needs no trampoline: it attaches like a raw
 * tracepoint.
 *
 * Shape (after libbpf-tools tcplife.bpf.c): per-socket state in hash maps keyed by the socket
 * pointer and deleted on every close path (maps.h says why not socket-local storage);
 * counters are read from tcp_sock at state changes rather than one event per send; filters
 * are read-only globals set by user space before load; every ring-buffer reserve failure is
 * counted per CPU.
 *
 * This file holds only the entry points; the logic is in `static __always_inline` helpers, one
 * header per concern: maps.h (state), filters.h, sock.h (reading sockets), emit.h (events),
 * tcp.h, udp.h, connect.h.
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
#include "gespann.h"
#include "maps.h"
#include "filters.h"
#include "sock.h"
#include "emit.h"
#include "tcp.h"
#include "udp.h"
#include "connect.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/inet_sock_set_state")
int handle_set_state(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	int oldstate = (int)ctx[1];
	int newstate = (int)ctx[2];
	const struct tcp_sock *tp;

	/* Half of a connection's transitions (SYN_RECV, FIN_WAIT*, CLOSE_WAIT, LAST_ACK) carry
	 * nothing Gespann records: leave before reading anything. */
	if (newstate != TCP_SYN_SENT && newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE &&
	    newstate != TCP_LISTEN)
		return 0;
	if (!sk || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	tcp_set_state(sk, tp, oldstate, newstate);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int handle_receive_reset(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];

	if (sk)
		tcp_reset_received(sk);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int handle_send_reset(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	__u16 reason = 0;

	/* (sk, skb, reason) since 6.10; older kernels pass no reason. sk is NULL for an RST
	 * answering a segment no socket wanted. */
	if (!sk)
		return 0;
	if (bpf_core_enum_value_exists(enum sk_rst_reason, SK_RST_REASON_NOT_SPECIFIED))
		reason = (__u16)ctx[2] + 1;
	tcp_reset_sent(sk, reason);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int handle_retransmit(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	const struct tcp_sock *tp;

	if (!sk)
		return 0;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (tp)
		tcp_retransmit(sk, tp);
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int handle_destroy_sock(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];

	if (sk)
		conn_forget(sk);
	return 0;
}

SEC("tp_btf/sock_send_length")
int handle_send_length(__u64 *ctx)
{
	return msg_length((const struct sock *)ctx[0], (int)ctx[1], true);
}

SEC("tp_btf/sock_recv_length")
int handle_recv_length(__u64 *ctx)
{
	return msg_length((const struct sock *)ctx[0], (int)ctx[1], false);
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
	if (ctx->protocol == IPPROTO_UDP)
		udp_release(ctx);
	return 1;
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

SEC("tracepoint/syscalls/sys_exit_connect")
int handle_exit_connect(struct sys_exit_connect_args *ctx)
{
	connect_end(ctx->ret);
	return 0;
}
