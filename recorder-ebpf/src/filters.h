/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The kernel-side filters (--pid, --comm, --port, --cgroup/--container, --netns): read-only
 * globals set by user space before load, so a recording needs no recompile, and for cgroups and
 * namespaces hash maps that user space fills (and, for containers that start while recording,
 * adds to). Zero counts mean "no filter"; a connection must match every kind of filter given.
 */
#ifndef GESPANN_FILTERS_H
#define GESPANN_FILTERS_H

#include "types.h"
#include <bpf/bpf_helpers.h>
#include "gespann.h"
#include "maps.h"

const volatile __u32 filter_pids[GSP_MAX_PIDS] = {};
const volatile __u32 filter_npids = 0;
const volatile char filter_comms[GSP_MAX_COMMS][GSP_COMM_LEN] = {};
const volatile __u32 filter_ncomms = 0;
const volatile __u16 filter_ports[GSP_MAX_PORTS] = {};
const volatile __u32 filter_nports = 0;
const volatile __u32 filter_by_cgroup = 0;	/* only owners whose cgroup is in filter_cgroups */
const volatile __u32 filter_by_netns = 0;	/* only sockets whose namespace is in filter_netns */

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
	if (filter_by_cgroup && !bpf_map_lookup_elem(&filter_cgroups, &o->cgroup_id))
		return false;
	return true;
}

static __always_inline bool owner_filters_on(void)
{
	return filter_npids || filter_ncomms || filter_by_cgroup;
}

static __always_inline bool netns_wanted(__u32 netns)
{
	return !filter_by_netns || bpf_map_lookup_elem(&filter_netns, &netns);
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

#endif /* GESPANN_FILTERS_H */
