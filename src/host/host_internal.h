/* SPDX-License-Identifier: MIT */
/*
 * Private to src/host: the VMA and page-table layout, pte helpers, and the
 * functions the mm operations share.
 *
 * Page table.  Every VMA points at a struct host_pgtable, a flat array of
 * _Atomic uint64_t ptes (one per 4 KiB page) plus, for VM_THP, one pmd entry
 * per 2 MiB and, for VM_HUGE_1G, one pud entry per 1 GiB.  When a VMA is
 * split (munmap/mprotect of a sub-range) the pieces share the same
 * host_pgtable, so a lockless reader that still holds the old VMA object
 * reads the very same entries as everybody else: there is one copy of each
 * pte, ever.  The table is freed when its last VMA is freed (after RCU).
 *
 * Entries are written only under mm->page_table_lock, with seq_cst stores;
 * lockless readers (get_user_pages_fast, host_mapping_level) use acquire
 * loads.  The one exception is the "hardware" access/dirty assist of
 * host_access() (pte_mkyoung_lockless()), a compare-and-exchange that only
 * adds HPTE_YOUNG/HPTE_DIRTY to the exact present entry it read; locked code
 * therefore compares entries with pte_same_page(), which ignores those bits.
 *
 * pmd states (VM_THP): 0 = nothing mapped in the 2 MiB range, which is then
 * eligible for a THP (all 512 ptes are none); HPTE_PRESENT|HPTE_HUGE = a THP;
 * HPTE_TABLE = the 4 KiB ptes are in use (never becomes huge again).
 */
#ifndef UKVM_HOST_HOST_INTERNAL_H
#define UKVM_HOST_HOST_INTERNAL_H

#include <stdio.h>

#include "host/host.h"

#define HPTE_AD		(HPTE_YOUNG | HPTE_DIRTY)
#define HPTE_PERM	(HPTE_WRITE | HPTE_DIRTY | HPTE_YOUNG)
#define PAGES_PER_PUD	(PUD_SIZE >> PAGE_SHIFT)

#define ALIGN_UP(x, a)		(((x) + (a) - 1) & ~((a) - 1))
#define ALIGN_DOWN(x, a)	((x) & ~((a) - 1))

#ifndef container_of
#define container_of(ptr, type, member)                                       \
	((type *)((char *)(ptr) - offsetof(type, member)))
#endif

/* A broken internal contract: say so once per site, count it, go on. */
extern _Atomic unsigned long host_warnings;
#define HOST_WARN_ON(c)                                                       \
	({                                                                    \
		bool __w = !!(c);                                             \
		if (__builtin_expect(__w, 0)) {                               \
			static _Atomic int __once;                            \
			atomic_fetch_add(&host_warnings, 1);                  \
			if (!atomic_exchange(&__once, 1))                     \
				fprintf(stderr, "ukvm: host: WARNING at %s:%d: %s\n", \
					__FILE__, __LINE__, #c);              \
		}                                                             \
		__w;                                                          \
	})

/* ---------------------------------------------------------------------- */
/* ptes                                                                   */
/* ---------------------------------------------------------------------- */

static inline uint64_t mk_pte(unsigned long pfn, uint64_t bits)
{
	return ((uint64_t)pfn << HPTE_PFN_SHIFT) | bits;
}

static inline bool pte_present(uint64_t pte) { return pte & HPTE_PRESENT; }
static inline bool pte_none(uint64_t pte) { return pte == 0; }
static inline bool pte_is_migration(uint64_t pte)
{
	return !(pte & HPTE_PRESENT) && (pte & HPTE_MIGRATION);
}
static inline bool pte_is_swap(uint64_t pte)
{
	return !(pte & HPTE_PRESENT) && (pte & HPTE_SWAP);
}
static inline bool pmd_huge(uint64_t pmd)
{
	return (pmd & (HPTE_PRESENT | HPTE_HUGE)) == (HPTE_PRESENT | HPTE_HUGE);
}
/* Same mapping, ignoring the access/dirty bits the lockless assist may add. */
static inline bool pte_same_page(uint64_t a, uint64_t b)
{
	return ((a ^ b) & ~HPTE_AD) == 0;
}

static inline uint64_t pte_get(_Atomic uint64_t *ptep)
{
	return atomic_load_explicit(ptep, memory_order_acquire);
}
/* Under page_table_lock (not asserted here: the callers do). */
static inline void pte_set(_Atomic uint64_t *ptep, uint64_t v)
{
	atomic_store_explicit(ptep, v, memory_order_seq_cst);
}

/* ---------------------------------------------------------------------- */
/* VMAs                                                                   */
/* ---------------------------------------------------------------------- */

struct host_pgtable {
	_Atomic int users;		/* VMAs pointing here */
	unsigned long base;		/* hva of ptes[0]; 2 MiB (1 GiB) aligned */
	unsigned long size;
	_Atomic uint64_t *ptes;		/* NULL for VM_HUGE_1G */
	_Atomic uint64_t *pmds;		/* VM_THP only */
	_Atomic uint64_t *puds;		/* VM_HUGE_1G only */
};

struct host_vma {
	unsigned long start, end;	/* [start, end), immutable once published */
	_Atomic unsigned int vm_flags;	/* VM_*; changed under mmap_lock (write) */
	struct host_pgtable *pt;
	struct rcu_head rcu;
};

struct host_vma_array {
	unsigned int nr;
	struct rcu_head rcu;
	struct host_vma *vma[];		/* sorted by start, non-overlapping */
};

static inline unsigned int vma_flags(struct host_vma *vma)
{
	return atomic_load_explicit(&vma->vm_flags, memory_order_relaxed);
}
static inline _Atomic uint64_t *vma_pte(struct host_vma *vma, unsigned long hva)
{
	return &vma->pt->ptes[(hva - vma->pt->base) >> PAGE_SHIFT];
}
static inline _Atomic uint64_t *vma_pmd(struct host_vma *vma, unsigned long hva)
{
	return &vma->pt->pmds[(hva - vma->pt->base) >> PMD_SHIFT];
}
static inline _Atomic uint64_t *vma_pud(struct host_vma *vma, unsigned long hva)
{
	return &vma->pt->puds[(hva - vma->pt->base) >> PUD_SHIFT];
}

/* mm.c */
struct host_vma_array *vma_array_alloc(unsigned int nr);
struct host_vma_array *mm_vmas(struct host_mm *mm);
int munmap_locked(struct host_mm *mm, unsigned long start, unsigned long end);
struct host_vma *find_vma(struct host_mm *mm, unsigned long hva);
struct host_vma *find_vma_rcu(struct host_mm *mm, unsigned long hva);
struct host_vma *find_vma_intersection(struct host_mm *mm, unsigned long start,
				       unsigned long end);
int vma_split(struct host_mm *mm, unsigned long addr);
void zap_vma_range(struct host_mm *mm, struct host_vma *vma,
		   unsigned long start, unsigned long end);
int thp_split_pmd(struct host_mm *mm, struct host_vma *vma, unsigned long hva);
void thp_split_edges(struct host_mm *mm, struct host_vma *vma,
		     unsigned long start, unsigned long end);
/* The entry that maps @hva (pud, huge pmd or pte) and the pfn it gives. */
_Atomic uint64_t *lookup_entry(struct host_vma *vma, unsigned long hva,
			       uint64_t *entry, unsigned long *pfn);

/* ---------------------------------------------------------------------- */
/* Statistics of an mm                                                    */
/* ---------------------------------------------------------------------- */

enum host_mm_stat {
	MM_FAULTS, MM_COW, MM_SWAPINS, MM_SWAPOUTS, MM_MIGRATIONS, MM_KSM_MERGES,
	MM_UNMAPS, MM_MPROTECTS, MM_THP_SPLITS, MM_AGING_PASSES,
	MM_MIGRATION_WAITS, MM_PINNED_ABORTS, MM_NOTIFIER_STARTS,
	MM_NOTIFIER_ENDS, MM_THP_FAULTS, MM_NR_STATS
};

static inline void mm_stat_inc(struct host_mm *mm, enum host_mm_stat i)
{
	atomic_fetch_add_explicit(&mm->stat[i], 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------------- */
/* Physical memory (physmem.c)                                            */
/* ---------------------------------------------------------------------- */

int physmem_init(size_t mem_bytes, bool poison);
void physmem_exit(void);
/* A zeroed anonymous frame (PG_anon), refcount 1, mapcount 0. */
struct page *alloc_anon_page(void);
/* A zeroed 2 MiB block for a THP (PG_anon|PG_huge). */
struct page *alloc_thp_block(void);
/* A zeroed 1 GiB-aligned run of frames (PG_anon|PG_huge) or NULL. */
struct page *alloc_gigantic(void);
/* Drop one reference and one mapcount of each of @nr frames from @pfn. */
void unmap_put_frames(unsigned long pfn, unsigned long nr);
/* The zone's 4 KiB free list, in batches (physmem.c, zone->lock). */
unsigned int zone_take_frames(uint32_t *out, unsigned int n);
void zone_give_frames(const uint32_t *pfns, unsigned int n);

/* Per-CPU free-frame caches (pcp.c, &pcp->lock). */
void pcp_init(void);
unsigned long pcp_take_frame(void);
void pcp_give_frame(unsigned long pfn);
unsigned long pcp_drain_all(void);
void pcp_account(bool kernel, bool anon, long delta);
void pcp_get_stats(unsigned long *cached, long *kernel, long *anon);

/* ---------------------------------------------------------------------- */
/* Faults and get_user_pages (fault.c, gup.c)                             */
/* ---------------------------------------------------------------------- */

/*
 * handle_mm_fault() results besides 0 and -errno.  FAULT_RETRY: mmap_lock
 * was dropped (a migration entry was waited for); take it again and look the
 * VMA up again.
 */
#define FAULT_RETRY	1
#define FAULT_AGAIN	2	/* internal: raced, look at the entry again */

#define FOLL_TOUCH	(1u << 8)	/* internal: set young/dirty like a CPU */

int handle_mm_fault(struct host_mm *mm, struct host_vma *vma,
		    unsigned long hva, unsigned int foll);
void migration_entry_wake(void);
unsigned int migration_waiters(void);

/* ---------------------------------------------------------------------- */
/* Isolating a page behind a migration entry (migrate.c)                  */
/* ---------------------------------------------------------------------- */

struct isolation {
	_Atomic uint64_t *ptep;
	uint64_t orig;			/* the present pte that was replaced */
	uint64_t entry;			/* the migration entry */
	struct page *page;		/* holds our reference */
};

int isolate_page(struct host_mm *mm, struct host_vma *vma, unsigned long hva,
		 enum mmu_notifier_event event, struct isolation *iso);
bool isolation_finish(struct host_mm *mm, struct isolation *iso,
		      uint64_t newpte, struct page *newpage);
void isolation_abort(struct host_mm *mm, struct isolation *iso);
struct host_vma *vma_for_page_op(struct host_mm *mm, unsigned long hva, int *err);

/* ---------------------------------------------------------------------- */
/* Swap (swap.c)                                                          */
/* ---------------------------------------------------------------------- */

int swap_init(size_t swap_bytes);
void swap_exit(void);
void swap_free_slot(unsigned long slot);
void swap_read_slot(unsigned long slot, unsigned long pfn);
void swap_get_stats(unsigned long *used, unsigned long *total);

/* ---------------------------------------------------------------------- */
/* MMU notifiers (mmu_notifier.c)                                         */
/* ---------------------------------------------------------------------- */

int mmu_notifier_global_init(void);
void mmu_notifier_global_exit(void);

static inline void mmu_notifier_range_init(struct mmu_notifier_range *r,
		enum mmu_notifier_event event, struct host_mm *mm,
		unsigned long start, unsigned long end)
{
	r->mm = mm;
	r->start = start;
	r->end = end;
	r->event = event;
	r->blockable = true;
}
void mmu_notifier_invalidate_range_start(struct mmu_notifier_range *r);
void mmu_notifier_invalidate_range_end(struct mmu_notifier_range *r);
int mmu_notifier_clear_flush_young(struct host_mm *mm, unsigned long start,
				   unsigned long end);
int mmu_notifier_clear_young(struct host_mm *mm, unsigned long start,
			     unsigned long end);
int mmu_notifier_test_young(struct host_mm *mm, unsigned long address);

/* ---------------------------------------------------------------------- */
/* CPUs (cpu.c)                                                           */
/* ---------------------------------------------------------------------- */

int host_cpus_init(unsigned int nr_cpus);
void host_cpus_exit(void);

#endif /* UKVM_HOST_HOST_INTERNAL_H */
