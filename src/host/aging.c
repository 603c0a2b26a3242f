// SPDX-License-Identifier: MIT
/*
 * Page aging, as the kernel's reclaim does it per mapping
 * (ptep_clear_flush_young_notify() and friends): for each present entry,
 * the host's own young bit (test-and-clear, or just test) OR'ed with what the
 * secondary MMUs answer for that page (per pte, per huge entry for THP and
 * 1 GiB mappings).  There is no invalidate_range_start/_end: aging does not
 * change any translation.  Notifiers are called outside page_table_lock,
 * under mmap_lock (read) and mmu_notifier_srcu.
 */
#include "host/host_internal.h"

enum age_op { AGE_CLEAR_FLUSH, AGE_CLEAR, AGE_TEST };

static int notify_young(struct host_mm *mm, enum age_op op,
			unsigned long start, unsigned long end)
{
	switch (op) {
	case AGE_CLEAR_FLUSH:
		return mmu_notifier_clear_flush_young(mm, start, end);
	case AGE_CLEAR:
		return mmu_notifier_clear_young(mm, start, end);
	default:
		return mmu_notifier_test_young(mm, start);
	}
}

/* Test (and clear) the young bit of one present entry; false if absent. */
static bool entry_young(struct host_mm *mm, _Atomic uint64_t *p, enum age_op op,
			bool *young)
{
	uint64_t e;
	bool present;

	lockdep_assert_held(&mm->mmap_lock);
	spin_lock(&mm->page_table_lock);
	e = pte_get(p);
	present = pte_present(e);
	*young = present && (e & HPTE_YOUNG);
	if (*young && op != AGE_TEST)
		pte_set(p, e & ~HPTE_YOUNG);
	spin_unlock(&mm->page_table_lock);
	return present;
}

/* One huge entry covering [start, end) of the range: all young or none. */
static long age_huge(struct host_mm *mm, _Atomic uint64_t *p, enum age_op op,
		     unsigned long start, unsigned long end)
{
	bool young;

	lockdep_assert_held(&mm->mmap_lock);
	if (!entry_young(mm, p, op, &young))
		return 0;
	if (notify_young(mm, op, start, end))
		young = true;
	return young ? (long)((end - start) >> PAGE_SHIFT) : 0;
}

static long age_vma(struct host_mm *mm, struct host_vma *vma, enum age_op op,
		    unsigned long start, unsigned long end)
{
	unsigned int flags = vma_flags(vma);
	unsigned long a, next;
	long young = 0;

	lockdep_assert_held(&mm->mmap_lock);
	for (a = start; a < end; a = next) {
		unsigned long size = (flags & VM_HUGE_1G) ? PUD_SIZE : PMD_SIZE;
		_Atomic uint64_t *p;
		bool y;

		next = ALIGN_DOWN(a, size) + size;
		if (next > end)
			next = end;
		if (flags & VM_HUGE_1G) {
			young += age_huge(mm, vma_pud(vma, a), op, a, next);
			continue;
		}
		if ((flags & VM_THP) && pmd_huge(pte_get(vma_pmd(vma, a)))) {
			young += age_huge(mm, vma_pmd(vma, a), op, a, next);
			continue;
		}
		for (; a < next; a += PAGE_SIZE) {
			p = vma_pte(vma, a);
			if (!pte_present(pte_get(p)) || !entry_young(mm, p, op, &y))
				continue;
			if (notify_young(mm, op, a, a + PAGE_SIZE))
				y = true;
			young += y;
		}
	}
	return young;
}

static long age_range(struct host_mm *mm, unsigned long hva, size_t len,
		      enum age_op op)
{
	unsigned long start = hva & PAGE_MASK;
	unsigned long end = ALIGN_UP(hva + len, PAGE_SIZE);
	struct host_vma *vma;
	long young = 0;

	down_read(&mm->mmap_lock);
	for (unsigned long a = start; (vma = find_vma_intersection(mm, a, end));
	     a = vma->end)
		young += age_vma(mm, vma, op, a > vma->start ? a : vma->start,
				 end < vma->end ? end : vma->end);
	up_read(&mm->mmap_lock);
	mm_stat_inc(mm, MM_AGING_PASSES);
	return young;
}

long host_clear_flush_young(struct host_mm *mm, unsigned long hva, size_t len)
{
	return age_range(mm, hva, len, AGE_CLEAR_FLUSH);
}

long host_clear_young(struct host_mm *mm, unsigned long hva, size_t len)
{
	return age_range(mm, hva, len, AGE_CLEAR);
}

long host_test_young(struct host_mm *mm, unsigned long hva, size_t len)
{
	return age_range(mm, hva, len, AGE_TEST);
}
