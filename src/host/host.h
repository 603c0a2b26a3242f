/* SPDX-License-Identifier: MIT */
/*
 * src/host: the host kernel's side of ukvm — the "primary MMU".
 *
 *  - Physical memory: one anonymous mapping populated at start, cut into
 *    4 KiB frames with refcounts; a pfn is a frame index.  Page-table pages
 *    of KVM's secondary MMU come from here too (alloc_page()).
 *  - The VMM address space (struct host_mm): VMAs over a simulated hva range,
 *    a page table hva -> pte under mm->page_table_lock, mm->mmap_lock.
 *  - get_user_pages (hva_to_pfn()): faults a frame in, takes a reference,
 *    may sleep, waits while a page is under migration or swap-out.
 *  - mm operations that change hva -> pfn (munmap, madvise(DONTNEED), page
 *    migration, swap out/in, KSM merge + copy-on-write, mprotect, THP split),
 *    each bracketed by MMU-notifier invalidate_range_start/_end exactly where
 *    Linux brackets them; aging (clear_flush_young/clear_young/test_young);
 *    release at teardown.
 *  - Simulated host CPUs: online/offline under cpu_hotplug_lock with
 *    cpuhp-state callbacks, syscore suspend/resume, a cpufreq-like
 *    transition notifier chain, and static keys.
 *
 * src/host never includes src/kvm: KVM registers callbacks (struct
 * mmu_notifier_ops, cpuhp states, syscore ops, cpufreq notifiers).
 *
 * Frame contents are only ever accessed with relaxed 64-bit atomics (like
 * the CPU's own word accesses), so a stale translation that writes into a
 * freed or migrated frame loses data without being undefined behaviour.
 */
#ifndef UKVM_HOST_HOST_H
#define UKVM_HOST_HOST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <urcu/list.h>

#include "sync/sync.h"

#define PAGE_SHIFT	12
#define PAGE_SIZE	(1UL << PAGE_SHIFT)
#define PAGE_MASK	(~(PAGE_SIZE - 1))
#define PMD_SHIFT	21
#define PMD_SIZE	(1UL << PMD_SHIFT)	/* 2 MiB: a THP */
#define PUD_SHIFT	30
#define PUD_SIZE	(1UL << PUD_SHIFT)	/* 1 GiB */
#define PTRS_PER_PMD	512

#define INVALID_PFN	(~0UL)

/* ---------------------------------------------------------------------- */
/* Host configuration and lifetime                                        */
/* ---------------------------------------------------------------------- */

struct host_config {
	size_t mem_bytes;	/* physical memory: rounded down to 2 MiB, >= 4 MiB */
	unsigned int nr_cpus;	/* simulated host CPUs, all online at start (0: 4) */
	size_t swap_bytes;	/* swap space (0: swap_out() fails with -ENOSPC) */
	bool poison_frames;	/* debug: poison freed frames, check on reuse */
};

/*
 * Create the host (physical memory, the default VMM mm, CPUs).  Registers the
 * calling thread with RCU if it is not yet.  -EBUSY if already initialised,
 * -EINVAL for a bad configuration, -ENOMEM.
 */
int host_init(const struct host_config *cfg);
/*
 * Tear everything down; the default mm's notifiers get ->release first.  No
 * other thread may use the host any more.  cpuhp states, syscore ops,
 * cpufreq notifiers and static keys registered by the caller stay registered
 * (their owners unregister them, like a module's exit).
 */
void host_exit(void);
bool host_initialized(void);

/* ---------------------------------------------------------------------- */
/* Physical memory                                                        */
/* ---------------------------------------------------------------------- */

enum page_flags {
	PG_reserved	= 1u << 0,	/* never allocated (the zero frame) */
	PG_kernel	= 1u << 1,	/* owned by the kernel (page tables) */
	PG_anon		= 1u << 2,	/* user memory mapped in some mm */
	PG_ksm		= 1u << 3,	/* merged by KSM: shared read-only */
	PG_young	= 1u << 4,	/* accessed since last aging (host side) */
	PG_dirty	= 1u << 5,
	PG_huge		= 1u << 6,	/* part of a 2 MiB-contiguous block */
	PG_poisoned	= 1u << 7,	/* free and poisoned (debug) */
};

/*
 * Every frame has its own refcount, also inside a 2 MiB or 1 GiB mapping
 * (there are no compound pages): a huge mapping holds one reference and one
 * mapcount on each frame it maps.  A pte that is a migration entry keeps the
 * mapping's reference and mapcount on the old frame until the migration or
 * swap-out that installed it completes.
 */
struct page {
	_Atomic int refcount;		/* 0: free */
	_Atomic int mapcount;		/* hva ptes mapping this frame */
	_Atomic uint32_t flags;		/* enum page_flags */
	void *_Atomic private;		/* owner data (KVM: struct kvm_mmu_page) */
};

extern struct page *host_pages;		/* one per frame */
extern uint8_t *host_mem_base;		/* frame 0 */
extern unsigned long host_nr_frames;	/* usable frames + the zero frame */
extern unsigned long zero_pfn;		/* the shared zero frame (the last one) */

static inline struct page *pfn_to_page(unsigned long pfn) { return &host_pages[pfn]; }
static inline unsigned long page_to_pfn(const struct page *p) { return (unsigned long)(p - host_pages); }
static inline _Atomic uint64_t *pfn_to_virt(unsigned long pfn)
{
	return (_Atomic uint64_t *)(host_mem_base + (pfn << PAGE_SHIFT));
}
static inline bool pfn_valid(unsigned long pfn) { return pfn < host_nr_frames; }

/*
 * Allocate one zeroed frame (refcount 1, PG_kernel: for page tables and other
 * kernel data).  NULL when memory is exhausted (counted in alloc_failures).
 * Never sleeps: callable under spinlocks and rwlocks.
 */
struct page *alloc_page(void);
/* Allocate a zeroed, 2 MiB-aligned block of 512 frames (each refcount 1,
 * PG_huge); NULL if no free block is left (4 KiB frames may still be). */
struct page *alloc_huge_block(void);
static inline void get_page(struct page *p) { atomic_fetch_add(&p->refcount, 1); }
bool get_page_unless_zero(struct page *p);
/* Drop a reference; the frame is freed (poisoned if configured) at zero. */
void put_page(struct page *p);
static inline int page_count(struct page *p) { return atomic_load(&p->refcount); }

/* Frame contents, word-wise relaxed atomics (see the header comment). */
void frame_zero(unsigned long pfn);
void frame_copy(unsigned long dst_pfn, unsigned long src_pfn);
bool frame_equal(unsigned long a_pfn, unsigned long b_pfn);
/* Compare-and-exchange of one word (byte writes of host_access()). */
static inline bool frame_cmpxchg64(unsigned long pfn, unsigned int off,
				   uint64_t *old, uint64_t new)
{
	return atomic_compare_exchange_weak_explicit(&pfn_to_virt(pfn)[off >> 3],
			old, new, memory_order_relaxed, memory_order_relaxed);
}
static inline uint64_t frame_read64(unsigned long pfn, unsigned int off)
{
	return atomic_load_explicit(&pfn_to_virt(pfn)[off >> 3], memory_order_relaxed);
}
static inline void frame_write64(unsigned long pfn, unsigned int off, uint64_t v)
{
	atomic_store_explicit(&pfn_to_virt(pfn)[off >> 3], v, memory_order_relaxed);
}

struct host_mem_stats {
	unsigned long frames_total;	/* usable frames (the zero frame excluded) */
	unsigned long frames_free, frames_kernel, frames_anon;
	unsigned long huge_blocks_free;
	unsigned long alloc_failures;	/* 4 KiB and 1 GiB requests that failed */
	unsigned long huge_alloc_failures;	/* 2 MiB blocks (THP falls back) */
	unsigned long poison_violations;	/* writes into freed frames detected */
	unsigned long swap_slots_used, swap_slots_total;
};
void host_mem_get_stats(struct host_mem_stats *st);

/* ---------------------------------------------------------------------- */
/* The VMM address space                                                  */
/* ---------------------------------------------------------------------- */

/* Host pte bits (both for 4 KiB ptes and for pmd entries). */
#define HPTE_PRESENT	(1ULL << 0)
#define HPTE_WRITE	(1ULL << 1)
#define HPTE_DIRTY	(1ULL << 2)
#define HPTE_YOUNG	(1ULL << 3)
#define HPTE_HUGE	(1ULL << 4)	/* pmd entry maps 2 MiB */
#define HPTE_SWAP	(1ULL << 5)	/* !present: pfn field is a swap slot */
#define HPTE_MIGRATION	(1ULL << 6)	/* !present: page being migrated/swapped; wait */
#define HPTE_TABLE	(1ULL << 7)	/* pmd entry: 4 KiB ptes in use below it */
#define HPTE_PFN_SHIFT	12
#define HPTE_PFN(pte)	((unsigned long)((pte) >> HPTE_PFN_SHIFT))

#define VM_READ		(1u << 0)
#define VM_WRITE	(1u << 1)
#define VM_THP		(1u << 2)	/* backed by 2 MiB blocks when possible:
					 * the first fault (read or write) in
					 * an untouched 2 MiB range inside the
					 * VMA maps a whole zeroed block */
#define VM_HUGE_1G	(1u << 3)	/* backed by 1 GiB-contiguous memory */

/* host_mmap() hands out hvas upwards from here, never reusing them. */
#define HOST_MMAP_BASE	0x7f0000000000UL
#define HOST_MMAP_LIMIT	0x7ff000000000UL

struct host_vma;
struct mmu_notifier;

struct host_mm {
	struct rw_semaphore mmap_lock;		/* class "&mm->mmap_lock" */
	spinlock_t page_table_lock;		/* class "&mm->page_table_lock" */
	/* VMAs (sorted, RCU-published array for lockless lookups) */
	struct host_vma_array *_Atomic vmas;
	unsigned long next_hva;			/* bump allocator under mmap_lock */
	/* MMU notifiers, an RCU list walked under mmu_notifier_srcu */
	struct cds_list_head notifiers;
	struct mutex notifier_lock;		/* registration (not in the fault path) */
	bool released;				/* under notifier_lock */
	_Atomic unsigned long nr_invalidations;	/* statistics */
	_Atomic unsigned long stat[16];		/* see host_mm_get_stats() */
};

/* The VMM process's mm, created by host_init(). */
extern struct host_mm *host_current_mm;

/* More address spaces (tests, several VMMs).  destroy = release + unmap. */
struct host_mm *host_mm_create(void);
void host_mm_destroy(struct host_mm *mm);
/* Like exit_mmap()'s first step: every registered notifier's ->release,
 * once; later notifier calls do not happen any more. */
void host_mm_release(struct host_mm *mm);

/*
 * mmap/munmap of the VMM.  Returns the hva, or a negative errno cast to
 * unsigned long (test with IS_ERR_HVA()).  Anonymous private memory,
 * zero-filled on first touch; flags: VM_READ|VM_WRITE, VM_THP, VM_HUGE_1G.
 * Every mapping is 2 MiB-aligned (1 GiB for VM_HUGE_1G, whose size is
 * rounded up to 1 GiB and whose memory is reserved at once, like hugetlbfs).
 * host_munmap() takes any page-aligned range (VMAs are split; ranges without
 * a mapping are ignored) but only whole VM_HUGE_1G mappings (-EINVAL).
 */
unsigned long host_mmap(struct host_mm *mm, size_t size, unsigned int flags);
int host_munmap(struct host_mm *mm, unsigned long hva, size_t size);
#define IS_ERR_HVA(h)	((h) >= (unsigned long)-4095)

/* The VMM reading/writing its own memory (faults in, COW, swap-in, waits). */
int host_access(struct host_mm *mm, unsigned long hva, void *buf, size_t len,
		bool write);

/* ---------------------------------------------------------------------- */
/* get_user_pages                                                         */
/* ---------------------------------------------------------------------- */

#define FOLL_WRITE	(1u << 0)	/* need a writable mapping (COW if needed) */
#define FOLL_NOWAIT	(1u << 1)	/* don't wait for migration: -EAGAIN */
#define FOLL_FAST_ONLY	(1u << 2)	/* lockless walk only: -EAGAIN on miss */

/*
 * hva_to_pfn(): get the frame backing @hva with a reference (put_page() it).
 * Lockless fast path first (like get_user_pages_fast), then the slow path
 * under mmap_lock (read) that faults the page in.  May sleep.
 * *@writable reports whether the host mapping is writable (for a read
 * request it is true if the pte was already writable).
 * Errors: -EFAULT (no VMA, or write to a read-only VMA), -ENOMEM,
 * -EAGAIN (FOLL_NOWAIT/FOLL_FAST_ONLY).
 */
int hva_to_pfn(struct host_mm *mm, unsigned long hva, unsigned int foll,
	       unsigned long *pfn, bool *writable);

/*
 * host_mapping_level(): 1 (4 KiB), 2 (2 MiB) or 3 (1 GiB) for the mapping of
 * @hva right now, read locklessly (like host_pfn_mapping_level()): only
 * meaningful if the caller re-validates against an invalidation afterwards.
 */
int host_mapping_level(struct host_mm *mm, unsigned long hva);

/* ---------------------------------------------------------------------- */
/* MMU notifiers                                                          */
/* ---------------------------------------------------------------------- */

enum mmu_notifier_event {
	MMU_NOTIFY_UNMAP,		/* munmap */
	MMU_NOTIFY_CLEAR,		/* madvise(DONTNEED), COW, swap out */
	MMU_NOTIFY_PROTECTION_VMA,	/* mprotect */
	MMU_NOTIFY_PROTECTION_PAGE,	/* KSM write-protect */
	MMU_NOTIFY_MIGRATE,		/* page migration */
	MMU_NOTIFY_SPLIT,		/* THP split */
	MMU_NOTIFY_RELEASE,
};

struct mmu_notifier_range {
	struct host_mm *mm;
	unsigned long start, end;	/* [start, end) */
	enum mmu_notifier_event event;
	bool blockable;
};

struct mmu_notifier_ops {
	void (*release)(struct mmu_notifier *mn, struct host_mm *mm);
	int (*clear_flush_young)(struct mmu_notifier *mn, struct host_mm *mm,
				 unsigned long start, unsigned long end);
	int (*clear_young)(struct mmu_notifier *mn, struct host_mm *mm,
			   unsigned long start, unsigned long end);
	int (*test_young)(struct mmu_notifier *mn, struct host_mm *mm,
			  unsigned long address);
	int (*invalidate_range_start)(struct mmu_notifier *mn,
				      const struct mmu_notifier_range *range);
	void (*invalidate_range_end)(struct mmu_notifier *mn,
				     const struct mmu_notifier_range *range);
};

struct mmu_notifier {
	struct cds_list_head list;
	const struct mmu_notifier_ops *ops;
	struct host_mm *mm;
	bool on_list;			/* private: under mm->notifier_lock */
};

extern struct srcu_struct mmu_notifier_srcu;

int mmu_notifier_register(struct mmu_notifier *mn, struct host_mm *mm);
/* Calls ->release if the mm has not been released yet; waits for callers. */
void mmu_notifier_unregister(struct mmu_notifier *mn, struct host_mm *mm);

/* ---------------------------------------------------------------------- */
/* mm operations (host threads).  All return 0 or a negative errno:       */
/* -ENOENT nothing mapped there / not applicable, -EAGAIN page pinned or   */
/* busy, -ENOMEM, -ENOSPC (no swap), -EFAULT (no VMA), -EINVAL (bad        */
/* arguments, or a page operation on a VM_HUGE_1G mapping).  The page      */
/* operations (migrate, swap out, KSM) split a THP first and leave the     */
/* zero frame and KSM frames alone (-ENOENT).                              */
/* ---------------------------------------------------------------------- */

/* Under mmap_lock (read): may run concurrently with faults and migration. */
int host_madvise_dontneed(struct host_mm *mm, unsigned long hva, size_t len);
int host_migrate_page(struct host_mm *mm, unsigned long hva);
int host_swap_out(struct host_mm *mm, unsigned long hva);
/* -ENOENT if @hva does not hold a swap entry. */
int host_swap_in(struct host_mm *mm, unsigned long hva);
/*
 * Merge the page at @hva2 into the identical page at @hva1 (both RO after).
 * 0 if merged (or already the same frame); -EAGAIN if the contents differ
 * (both stay write-protected) or a page is pinned/busy.
 */
int host_ksm_merge(struct host_mm *mm, unsigned long hva1, unsigned long hva2);
/*
 * prot: VM_READ or VM_READ|VM_WRITE over whole pages; the range may span
 * several VMAs (splitting them) but no hole (-ENOMEM); VM_HUGE_1G mappings
 * only as a whole (-EINVAL).
 */
int host_mprotect(struct host_mm *mm, unsigned long hva, size_t len,
		  unsigned int prot);
/* Split the THP mapping @hva into 512 ptes (-ENOENT if there is none). */
int host_thp_split(struct host_mm *mm, unsigned long hva);
/*
 * Aging: returns the number of young 4 KiB pages in the range, a page being
 * young if its host pte (or huge entry) was young or a secondary MMU said so
 * (the notifiers are asked per present pte, per huge entry for THP/1 GiB).
 */
long host_clear_flush_young(struct host_mm *mm, unsigned long hva, size_t len);
long host_clear_young(struct host_mm *mm, unsigned long hva, size_t len);
long host_test_young(struct host_mm *mm, unsigned long hva, size_t len);

struct host_mm_stats {
	unsigned long faults, cow, swapins, swapouts, migrations, ksm_merges;
	unsigned long unmaps, mprotects, thp_splits, aging_passes;
	unsigned long migration_waits, pinned_aborts;
	unsigned long notifier_starts, notifier_ends;
	unsigned long thp_faults;	/* faults that mapped a 2 MiB block */
};
void host_mm_get_stats(struct host_mm *mm, struct host_mm_stats *st);

/* ---------------------------------------------------------------------- */
/* Simulated host CPUs, CPU hotplug, syscore, cpufreq, static keys         */
/* ---------------------------------------------------------------------- */

#define HOST_MAX_CPUS 64

unsigned int host_nr_cpus(void);
bool host_cpu_online(unsigned int cpu);
unsigned int host_num_online_cpus(void);

/*
 * cpuhp states: @startup runs for each online CPU (and for CPUs coming
 * online later), @teardown for each CPU going offline and on removal.
 * cpuhp_setup_state() takes cpus_read_lock() and cpuhp_state_mutex itself
 * and unwinds on a startup failure (teardown on the CPUs already done, then
 * the error is returned).  It returns the state (>= 0) for
 * cpuhp_remove_state(), or -ENOSPC / the startup error.  Either callback may
 * be NULL.  Callbacks run under cpu_hotplug_lock (read for setup/remove,
 * write for host_cpu_up/down); states run in setup order on up, reverse on
 * down.
 */
#define CPUHP_MAX_STATES 32
int cpuhp_setup_state(const char *name, int (*startup)(unsigned int cpu),
		      int (*teardown)(unsigned int cpu));
void cpuhp_remove_state(int state);

/*
 * Bring a CPU down/up: cpus_write_lock(), run the state callbacks, then (up)
 * the cpufreq transition notifiers, still under cpu_hotplug_lock.  -EINVAL
 * for a bad or already-offline/online CPU, -EBUSY for the last online CPU;
 * a failing startup aborts the online (the CPU stays offline, the states
 * already started are torn down) and its error is returned.
 */
int host_cpu_down(unsigned int cpu);
int host_cpu_up(unsigned int cpu);

struct syscore_ops {
	struct cds_list_head node;
	int (*suspend)(void);
	void (*resume)(void);
	void (*shutdown)(void);
};
void register_syscore_ops(struct syscore_ops *ops);
void unregister_syscore_ops(struct syscore_ops *ops);
/* Simulate suspend/resume: hotplug is blocked, the callbacks run on one CPU. */
int host_suspend_resume(void);

/* cpufreq-like transition notifiers (run with cpu_hotplug_lock held when
 * triggered by a CPU coming online, like the kernel's cpufreq). */
struct notifier_block {
	int (*notifier_call)(struct notifier_block *nb, unsigned long event,
			     void *data);
	struct notifier_block *next;
};
void cpufreq_register_transition_notifier(struct notifier_block *nb);
void cpufreq_unregister_transition_notifier(struct notifier_block *nb);
/* A frequency change on @cpu, from a host thread (takes cpus_read_lock):
 * CPUFREQ_PRECHANGE then CPUFREQ_POSTCHANGE, data a struct cpufreq_freqs. */
void host_cpufreq_transition(unsigned int cpu);
#define CPUFREQ_PRECHANGE	0
#define CPUFREQ_POSTCHANGE	1
struct cpufreq_freqs {
	unsigned int cpu;
	unsigned int old, new;		/* kHz */
};

/* Static keys: toggling one takes cpus_read_lock() and jump_label_mutex. */
struct static_key {
	_Atomic int enabled;
};
void static_key_slow_inc(struct static_key *key);
void static_key_slow_dec(struct static_key *key);
/* The same with cpu_hotplug_lock already held (asserted). */
void static_key_slow_inc_cpuslocked(struct static_key *key);
void static_key_slow_dec_cpuslocked(struct static_key *key);
static inline bool static_key_enabled(struct static_key *key)
{
	return atomic_load_explicit(&key->enabled, memory_order_relaxed) > 0;
}

#endif /* UKVM_HOST_HOST_H */
