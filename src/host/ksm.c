// SPDX-License-Identifier: MIT
/*
 * KSM: merge two identical anonymous pages into one read-only frame.
 *
 *  1. write-protect both ptes (MMU_NOTIFY_PROTECTION_PAGE around each), with
 *     the pin check of migration: a reference taken through a writable
 *     mapping before the write-protect could still be written through (the
 *     check is made for ptes that were read-only already, too);
 *  2. compare the frames -- nobody can write them now;
 *  3. if equal, under page_table_lock and only if both ptes are still the
 *     read-only ptes of step 1, point the second pte at the first frame
 *     (invalidate_range_start/_end around it: its pfn changes), mark the
 *     frame PG_ksm, and release the second frame.
 *
 * A later write to either page is a copy-on-write fault (fault.c): a PG_ksm
 * frame is never made writable in place.
 */
#include <errno.h>

#include "host/host_internal.h"

struct ksm_side {
	struct host_vma *vma;
	unsigned long hva;
	_Atomic uint64_t *ptep;
	uint64_t pte;			/* the read-only pte after step 1 */
	struct page *page;		/* holds our reference */
};

static int ksm_wrprotect(struct host_mm *mm, struct ksm_side *s)
{
	struct mmu_notifier_range range;
	uint64_t pte, ro;

	lockdep_assert_held(&mm->mmap_lock);
	s->ptep = vma_pte(s->vma, s->hva);
	spin_lock(&mm->page_table_lock);
	pte = pte_get(s->ptep);
	if (!pte_present(pte) || HPTE_PFN(pte) == zero_pfn) {
		spin_unlock(&mm->page_table_lock);
		return pte_is_migration(pte) ? -EAGAIN : -ENOENT;
	}
	s->page = pfn_to_page(HPTE_PFN(pte));
	s->pte = pte;
	get_page(s->page);
	spin_unlock(&mm->page_table_lock);
	/* A KSM frame is read-only everywhere and only ever read-pinned. */
	if (atomic_load(&s->page->flags) & PG_ksm)
		return 0;
	if (!(pte & HPTE_WRITE)) {
		/* Read-only already, but a writer may hold an older reference. */
		if (atomic_load(&s->page->refcount) > 2)
			goto pinned;
		return 0;
	}

	mmu_notifier_range_init(&range, MMU_NOTIFY_PROTECTION_PAGE, mm, s->hva,
				s->hva + PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	spin_lock(&mm->page_table_lock);
	pte = pte_get(s->ptep);
	if (!pte_present(pte) || pfn_to_page(HPTE_PFN(pte)) != s->page) {
		spin_unlock(&mm->page_table_lock);
		mmu_notifier_invalidate_range_end(&range);
		put_page(s->page);
		return -EAGAIN;
	}
	ro = pte & ~HPTE_WRITE;
	pte_set(s->ptep, ro);
	spin_unlock(&mm->page_table_lock);
	mmu_notifier_invalidate_range_end(&range);

	/* Pairs with gup_fast(): see gup.c. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&s->page->refcount) > 2) {	/* the mapping's + ours */
		/* Give the write permission back: same pfn, no notifier. */
		spin_lock(&mm->page_table_lock);
		if (pte_same_page(pte_get(s->ptep), ro))
			pte_set(s->ptep, pte_get(s->ptep) | HPTE_WRITE);
		spin_unlock(&mm->page_table_lock);
		goto pinned;
	}
	s->pte = ro;
	return 0;
pinned:
	put_page(s->page);
	mm_stat_inc(mm, MM_PINNED_ABORTS);
	return -EAGAIN;
}

static bool ksm_replace(struct host_mm *mm, struct ksm_side *a, struct ksm_side *b)
{
	struct mmu_notifier_range range;
	bool merged = false;

	lockdep_assert_held(&mm->mmap_lock);
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, mm, b->hva,
				b->hva + PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	spin_lock(&mm->page_table_lock);
	if (pte_same_page(pte_get(a->ptep), a->pte) &&
	    pte_same_page(pte_get(b->ptep), b->pte)) {
		atomic_fetch_or(&a->page->flags, PG_ksm);
		atomic_fetch_add(&a->page->mapcount, 1);
		get_page(a->page);		/* b's pte's reference */
		atomic_fetch_sub(&b->page->mapcount, 1);
		pte_set(b->ptep, mk_pte(page_to_pfn(a->page), HPTE_PRESENT |
				       HPTE_YOUNG | (b->pte & HPTE_DIRTY)));
		merged = true;
	}
	spin_unlock(&mm->page_table_lock);
	mmu_notifier_invalidate_range_end(&range);
	if (merged)
		put_page(b->page);		/* the old pte's reference */
	return merged;
}

int host_ksm_merge(struct host_mm *mm, unsigned long hva1, unsigned long hva2)
{
	struct ksm_side a = { .hva = hva1 & PAGE_MASK };
	struct ksm_side b = { .hva = hva2 & PAGE_MASK };
	int ret;

	if (a.hva == b.hva)
		return -EINVAL;
	down_read(&mm->mmap_lock);
	a.vma = vma_for_page_op(mm, a.hva, &ret);
	if (a.vma)
		b.vma = vma_for_page_op(mm, b.hva, &ret);
	if (!a.vma || !b.vma)
		goto out;
	ret = ksm_wrprotect(mm, &a);
	if (ret)
		goto out;
	ret = ksm_wrprotect(mm, &b);
	if (ret)
		goto put_a;
	if (a.page == b.page)
		ret = 0;		/* already merged */
	else if (!frame_equal(page_to_pfn(a.page), page_to_pfn(b.page)))
		ret = -EAGAIN;
	else if (!ksm_replace(mm, &a, &b))
		ret = -EAGAIN;
	else
		mm_stat_inc(mm, MM_KSM_MERGES);
	put_page(b.page);
put_a:
	put_page(a.page);
out:
	up_read(&mm->mmap_lock);
	return ret;
}
