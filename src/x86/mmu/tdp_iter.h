/* SPDX-License-Identifier: MIT */
/*
 * A pre-order iterator over the SPTEs of one TDP root that map a gfn range
 * (arch/x86/kvm/mmu/tdp_iter.h).  It descends only through a link it has
 * just read as present and non-leaf, re-reads every SPTE it visits, and
 * must run inside an RCU read-side section: page-table pages are freed only
 * after a grace period.
 */
#ifndef UKVM_X86_MMU_TDP_ITER_H
#define UKVM_X86_MMU_TDP_ITER_H

#include "x86/mmu/mmu_internal.h"

static inline uint64_t kvm_tdp_mmu_read_spte(_Atomic uint64_t *sptep)
{
	return atomic_load_explicit(sptep, memory_order_acquire);
}

struct tdp_iter {
	gfn_t next_last_level_gfn;	/* where to resume after a yield */
	gfn_t yielded_gfn;		/* forward-progress guard */
	_Atomic uint64_t *pt_path[PT64_ROOT_MAX_LEVEL];	/* table per level */
	_Atomic uint64_t *sptep;	/* the current SPTE */
	gfn_t gfn;			/* the lowest gfn it maps */
	int root_level;
	int min_level;
	int level;
	int as_id;
	uint64_t old_spte;		/* snapshot of *sptep */
	bool valid;
	bool yielded;
};

void tdp_iter_start(struct tdp_iter *iter, struct kvm_mmu_page *root,
		    int min_level, gfn_t next_last_level_gfn);
void tdp_iter_next(struct tdp_iter *iter);
void tdp_iter_restart(struct tdp_iter *iter);

#define for_each_tdp_pte_min_level(iter, root, min_level, start, end)         \
	for (tdp_iter_start(&(iter), (root), (min_level), (start));           \
	     (iter).valid && (iter).gfn < (end);                              \
	     tdp_iter_next(&(iter)))

#define for_each_tdp_pte(iter, root, start, end)                              \
	for_each_tdp_pte_min_level(iter, root, PG_LEVEL_4K, start, end)

#endif /* UKVM_X86_MMU_TDP_ITER_H */
