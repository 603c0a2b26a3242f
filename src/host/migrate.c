// SPDX-License-Identifier: MIT
/*
 * Page migration, and the isolation step it shares with swap-out.
 *
 * isolate_page() replaces a present pte by a migration entry (which keeps
 * the pfn and the permission/dirty/young bits), bracketed by
 * invalidate_range_start/_end, then checks the frame for references beyond
 * the mapping's and its own.  See gup.c for why that check and the lockless
 * get_user_pages_fast() cannot both miss each other.  While the entry is
 * there nobody can reach the frame: host faults and get_user_pages wait for
 * the entry, secondary MMUs dropped their translations in _start, and no
 * reference taken before survived the check.  So the frame's contents are
 * stable and can be copied.
 *
 * The entry owns the mapping's reference and mapcount.  Only a zap
 * (madvise(DONTNEED)) can remove it meanwhile -- every other mm operation
 * either waits for it or needs mmap_lock for write, which the migration's
 * read hold excludes -- so completion and abort check that the entry is
 * still there before installing anything, and drop the old mapping's
 * reference either way.  Every change of a migration entry wakes its waiters.
 */
#include <errno.h>

#include "host/host_internal.h"

int isolate_page(struct host_mm *mm, struct host_vma *vma, unsigned long hva,
		 enum mmu_notifier_event event, struct isolation *iso)
{
	_Atomic uint64_t *ptep = vma_pte(vma, hva);
	struct mmu_notifier_range range;
	struct page *page;
	uint64_t pte;

	lockdep_assert_held(&mm->mmap_lock);
	spin_lock(&mm->page_table_lock);
	pte = pte_get(ptep);
	if (!pte_present(pte)) {
		spin_unlock(&mm->page_table_lock);
		return pte_is_migration(pte) ? -EAGAIN : -ENOENT;
	}
	page = pfn_to_page(HPTE_PFN(pte));
	if (HPTE_PFN(pte) == zero_pfn || (atomic_load(&page->flags) & PG_ksm)) {
		spin_unlock(&mm->page_table_lock);
		return -ENOENT;
	}
	get_page(page);
	spin_unlock(&mm->page_table_lock);

	mmu_notifier_range_init(&range, event, mm, hva, hva + PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	spin_lock(&mm->page_table_lock);
	pte = pte_get(ptep);
	if (!pte_present(pte) || pfn_to_page(HPTE_PFN(pte)) != page ||
	    (atomic_load(&page->flags) & PG_ksm)) {
		spin_unlock(&mm->page_table_lock);
		mmu_notifier_invalidate_range_end(&range);
		put_page(page);
		return -EAGAIN;
	}
	iso->ptep = ptep;
	iso->orig = pte;
	iso->entry = mk_pte(page_to_pfn(page), HPTE_MIGRATION | (pte & HPTE_PERM));
	iso->page = page;
	pte_set(ptep, iso->entry);
	spin_unlock(&mm->page_table_lock);
	mmu_notifier_invalidate_range_end(&range);

	/* Pairs with the barrier in gup_fast(). */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&page->refcount) > 2) {	/* the mapping's + ours */
		isolation_abort(mm, iso);
		mm_stat_inc(mm, MM_PINNED_ABORTS);
		return -EAGAIN;
	}
	return 0;
}

/* Put the original pte back (same pfn: no notifier needed). */
void isolation_abort(struct host_mm *mm, struct isolation *iso)
{
	bool restored = false;

	lockdep_assert_held(&mm->mmap_lock);
	spin_lock(&mm->page_table_lock);
	if (pte_get(iso->ptep) == iso->entry) {
		pte_set(iso->ptep, iso->orig);
		restored = true;
	}
	spin_unlock(&mm->page_table_lock);
	migration_entry_wake();
	if (!restored)		/* zapped meanwhile: the mapping is gone */
		unmap_put_frames(page_to_pfn(iso->page), 1);
	put_page(iso->page);
}

/*
 * Replace the migration entry by @newpte (mapping @newpage, or a swap
 * entry when @newpage is NULL).  False if the entry was zapped meanwhile:
 * the caller still owns @newpage / the swap slot.  The old frame loses the
 * mapping's reference and ours either way.
 */
bool isolation_finish(struct host_mm *mm, struct isolation *iso,
		      uint64_t newpte, struct page *newpage)
{
	bool ok;

	lockdep_assert_held(&mm->mmap_lock);
	spin_lock(&mm->page_table_lock);
	ok = pte_get(iso->ptep) == iso->entry;
	if (ok) {
		if (newpage)
			atomic_store(&newpage->mapcount, 1);
		pte_set(iso->ptep, newpte);
	}
	spin_unlock(&mm->page_table_lock);
	migration_entry_wake();
	unmap_put_frames(page_to_pfn(iso->page), 1);
	put_page(iso->page);
	return ok;
}

/* Look up @hva for migration/swap-out/KSM: a 4 KiB mapping, THP split. */
struct host_vma *vma_for_page_op(struct host_mm *mm, unsigned long hva, int *err)
{
	struct host_vma *vma;

	lockdep_assert_held(&mm->mmap_lock);
	vma = find_vma(mm, hva);
	if (!vma) {
		*err = -EFAULT;
		return NULL;
	}
	if (vma_flags(vma) & VM_HUGE_1G) {
		*err = -EINVAL;
		return NULL;
	}
	thp_split_pmd(mm, vma, hva);
	return vma;
}

int host_migrate_page(struct host_mm *mm, unsigned long hva)
{
	struct isolation iso;
	struct host_vma *vma;
	struct page *new;
	int ret;

	hva &= PAGE_MASK;
	down_read(&mm->mmap_lock);
	vma = vma_for_page_op(mm, hva, &ret);
	if (!vma)
		goto out;
	ret = isolate_page(mm, vma, hva, MMU_NOTIFY_MIGRATE, &iso);
	if (ret)
		goto out;
	new = alloc_anon_page();
	if (!new) {
		isolation_abort(mm, &iso);
		ret = -ENOMEM;
		goto out;
	}
	frame_copy(page_to_pfn(new), page_to_pfn(iso.page));
	if (isolation_finish(mm, &iso, mk_pte(page_to_pfn(new), HPTE_PRESENT |
					      (iso.orig & HPTE_PERM)), new)) {
		mm_stat_inc(mm, MM_MIGRATIONS);
	} else {
		put_page(new);
		ret = -ENOENT;
	}
out:
	up_read(&mm->mmap_lock);
	return ret;
}
