// SPDX-License-Identifier: MIT
/*
 * Lifetimes: the host's (host_init(), host_exit()) and an address space's
 * (host_mm_create(), host_mm_destroy()), and the mm statistics.
 */
#include <errno.h>
#include <stdlib.h>

#include "host/host_internal.h"

struct host_mm *host_current_mm;

static bool host_up;
static bool host_registered_thread;

bool host_initialized(void)
{
	return host_up;
}

int host_init(const struct host_config *cfg)
{
	int ret;

	if (host_up)
		return -EBUSY;
	if (!cfg)
		return -EINVAL;
	if (!ukvm_rcu_thread_registered()) {
		ukvm_thread_register_current("host-main");
		host_registered_thread = true;
	}
	ret = physmem_init(cfg->mem_bytes, cfg->poison_frames);
	if (ret)
		goto fail;
	ret = swap_init(cfg->swap_bytes);
	if (ret)
		goto fail_phys;
	ret = mmu_notifier_global_init();
	if (ret)
		goto fail_swap;
	ret = host_cpus_init(cfg->nr_cpus);
	if (ret)
		goto fail_mn;
	host_current_mm = host_mm_create();
	if (!host_current_mm) {
		ret = -ENOMEM;
		goto fail_cpus;
	}
	host_up = true;
	return 0;

fail_cpus:
	host_cpus_exit();
fail_mn:
	mmu_notifier_global_exit();
fail_swap:
	swap_exit();
fail_phys:
	physmem_exit();
fail:
	if (host_registered_thread) {
		ukvm_thread_unregister_current();
		host_registered_thread = false;
	}
	return ret;
}

void host_exit(void)
{
	if (!host_up)
		return;
	host_mm_destroy(host_current_mm);
	host_current_mm = NULL;
	/* Every RCU callback (VMAs, page tables) has run before memory goes. */
	ukvm_rcu_barrier();
	host_cpus_exit();
	mmu_notifier_global_exit();
	swap_exit();
	physmem_exit();
	host_up = false;
	if (host_registered_thread) {
		ukvm_thread_unregister_current();
		host_registered_thread = false;
	}
}

/* ---------------------------------------------------------------------- */
/* mm lifetime                                                            */
/* ---------------------------------------------------------------------- */

struct host_mm *host_mm_create(void)
{
	struct host_mm *mm = calloc(1, sizeof(*mm));
	struct host_vma_array *a = vma_array_alloc(0);

	if (!mm || !a) {
		free(mm);
		free(a);
		return NULL;
	}
	init_rwsem(&mm->mmap_lock);
	spin_lock_init(&mm->page_table_lock);
	mutex_init(&mm->notifier_lock);
	CDS_INIT_LIST_HEAD(&mm->notifiers);
	atomic_init(&mm->vmas, a);
	mm->next_hva = HOST_MMAP_BASE;
	return mm;
}

void host_mm_destroy(struct host_mm *mm)
{
	if (!mm)
		return;
	host_mm_release(mm);
	down_write(&mm->mmap_lock);
	munmap_locked(mm, HOST_MMAP_BASE, HOST_MMAP_LIMIT);
	up_write(&mm->mmap_lock);
	/* Removed VMAs and arrays are freed by RCU callbacks: wait for them. */
	ukvm_rcu_barrier();
	free(mm_vmas(mm));
	mutex_destroy(&mm->notifier_lock);
	free(mm);
}

void host_mm_get_stats(struct host_mm *mm, struct host_mm_stats *st)
{
	unsigned long v[MM_NR_STATS];

	for (int i = 0; i < MM_NR_STATS; i++)
		v[i] = atomic_load_explicit(&mm->stat[i], memory_order_relaxed);
	*st = (struct host_mm_stats){
		.faults = v[MM_FAULTS], .cow = v[MM_COW],
		.swapins = v[MM_SWAPINS], .swapouts = v[MM_SWAPOUTS],
		.migrations = v[MM_MIGRATIONS], .ksm_merges = v[MM_KSM_MERGES],
		.unmaps = v[MM_UNMAPS], .mprotects = v[MM_MPROTECTS],
		.thp_splits = v[MM_THP_SPLITS], .aging_passes = v[MM_AGING_PASSES],
		.migration_waits = v[MM_MIGRATION_WAITS],
		.pinned_aborts = v[MM_PINNED_ABORTS],
		.notifier_starts = v[MM_NOTIFIER_STARTS],
		.notifier_ends = v[MM_NOTIFIER_ENDS],
		.thp_faults = v[MM_THP_FAULTS],
	};
}

_Static_assert(MM_NR_STATS <= sizeof(((struct host_mm *)0)->stat) /
			      sizeof(((struct host_mm *)0)->stat[0]),
	       "host_mm::stat is too small");
