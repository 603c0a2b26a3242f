// SPDX-License-Identifier: MIT
/*
 * mprotect() of the VMM: change VM_WRITE on whole pages.
 *
 * Under mmap_lock (write): no fault, migration or other mm operation runs,
 * so there are no migration entries to care about.  The VMAs are split at
 * the range's edges (a THP cut by an edge is split first).  Taking write
 * away clears HPTE_WRITE in every pte, huge pmd and pud of the range, with
 * invalidate_range_start/_end (MMU_NOTIFY_PROTECTION_VMA) around it, so that
 * secondary MMUs drop their writable translations before the function
 * returns.  Giving write back only sets VM_WRITE: the next write fault makes
 * each pte writable (same pfn, no notifier needed).
 */
#include <errno.h>

#include "host/host_internal.h"

static void wrprotect_range(struct host_mm *mm, struct host_vma *vma,
			    unsigned long start, unsigned long end)
{
	unsigned int flags = vma_flags(vma);
	unsigned long a;

	lockdep_assert_held_write(&mm->mmap_lock);
	spin_lock(&mm->page_table_lock);
	if (flags & VM_HUGE_1G) {
		for (a = start; a < end; a += PUD_SIZE) {
			_Atomic uint64_t *pudp = vma_pud(vma, a);

			pte_set(pudp, pte_get(pudp) & ~HPTE_WRITE);
		}
		goto out;
	}
	for (a = start; a < end; a += PAGE_SIZE) {
		_Atomic uint64_t *p = vma_pte(vma, a);
		uint64_t e;

		if ((flags & VM_THP) && pmd_huge(pte_get(vma_pmd(vma, a)))) {
			p = vma_pmd(vma, a);
			a = ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE - PAGE_SIZE;
		}
		e = pte_get(p);
		if (pte_present(e) && (e & HPTE_WRITE))
			pte_set(p, e & ~HPTE_WRITE);
	}
out:
	spin_unlock(&mm->page_table_lock);
}

/* Check [start, end) for holes and for 1 GiB mappings cut by an edge. */
static int mprotect_check(struct host_mm *mm, unsigned long start, unsigned long end)
{
	unsigned long a = start;
	struct host_vma *vma;

	lockdep_assert_held(&mm->mmap_lock);
	while (a < end) {
		vma = find_vma(mm, a);
		if (!vma)
			return -ENOMEM;
		if ((vma_flags(vma) & VM_HUGE_1G) &&
		    (vma->start < start || vma->end > end))
			return -EINVAL;
		a = vma->end;
	}
	return 0;
}

int host_mprotect(struct host_mm *mm, unsigned long hva, size_t len,
		  unsigned int prot)
{
	unsigned long end = hva + ALIGN_UP(len, PAGE_SIZE);
	struct mmu_notifier_range range;
	struct host_vma *vma;
	bool wrprotect = false;
	unsigned long a;
	int ret;

	if ((hva & ~PAGE_MASK) || !len || end < hva ||
	    (prot != VM_READ && prot != (VM_READ | VM_WRITE)))
		return -EINVAL;
	down_write(&mm->mmap_lock);
	ret = mprotect_check(mm, hva, end);
	if (!ret)
		ret = vma_split(mm, hva);
	if (!ret)
		ret = vma_split(mm, end);
	if (ret)
		goto out;

	for (a = hva; a < end; a = vma->end) {
		vma = find_vma(mm, a);
		if ((vma_flags(vma) & VM_WRITE) && !(prot & VM_WRITE))
			wrprotect = true;
	}
	if (wrprotect) {
		mmu_notifier_range_init(&range, MMU_NOTIFY_PROTECTION_VMA, mm, hva, end);
		mmu_notifier_invalidate_range_start(&range);
		for (a = hva; a < end; a = vma->end) {
			vma = find_vma(mm, a);
			if (vma_flags(vma) & VM_WRITE)
				wrprotect_range(mm, vma, vma->start, vma->end);
		}
		mmu_notifier_invalidate_range_end(&range);
	}
	for (a = hva; a < end; a = vma->end) {
		vma = find_vma(mm, a);
		atomic_store(&vma->vm_flags, (vma_flags(vma) & ~(VM_READ | VM_WRITE)) | prot);
	}
	mm_stat_inc(mm, MM_MPROTECTS);
out:
	up_write(&mm->mmap_lock);
	return ret;
}
