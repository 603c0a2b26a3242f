// SPDX-License-Identifier: MIT
/*
 * Swap: a fixed array of 4 KiB slots in ordinary memory, a stack of free
 * slots under swap_lock, and swap-out of one page.
 *
 * Swap-out has the shape of migration (migrate.c): the pte becomes a busy
 * migration entry (invalidate_range_start/_end around it, then the pin
 * check), the frame is copied to the slot, then the pte becomes a swap entry
 * (HPTE_SWAP | slot) and the frame is released.  Swap-in is a fault
 * (fault.c, do_swap_page()): non-present to present, no notifier.
 *
 * A slot belongs to the one swap entry that names it: it is read and freed
 * only by whoever removes that entry under page_table_lock (swap-in, zap).
 * Slot contents use relaxed atomics like frames.
 */
#include <errno.h>
#include <stdlib.h>

#include "host/host_internal.h"

#define WORDS_PER_SLOT (PAGE_SIZE / sizeof(uint64_t))

DEFINE_SPINLOCK(swap_lock);

static struct {
	_Atomic uint64_t *data;
	unsigned long nr_slots;
	unsigned long *free;		/* stack of free slots, under swap_lock */
	unsigned long nr_free;
} swap;

int swap_init(size_t swap_bytes)
{
	unsigned long nr = swap_bytes / PAGE_SIZE;

	swap.nr_slots = 0;
	swap.nr_free = 0;
	if (!nr)
		return 0;
	swap.data = calloc(nr, PAGE_SIZE);
	swap.free = calloc(nr, sizeof(*swap.free));
	if (!swap.data || !swap.free) {
		swap_exit();
		return -ENOMEM;
	}
	spin_lock(&swap_lock);
	for (unsigned long i = 0; i < nr; i++)
		swap.free[i] = nr - 1 - i;
	swap.nr_free = nr;
	swap.nr_slots = nr;
	spin_unlock(&swap_lock);
	return 0;
}

void swap_exit(void)
{
	free(swap.data);
	free(swap.free);
	swap.data = NULL;
	swap.free = NULL;
	swap.nr_slots = 0;
	swap.nr_free = 0;
}

static long swap_alloc_slot(void)
{
	long slot = -ENOSPC;

	spin_lock(&swap_lock);
	if (swap.nr_free)
		slot = (long)swap.free[--swap.nr_free];
	spin_unlock(&swap_lock);
	return slot;
}

void swap_free_slot(unsigned long slot)
{
	spin_lock(&swap_lock);
	if (!HOST_WARN_ON(slot >= swap.nr_slots || swap.nr_free >= swap.nr_slots))
		swap.free[swap.nr_free++] = slot;
	spin_unlock(&swap_lock);
}

void swap_get_stats(unsigned long *used, unsigned long *total)
{
	spin_lock(&swap_lock);
	*total = swap.nr_slots;
	*used = swap.nr_slots - swap.nr_free;
	spin_unlock(&swap_lock);
}

static void swap_write_slot(unsigned long slot, unsigned long pfn)
{
	_Atomic uint64_t *d = &swap.data[slot * WORDS_PER_SLOT];

	for (unsigned int i = 0; i < WORDS_PER_SLOT; i++)
		atomic_store_explicit(&d[i], frame_read64(pfn, i * 8),
				      memory_order_relaxed);
}

void swap_read_slot(unsigned long slot, unsigned long pfn)
{
	_Atomic uint64_t *s = &swap.data[slot * WORDS_PER_SLOT];

	for (unsigned int i = 0; i < WORDS_PER_SLOT; i++)
		frame_write64(pfn, i * 8,
			      atomic_load_explicit(&s[i], memory_order_relaxed));
}

int host_swap_out(struct host_mm *mm, unsigned long hva)
{
	struct isolation iso;
	struct host_vma *vma;
	long slot;
	int ret;

	hva &= PAGE_MASK;
	down_read(&mm->mmap_lock);
	vma = vma_for_page_op(mm, hva, &ret);
	if (!vma)
		goto out;
	slot = swap_alloc_slot();
	if (slot < 0) {
		ret = (int)slot;
		goto out;
	}
	ret = isolate_page(mm, vma, hva, MMU_NOTIFY_CLEAR, &iso);
	if (ret) {
		swap_free_slot((unsigned long)slot);
		goto out;
	}
	swap_write_slot((unsigned long)slot, page_to_pfn(iso.page));
	if (isolation_finish(mm, &iso, mk_pte((unsigned long)slot, HPTE_SWAP), NULL)) {
		mm_stat_inc(mm, MM_SWAPOUTS);
	} else {
		swap_free_slot((unsigned long)slot);
		ret = -ENOENT;
	}
out:
	up_read(&mm->mmap_lock);
	return ret;
}
