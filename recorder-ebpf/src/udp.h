/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * UDP: a flow is a socket and one remote endpoint. Its counters are aggregated here from
 * sock:sock_{send,recv}_length; the peer of an unconnected sendto/recvfrom comes from the cgroup
 * {send,recv}msg hooks, which run on the same thread just before; cgroup/sock_release ends the
 * socket's flows.
 */
#ifndef GESPANN_UDP_H
#define GESPANN_UDP_H

#include "types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "gespann.h"
#include "maps.h"
#include "filters.h"
#include "sock.h"
#include "emit.h"
#include "tcp.h"

/* Counts a new flow on its socket's entry, made at the socket's first flow. False when the
 * table has no room for the socket. */
static __always_inline bool udp_sock_add_flow(const struct udp_key *key)
{
	struct udp_sock *us = bpf_map_lookup_elem(&udp_socks, &key->sk);

	if (!us) {
		struct udp_sock nus = { .nflows = 1, .first = *key };
		if (!bpf_map_update_elem(&udp_socks, &key->sk, &nus, BPF_NOEXIST))
			return true;
		/* Another CPU may have entered the socket just now: count the flow there. */
		us = bpf_map_lookup_elem(&udp_socks, &key->sk);
		if (!us)
			return false;
	}
	__sync_fetch_and_add(&us->nflows, 1);
	return true;
}

static __always_inline void udp_traffic(const struct sock *sk, __u16 family, int bytes, bool sent)
{
	struct udp_key key = {};
	struct peer *p = bpf_task_storage_get(&peers, bpf_get_current_task_btf(), 0, 0);

	key.sk = (__u64)sk;
	if (p && p->family) {
		__builtin_memcpy(key.daddr, p->addr, sizeof(key.daddr));
		key.dport = p->port;
		p->family = 0;
	} else {
		sk_addrs(sk, family == AF_INET6, NULL, &key.daddr);
		key.dport = remote_port(sk);
	}
	if (bytes < 0)
		return;

	struct udp_flow *f = bpf_map_lookup_elem(&udp_flows, &key);
	if (!f) {
		struct udp_flow nf = {};
		current_owner(&nf.owner);
		__u16 sport = local_port_probe(sk);
		nf.netns = sk_netns(sk);
		nf.ignored = !(ports_wanted(sport, key.dport) && owner_wanted(&nf.owner) && netns_wanted(nf.netns));
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

		if (!udp_sock_add_flow(&key)) {
			/* No room for the socket: sock_release would never end the flow. */
			bpf_map_delete_elem(&udp_flows, &key);
			count_lost(GSP_LOST_TABLE);
			return;
		}

		if (!nf.ignored) {
			struct gsp_event *e = reserve(nf.start_ns);
			if (e) {
				fill_endpoints(e, sk, sport);
				__builtin_memcpy(e->daddr, key.daddr, sizeof(e->daddr));
				if (e->family == 6)
					local_like_peer(e->saddr, e->daddr);
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

/* sock:sock_{send,recv}_length (sk, ret, flags): UDP flow counters, and for TCP the accepting
 * process of a server connection. */
static __always_inline int msg_length(const struct sock *sk, int ret, bool sent)
{
	__u16 family, protocol;

	if (!sk)
		return 0;
	family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	protocol = sk->sk_protocol;
	if (protocol == IPPROTO_TCP) {
		if (ret > 0)
			tcp_confirm_owner(sk);
	} else if (protocol == IPPROTO_UDP) {
		udp_traffic(sk, family, ret, sent);
	}
	return 0;
}

/* Leaves the peer of an unconnected sendmsg/recvmsg for the tracepoint that follows. */
static __always_inline void stash_peer(struct bpf_sock_addr *ctx, __u8 family)
{
	struct peer *p = bpf_task_storage_get(&peers, bpf_get_current_task_btf(), 0,
					      BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!p) {
		count_lost(GSP_LOST_TABLE);
		return;
	}
	p->family = sock_addr_peer(ctx, family, p->addr, &p->port);
}

/* A UDP socket released: its one flow ends here; several (a server socket) end in user space. */
static __always_inline void udp_release(struct bpf_sock *ctx)
{
	__u64 skp = (__u64)ctx;
	struct udp_sock *us = bpf_map_lookup_elem(&udp_socks, &skp);

	if (!us)
		return;
	if (us->nflows == 1) {
		struct udp_key key = us->first;
		struct udp_flow *f = bpf_map_lookup_elem(&udp_flows, &key);
		if (f && !f->ignored) {
			struct gsp_event *e = reserve(bpf_ktime_get_ns());
			if (e) {
				e->kind = GSP_CLOSE;
				e->protocol = GSP_PROTO_UDP;
				e->conn_id = f->conn_id;
				e->start_ns = f->start_ns;
				e->sk = skp;
				e->netns = f->netns;
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
		struct gsp_event *e = reserve(bpf_ktime_get_ns());
		if (e) {
			e->kind = GSP_UDP_RELEASE;
			e->protocol = GSP_PROTO_UDP;
			e->sk = skp;
			submit(e);
		}
	}
	bpf_map_delete_elem(&udp_socks, &skp);
}

#endif /* GESPANN_UDP_H */
