// SPDX-License-Identifier: MIT
/*
 * Page-table walks shared by the mm operations: looking an hva up, zapping a
 * range, and splitting a THP into 512 ptes.
 *
 * Zapping clears entries under page_table_lock and drops the mapcounts
 * there, but puts the references (which may free and poison frames, taking
 * zone->lock) and frees swap slots only after the lock is dropped, one
 * 2 MiB batch at a time: page_table_lock stays a leaf.
 *
 * A migration entry does not own anything here: the migration or swap-out
 * that installed it holds the mapping's reference and finds out, when it
 * completes, that the entry was zapped (isolation_finish()).
 */
#include <errno.h>

#include "host/host_internal.h"

_Atomic uint64_t *lookup_entry(struct host_vma *vma, unsigned long hva,
			       uint64_t *entry, unsigned long *pfn)
{
	unsigned int flags = vma_flags(vma);
	_Atomic uint64_t *p;
	uint64_t e;

	if (flags & VM_HUGE_1G) {
		p = vma_pud(vma, hva);
		e = pte_get(p);
		*entry = e;
		*pfn = pmd_huge(e) ? HPTE_PFN(e) + ((hva & (PUD_SIZE - 1)) >> PAGE_SHIFT)
				   : INVALID_PFN;
		return p;
	}
	if (flags & VM_THP) {
		p = vma_pmd(vma, hva);
		e = pte_get(p);
		if (pmd_huge(e)) {
			*entry = e;
			*pfn = HPTE_PFN(e) + ((hva & (PMD_SIZE - 1)) >> PAGE_SHIFT);
			return p;
		}
		/*
		 * Not huge: the acquire load above pairs with the release of
		 * the THP split, which wrote the 512 ptes before the pmd.
		 */
	}
	p = vma_pte(vma, hva);
	e = pte_get(p);
	*entry = e;
	*pfn = pte_present(e) ? HPTE_PFN(e) : INVALID_PFN;
	return p;
}

/* ---------------------------------------------------------------------- */
/* THP split                                                              */
/* ---------------------------------------------------------------------- */

/*
 * Replace the huge pmd covering @hva by 512 ptes to the same frames, with
 * the same permission, dirty and young bits (MMU_NOTIFY_SPLIT around it).
 * -ENOENT if there is no THP there.
 */
int thp_split_pmd(struct host_mm *mm, struct host_vma *vma, unsigned long hva)
{
	unsigned long haddr = ALIGN_DOWN(hva, PMD_SIZE);
	struct mmu_notifier_range range;
	_Atomic uint64_t *pmdp;
	bool done = false;
	uint64_t pmd;

	lockdep_assert_held(&mm->mmap_lock);
	if (!(vma_flags(vma) & VM_THP))
		return -ENOENT;
	pmdp = vma_pmd(vma, haddr);
	if (!pmd_huge(pte_get(pmdp)))
		return -ENOENT;

	mmu_notifier_range_init(&range, MMU_NOTIFY_SPLIT, mm, haddr, haddr + PMD_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	spin_lock(&mm->page_table_lock);
	pmd = pte_get(pmdp);
	if (pmd_huge(pmd)) {
		unsigned long pfn = HPTE_PFN(pmd);
		uint64_t bits = HPTE_PRESENT | (pmd & HPTE_PERM);

		for (unsigned int i = 0; i < PTRS_PER_PMD; i++) {
			atomic_fetch_and(&pfn_to_page(pfn + i)->flags, ~(uint32_t)PG_huge);
			pte_set(vma_pte(vma, haddr + i * PAGE_SIZE),
				mk_pte(pfn + i, bits));
		}
		/* Release: a reader that sees TABLE sees the ptes. */
		pte_set(pmdp, HPTE_TABLE);
		done = true;
	}
	spin_unlock(&mm->page_table_lock);
	mmu_notifier_invalidate_range_end(&range);
	if (!done)
		return -ENOENT;
	mm_stat_inc(mm, MM_THP_SPLITS);
	return 0;
}

/* Split the THPs that [start, end) cuts (only partly covers). */
void thp_split_edges(struct host_mm *mm, struct host_vma *vma,
		     unsigned long start, unsigned long end)
{
	lockdep_assert_held(&mm->mmap_lock);
	if (!(vma_flags(vma) & VM_THP))
		return;
	if (start & (PMD_SIZE - 1))
		thp_split_pmd(mm, vma, start);
	if ((end & (PMD_SIZE - 1)) && end < vma->end)
		thp_split_pmd(mm, vma, end);
}

int host_thp_split(struct host_mm *mm, unsigned long hva)
{
	struct host_vma *vma;
	int ret = -EFAULT;

	down_read(&mm->mmap_lock);
	vma = find_vma(mm, hva);
	if (vma)
		ret = (vma_flags(vma) & VM_HUGE_1G) ? -EINVAL :
		      thp_split_pmd(mm, vma, hva);
	up_read(&mm->mmap_lock);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Zapping                                                                */
/* ---------------------------------------------------------------------- */

struct zap_batch {
	unsigned int nr_frames, nr_slots;
	unsigned long huge_pfn;		/* a zapped THP, or INVALID_PFN */
	bool wake;			/* a migration entry was cleared */
	unsigned long frames[PTRS_PER_PMD];
	unsigned long slots[PTRS_PER_PMD];
};

static void zap_batch_release(struct zap_batch *b)
{
	for (unsigned int i = 0; i < b->nr_frames; i++)
		put_page(pfn_to_page(b->frames[i]));
	if (b->huge_pfn != INVALID_PFN)
		for (unsigned int i = 0; i < PTRS_PER_PMD; i++)
			put_page(pfn_to_page(b->huge_pfn + i));
	for (unsigned int i = 0; i < b->nr_slots; i++)
		swap_free_slot(b->slots[i]);
	if (b->wake)
		migration_entry_wake();
	b->nr_frames = b->nr_slots = 0;
	b->huge_pfn = INVALID_PFN;
	b->wake = false;
}

static void zap_pte(struct host_mm *mm, struct zap_batch *b,
		    _Atomic uint64_t *ptep)
{
	uint64_t pte = pte_get(ptep);

	lockdep_assert_held(&mm->page_table_lock);
	if (pte_none(pte))
		return;
	pte_set(ptep, 0);
	if (pte_present(pte)) {
		atomic_fetch_sub(&pfn_to_page(HPTE_PFN(pte))->mapcount, 1);
		b->frames[b->nr_frames++] = HPTE_PFN(pte);
	} else if (pte_is_swap(pte)) {
		b->slots[b->nr_slots++] = HPTE_PFN(pte);
	} else if (pte_is_migration(pte)) {
		b->wake = true;
	}
}

static void zap_huge_pmd(struct host_mm *mm, struct zap_batch *b,
			 _Atomic uint64_t *pmdp, uint64_t pmd)
{
	lockdep_assert_held(&mm->page_table_lock);
	pte_set(pmdp, 0);	/* the 2 MiB may become a THP again */
	for (unsigned int i = 0; i < PTRS_PER_PMD; i++)
		atomic_fetch_sub(&pfn_to_page(HPTE_PFN(pmd) + i)->mapcount, 1);
	b->huge_pfn = HPTE_PFN(pmd);
}

static void zap_gigantic(struct host_mm *mm, struct host_vma *vma,
			 unsigned long start, unsigned long end)
{
	lockdep_assert_held(&mm->mmap_lock);
	for (unsigned long a = start; a < end; a += PUD_SIZE) {
		_Atomic uint64_t *pudp = vma_pud(vma, a);
		uint64_t pud;

		spin_lock(&mm->page_table_lock);
		pud = pte_get(pudp);
		pte_set(pudp, 0);
		spin_unlock(&mm->page_table_lock);
		if (pmd_huge(pud))
			unmap_put_frames(HPTE_PFN(pud), PAGES_PER_PUD);
	}
}

/*
 * Zap [start, end) of @vma: the caller holds mmap_lock and has called
 * invalidate_range_start for the range (and calls _end after).
 */
void zap_vma_range(struct host_mm *mm, struct host_vma *vma,
		   unsigned long start, unsigned long end)
{
	struct zap_batch b = { .huge_pfn = INVALID_PFN };
	unsigned long addr, next;

	lockdep_assert_held(&mm->mmap_lock);
	if (vma_flags(vma) & VM_HUGE_1G) {
		zap_gigantic(mm, vma, start, end);
		return;
	}
	for (addr = start; addr < end; addr = next) {
		next = ALIGN_DOWN(addr, PMD_SIZE) + PMD_SIZE;
		if (next > end)
			next = end;
		spin_lock(&mm->page_table_lock);
		if (vma_flags(vma) & VM_THP) {
			_Atomic uint64_t *pmdp = vma_pmd(vma, addr);
			uint64_t pmd = pte_get(pmdp);

			if (pmd_huge(pmd) && next - addr < PMD_SIZE) {
				/* The caller did not split this one: do it. */
				spin_unlock(&mm->page_table_lock);
				thp_split_pmd(mm, vma, addr);
				next = addr;
				continue;
			}
			if (pmd_huge(pmd)) {
				zap_huge_pmd(mm, &b, pmdp, pmd);
				spin_unlock(&mm->page_table_lock);
				zap_batch_release(&b);
				continue;
			}
		}
		for (unsigned long a = addr; a < next; a += PAGE_SIZE)
			zap_pte(mm, &b, vma_pte(vma, a));
		spin_unlock(&mm->page_table_lock);
		zap_batch_release(&b);
	}
}
