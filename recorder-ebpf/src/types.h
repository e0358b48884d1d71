/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The few kernel types Gespann reads, declared with only the fields it uses.
 *
 * preserve_access_index makes every access a CO-RE relocation: the loader (aya) resolves field
 * offsets against the running kernel's BTF (/sys/kernel/btf/vmlinux), so these declarations need
 * the kernel's field names, not its layout. Nesting mirrors the kernel where the fields sit in
 * anonymous unions, to keep the relocation paths plain.
 */
#ifndef GESPANN_TYPES_H
#define GESPANN_TYPES_H

#include <linux/types.h>
#include <linux/bpf.h>

typedef _Bool bool;
#define true 1
#define false 0

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be16 u6_addr16[8];
		__be32 u6_addr32[4];
	} in6_u;
};

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	possible_net_t skc_net;
	union {
		unsigned long skc_flags;
	};
};

struct sock {
	struct sock_common __sk_common;
	int sk_err;
	__u16 sk_protocol;
};

struct inet_sock {
	struct sock sk;
	__be16 inet_sport;
};

struct inet_connection_sock {
	struct inet_sock icsk_inet;
};

struct tcp_sock {
	struct inet_connection_sock inet_conn;
	__u32 data_segs_out;
	__u32 srtt_us;
	__u64 bytes_received;
	__u32 data_segs_in;
	__u64 bytes_acked;
	__u32 total_retrans;
};

struct task_struct {
	struct task_struct *group_leader;
	char comm[16];
};

enum sk_rst_reason {
	SK_RST_REASON_NOT_SPECIFIED,
};

#pragma clang attribute pop

/* Kernel constants Gespann compares against (include/linux/socket.h, uapi/linux/in.h,
 * include/net/tcp_states.h, include/net/sock.h). */
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

#define EISCONN 106
#define EALREADY 114
#define EINPROGRESS 115

#endif /* GESPANN_TYPES_H */
