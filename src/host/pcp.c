// SPDX-License-Identifier: MIT
/*
 * Per-CPU free-frame caches (mm/page_alloc.c's per_cpu_pages): 4 KiB frames
 * are taken from and given back to a small cache under its own &pcp->lock,
 * and the cache moves frames to and from the zone in batches under
 * zone->lock.  Without it, every fault of every vCPU took the one
 * zone->lock and bounced its cache line between the CPUs.
 *
 * A host "CPU" is a thread here, and threads are not pinned: each thread
 * is given a cache the first time it allocates, round robin, so concurrent
 * threads mostly use different caches.  The lock keeps a shared cache
 * correct; the kernel disables preemption for the same purpose.
 *
 * Frames in caches are free: the statistics count them, and an allocation
 * that finds the zone empty drains every cache before it fails
 * (drain_all_pages()), so running out of memory still means every frame is
 * in use.  The frame-accounting counters live in the caches too.
 */
#include <string.h>

#include "host/host_internal.h"

#define NR_PCP		16
#define PCP_BATCH	31
#define PCP_HIGH	(4 * PCP_BATCH)

struct per_cpu_pages {
	spinlock_t lock;
	unsigned int count;
	uint32_t pfns[PCP_HIGH + 1];
	_Atomic long frames_kernel, frames_anon;
} __attribute__((aligned(64)));

static struct per_cpu_pages pcp_caches[NR_PCP];
static _Atomic unsigned int pcp_next;
static __thread int pcp_mine = -1;

static struct per_cpu_pages *this_pcp(void)
{
	if (pcp_mine < 0)
		pcp_mine = (int)(atomic_fetch_add_explicit(&pcp_next, 1,
				memory_order_relaxed) % NR_PCP);
	return &pcp_caches[pcp_mine];
}

void pcp_init(void)
{
	for (int i = 0; i < NR_PCP; i++) {
		struct per_cpu_pages *pcp = &pcp_caches[i];

		spin_lock_init(&pcp->lock);
		pcp->count = 0;
		atomic_store(&pcp->frames_kernel, 0);
		atomic_store(&pcp->frames_anon, 0);
	}
}

/* Give every cached frame back to the zone; returns how many. */
unsigned long pcp_drain_all(void)
{
	unsigned long n = 0;

	for (int i = 0; i < NR_PCP; i++) {
		struct per_cpu_pages *pcp = &pcp_caches[i];

		spin_lock(&pcp->lock);
		if (pcp->count) {
			zone_give_frames(pcp->pfns, pcp->count);
			n += pcp->count;
			pcp->count = 0;
		}
		spin_unlock(&pcp->lock);
	}
	return n;
}

/* A free 4 KiB frame, or INVALID_PFN if there is none anywhere. */
unsigned long pcp_take_frame(void)
{
	struct per_cpu_pages *pcp = this_pcp();
	unsigned long pfn = INVALID_PFN;
	uint32_t one;

	spin_lock(&pcp->lock);
	if (!pcp->count)
		pcp->count = zone_take_frames(pcp->pfns, PCP_BATCH);
	if (pcp->count)
		pfn = pcp->pfns[--pcp->count];
	spin_unlock(&pcp->lock);
	if (pfn != INVALID_PFN)
		return pfn;
	/* The zone is empty: what other caches hold is all there is. */
	if (pcp_drain_all() && zone_take_frames(&one, 1))
		return one;
	return INVALID_PFN;
}

void pcp_give_frame(unsigned long pfn)
{
	struct per_cpu_pages *pcp = this_pcp();

	spin_lock(&pcp->lock);
	pcp->pfns[pcp->count++] = (uint32_t)pfn;
	if (pcp->count > PCP_HIGH) {
		/* Keep the hottest (last freed) frames, return the oldest. */
		zone_give_frames(pcp->pfns, PCP_BATCH);
		pcp->count -= PCP_BATCH;
		memmove(pcp->pfns, pcp->pfns + PCP_BATCH,
			pcp->count * sizeof(pcp->pfns[0]));
	}
	spin_unlock(&pcp->lock);
}

void pcp_account(bool kernel, bool anon, long delta)
{
	struct per_cpu_pages *pcp = this_pcp();

	if (kernel)
		atomic_fetch_add_explicit(&pcp->frames_kernel, delta,
					  memory_order_relaxed);
	if (anon)
		atomic_fetch_add_explicit(&pcp->frames_anon, delta,
					  memory_order_relaxed);
}

void pcp_get_stats(unsigned long *cached, long *kernel, long *anon)
{
	*cached = 0;
	*kernel = 0;
	*anon = 0;
	for (int i = 0; i < NR_PCP; i++) {
		struct per_cpu_pages *pcp = &pcp_caches[i];

		spin_lock(&pcp->lock);
		*cached += pcp->count;
		spin_unlock(&pcp->lock);
		*kernel += atomic_load_explicit(&pcp->frames_kernel, memory_order_relaxed);
		*anon += atomic_load_explicit(&pcp->frames_anon, memory_order_relaxed);
	}
}
