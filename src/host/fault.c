// SPDX-License-Identifier: MIT
/*
 * The host page-fault handler, shared by get_user_pages' slow path, the
 * VMM's own accesses and explicit swap-in: zero page, THP, write faults
 * (reuse or copy-on-write), swap-in, and waiting on migration entries.
 *
 * Runs under mmap_lock (read).  Entries change only under page_table_lock,
 * and every decision about an entry is taken under that lock on the value
 * read under it; frames are allocated before taking it (a fault that lost
 * a race frees what it allocated and looks again).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "host/host_internal.h"

/* ---------------------------------------------------------------------- */
/* Waiting for a migration entry to go away                               */
/* ---------------------------------------------------------------------- */

/*
 * One wait queue for all migration entries (like the kernel's hashed page
 * wait queues, with a single bucket): a futex word bumped after every change
 * of a migration entry.  A waiter takes a ticket *before* its last look at
 * the entry, so a change made after that look also changes the word and the
 * futex wait returns at once (all accesses are seq_cst).
 */
static struct {
	_Atomic uint32_t seq;
	_Atomic int waiters;
} migration_wq;

/* Threads sleeping (or about to sleep) on a migration entry: for tests. */
unsigned int migration_waiters(void)
{
	return (unsigned int)atomic_load(&migration_wq.waiters);
}

void migration_entry_wake(void)
{
	atomic_fetch_add(&migration_wq.seq, 1);
	if (atomic_load(&migration_wq.waiters))
		syscall(SYS_futex, (uint32_t *)&migration_wq.seq, FUTEX_WAKE_PRIVATE,
			INT_MAX, NULL, NULL, 0);
}

/* Called with mmap_lock held for read; returns with it dropped. */
static void migration_entry_wait(struct host_mm *mm, _Atomic uint64_t *ptep,
				 uint64_t entry)
{
	uint32_t ticket;
	bool still;

	lockdep_assert_held_read(&mm->mmap_lock);
	atomic_fetch_add(&migration_wq.waiters, 1);
	ticket = atomic_load(&migration_wq.seq);
	/* ptep is valid while mmap_lock is held: look before dropping it. */
	still = atomic_load(ptep) == entry;
	up_read(&mm->mmap_lock);
	if (still)
		syscall(SYS_futex, (uint32_t *)&migration_wq.seq, FUTEX_WAIT_PRIVATE,
			ticket, NULL, NULL, 0);
	atomic_fetch_sub(&migration_wq.waiters, 1);
	mm_stat_inc(mm, MM_MIGRATION_WAITS);
}

/* ---------------------------------------------------------------------- */
/* 4 KiB faults                                                           */
/* ---------------------------------------------------------------------- */

/*
 * Under page_table_lock, before installing a 4 KiB pte in a VM_THP VMA: the
 * pmd must not be (or have become) a THP; mark it as a table.
 */
static bool pmd_allows_ptes(struct host_mm *mm, struct host_vma *vma,
			    unsigned long hva)
{
	_Atomic uint64_t *pmdp;
	uint64_t pmd;

	lockdep_assert_held(&mm->page_table_lock);
	if (!(vma_flags(vma) & VM_THP))
		return true;
	pmdp = vma_pmd(vma, hva);
	pmd = pte_get(pmdp);
	if (pmd_huge(pmd))
		return false;
	if (!pmd)
		pte_set(pmdp, HPTE_TABLE);
	return true;
}

/* pte none: the zero frame for a read, a new frame for a write. */
static int do_anonymous_page(struct host_mm *mm, struct host_vma *vma,
			     unsigned long hva, _Atomic uint64_t *ptep, bool write)
{
	struct page *page = pfn_to_page(zero_pfn);
	uint64_t entry = mk_pte(zero_pfn, HPTE_PRESENT | HPTE_YOUNG);

	lockdep_assert_held(&mm->mmap_lock);
	if (write) {
		page = alloc_anon_page();
		if (!page)
			return -ENOMEM;
		entry = mk_pte(page_to_pfn(page), HPTE_PRESENT | HPTE_PERM);
	}
	spin_lock(&mm->page_table_lock);
	if (!pte_none(pte_get(ptep)) || !pmd_allows_ptes(mm, vma, hva)) {
		spin_unlock(&mm->page_table_lock);
		if (write)
			put_page(page);
		return FAULT_AGAIN;
	}
	if (!write)
		get_page(page);		/* the zero frame: the pte's reference */
	atomic_fetch_add(&page->mapcount, 1);
	pte_set(ptep, entry);
	spin_unlock(&mm->page_table_lock);
	return 0;
}

/* Swap entry: bring the contents back into a new frame (no notifier). */
static int do_swap_page(struct host_mm *mm, _Atomic uint64_t *ptep,
			uint64_t swp, bool write)
{
	unsigned long slot = HPTE_PFN(swp);
	struct page *page;

	lockdep_assert_held(&mm->mmap_lock);
	page = alloc_anon_page();
	if (!page)
		return -ENOMEM;
	spin_lock(&mm->page_table_lock);
	if (pte_get(ptep) != swp) {
		spin_unlock(&mm->page_table_lock);
		put_page(page);
		return FAULT_AGAIN;
	}
	/* The slot stays ours while the pte names it: copy under the lock. */
	swap_read_slot(slot, page_to_pfn(page));
	atomic_store(&page->mapcount, 1);
	pte_set(ptep, mk_pte(page_to_pfn(page), HPTE_PRESENT | HPTE_YOUNG |
			     (write ? HPTE_WRITE | HPTE_DIRTY : 0)));
	spin_unlock(&mm->page_table_lock);
	swap_free_slot(slot);
	mm_stat_inc(mm, MM_SWAPINS);
	return 0;
}

/* A frame that a write must not reuse in place. */
static bool page_needs_cow(unsigned long pfn)
{
	struct page *p = pfn_to_page(pfn);

	return pfn == zero_pfn || (atomic_load(&p->flags) & PG_ksm) ||
	       atomic_load(&p->mapcount) > 1;
}

/*
 * Write to a present read-only pte of a writable VMA: make it writable in
 * place if the frame is exclusively ours (no notifier: same pfn, more
 * permission), else copy it and switch the pte to the copy, which changes the
 * pfn under secondary MMUs: invalidate_range_start/_end around the switch.
 */
static int do_wp_page(struct host_mm *mm, unsigned long hva,
		      _Atomic uint64_t *ptep, uint64_t orig)
{
	struct mmu_notifier_range range;
	struct page *old, *new;
	bool done = false;
	uint64_t pte;

	lockdep_assert_held(&mm->mmap_lock);
	spin_lock(&mm->page_table_lock);
	pte = pte_get(ptep);
	if (!pte_same_page(pte, orig)) {
		spin_unlock(&mm->page_table_lock);
		return FAULT_AGAIN;
	}
	if (!page_needs_cow(HPTE_PFN(pte))) {
		pte_set(ptep, pte | HPTE_PERM);
		spin_unlock(&mm->page_table_lock);
		return 0;
	}
	old = pfn_to_page(HPTE_PFN(pte));
	get_page(old);		/* the source stays ours while we copy it */
	spin_unlock(&mm->page_table_lock);

	new = alloc_anon_page();
	if (!new) {
		put_page(old);
		return -ENOMEM;
	}
	if (page_to_pfn(old) != zero_pfn)
		frame_copy(page_to_pfn(new), page_to_pfn(old));

	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, mm, hva & PAGE_MASK,
				(hva & PAGE_MASK) + PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	spin_lock(&mm->page_table_lock);
	if (pte_same_page(pte_get(ptep), orig)) {
		atomic_store(&new->mapcount, 1);
		atomic_fetch_sub(&old->mapcount, 1);
		pte_set(ptep, mk_pte(page_to_pfn(new), HPTE_PRESENT | HPTE_PERM));
		done = true;
	}
	spin_unlock(&mm->page_table_lock);
	mmu_notifier_invalidate_range_end(&range);

	if (done) {
		put_page(old);		/* the old pte's reference */
		mm_stat_inc(mm, MM_COW);
	} else {
		put_page(new);
	}
	put_page(old);
	return done ? 0 : FAULT_AGAIN;
}

/* Present, and the access is allowed: just mark it young (and dirty). */
static void touch_entry(struct host_mm *mm, _Atomic uint64_t *ptep,
			uint64_t orig, uint64_t bits)
{
	uint64_t cur;

	lockdep_assert_held(&mm->mmap_lock);
	if ((orig & bits) == bits)
		return;
	spin_lock(&mm->page_table_lock);
	cur = pte_get(ptep);
	if (pte_same_page(cur, orig))
		pte_set(ptep, cur | bits);
	spin_unlock(&mm->page_table_lock);
}

static int fault_pte(struct host_mm *mm, struct host_vma *vma,
		     unsigned long hva, unsigned int foll)
{
	_Atomic uint64_t *ptep = vma_pte(vma, hva);
	bool write = foll & FOLL_WRITE;
	uint64_t pte = pte_get(ptep);

	lockdep_assert_held(&mm->mmap_lock);
	if (pte_none(pte))
		return do_anonymous_page(mm, vma, hva, ptep, write);
	if (pte_is_migration(pte)) {
		if (foll & FOLL_NOWAIT)
			return -EAGAIN;
		migration_entry_wait(mm, ptep, pte);
		return FAULT_RETRY;
	}
	if (pte_is_swap(pte))
		return do_swap_page(mm, ptep, pte, write);
	if (write && !(pte & HPTE_WRITE))
		return do_wp_page(mm, hva, ptep, pte);
	touch_entry(mm, ptep, pte, write ? HPTE_AD : HPTE_YOUNG);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Huge faults                                                            */
/* ---------------------------------------------------------------------- */

#define FAULT_FALLBACK 3	/* not a THP case: do a 4 KiB fault */

static int fault_thp(struct host_mm *mm, struct host_vma *vma,
		     unsigned long hva, bool write)
{
	unsigned long haddr = ALIGN_DOWN(hva, PMD_SIZE);
	_Atomic uint64_t *pmdp = vma_pmd(vma, haddr);
	uint64_t pmd = pte_get(pmdp);
	struct page *head;

	lockdep_assert_held(&mm->mmap_lock);
	if (pmd_huge(pmd)) {
		/* A THP is never shared: a write just gets the permission. */
		touch_entry(mm, pmdp, pmd, write ? HPTE_PERM : HPTE_YOUNG);
		return 0;
	}
	if (pmd || haddr < vma->start || haddr + PMD_SIZE > vma->end)
		return FAULT_FALLBACK;
	head = alloc_thp_block();
	if (!head)
		return FAULT_FALLBACK;
	spin_lock(&mm->page_table_lock);
	if (pte_get(pmdp)) {
		spin_unlock(&mm->page_table_lock);
		for (unsigned int i = 0; i < PTRS_PER_PMD; i++)
			put_page(head + i);
		return FAULT_AGAIN;
	}
	for (unsigned int i = 0; i < PTRS_PER_PMD; i++)
		atomic_store(&head[i].mapcount, 1);
	pte_set(pmdp, mk_pte(page_to_pfn(head), HPTE_PRESENT | HPTE_HUGE | HPTE_YOUNG |
			     ((vma_flags(vma) & VM_WRITE) ? HPTE_WRITE : 0) |
			     (write ? HPTE_DIRTY : 0)));
	spin_unlock(&mm->page_table_lock);
	mm_stat_inc(mm, MM_THP_FAULTS);
	return 0;
}

/* A 1 GiB mapping is always present; only write permission can be missing. */
static int fault_gigantic(struct host_mm *mm, struct host_vma *vma,
			  unsigned long hva, bool write)
{
	_Atomic uint64_t *pudp = vma_pud(vma, hva);
	uint64_t pud = pte_get(pudp);

	lockdep_assert_held(&mm->mmap_lock);
	if (!pmd_huge(pud))
		return -EFAULT;
	touch_entry(mm, pudp, pud, write ? HPTE_PERM : HPTE_YOUNG);
	return 0;
}

/*
 * Make @hva present in @vma (writable for FOLL_WRITE).  Called with mmap_lock
 * held for read.  Returns 0 (lock held), -errno (lock held: -EFAULT for a
 * write to a read-only VMA, -ENOMEM, -EAGAIN for FOLL_NOWAIT on a migration
 * entry) or FAULT_RETRY (lock dropped after waiting for a migration entry).
 */
int handle_mm_fault(struct host_mm *mm, struct host_vma *vma,
		    unsigned long hva, unsigned int foll)
{
	bool write = foll & FOLL_WRITE;
	unsigned int flags = vma_flags(vma);
	int ret;

	lockdep_assert_held_read(&mm->mmap_lock);
	if (write && !(flags & VM_WRITE))
		return -EFAULT;
	mm_stat_inc(mm, MM_FAULTS);
	if (flags & VM_HUGE_1G)
		return fault_gigantic(mm, vma, hva, write);
	do {
		ret = FAULT_FALLBACK;
		if (flags & VM_THP)
			ret = fault_thp(mm, vma, hva, write);
		if (ret == FAULT_FALLBACK)
			ret = fault_pte(mm, vma, hva, foll);
	} while (ret == FAULT_AGAIN);
	return ret;
}

int host_swap_in(struct host_mm *mm, unsigned long hva)
{
	struct host_vma *vma;
	int ret;

	down_read(&mm->mmap_lock);
	for (;;) {
		vma = find_vma(mm, hva);
		if (!vma) {
			ret = -EFAULT;
			break;
		}
		if (vma_flags(vma) & VM_HUGE_1G) {
			ret = -EINVAL;
			break;
		}
		if (!pte_is_swap(pte_get(vma_pte(vma, hva)))) {
			ret = -ENOENT;
			break;
		}
		ret = handle_mm_fault(mm, vma, hva, 0);
		if (ret != FAULT_RETRY)
			break;
		down_read(&mm->mmap_lock);
	}
	up_read(&mm->mmap_lock);
	return ret;
}
