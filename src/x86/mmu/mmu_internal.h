/* SPDX-License-Identifier: MIT */
/*
 * Types private to the x86 MMU files: shadow (TDP) page headers, the x86
 * parts of struct kvm and struct kvm_vcpu, the page-fault descriptor.
 */
#ifndef UKVM_X86_MMU_MMU_INTERNAL_H
#define UKVM_X86_MMU_MMU_INTERNAL_H

#include <urcu/list.h>

#include "kvm/kvm_arch.h"
#include "kvm/kvm_host.h"
#include "sync/sync.h"
#include "ukvm/ukvm.h"
#include "x86/mmu/spte.h"

#define PT64_ROOT_MAX_LEVEL	5
#define KVM_MAX_HUGEPAGE_LEVEL	PG_LEVEL_1G
#define KVM_NR_PAGE_SIZES	3
#define KVM_MMU_HASH_SHIFT	10
#define KVM_NUM_MMU_PAGES	(1 << KVM_MMU_HASH_SHIFT)

union kvm_mmu_page_role {
	uint32_t word;
	struct {
		unsigned int level:4;
		unsigned int invalid:1;
		unsigned int as_id:2;
		unsigned int ad_disabled:1;
		unsigned int direct:1;	/* TDP pages: the gfn is fixed by the position */
	};
};

struct kvm_lpage_info;

/*
 * The header of one page-table page.  Direct (TDP) pages: their 512 SPTEs
 * live in a host frame.  Indirect shadow pages (role.direct == 0, shadow.c):
 * @gfn is the guest page-table page they shadow; ukvm keeps no SPTEs for
 * them (spt is NULL), only the protection and unsync state of that gfn.
 */
struct kvm_mmu_page {
	struct cds_list_head link;	/* roots: tdp_mmu_roots; indirect: active_mmu_pages */
	union kvm_mmu_page_role role;
	gfn_t gfn;			/* first gfn this table maps / the gfn shadowed */
	unsigned long spt_pfn;		/* the table's frame */
	_Atomic uint64_t *spt;		/* its SPTEs */
	_Atomic int tdp_mmu_root_count;	/* roots only */
	bool tdp_mmu_scheduled_root_to_zap;
	struct kvm *kvm;
	struct rcu_head rcu_head;

	/* Indirect pages only; the hash and the list change under mmu_lock (write). */
	struct kvm_mmu_page *hash_next;	/* kvm->arch.mmu_page_hash[] chain */
	/*
	 * 0 -> 1 with mmu_lock held for read or write and mmu_unsync_pages_lock
	 * (mmu_try_to_unsync_pages()), 1 -> 0 only with mmu_lock held for
	 * write (sync): a reader holding mmu_lock never sees it go back to 0.
	 */
	_Atomic bool unsync;
	/* The disallow_lpage counters account_shadowed() raised (2M, 1G). */
	struct kvm_lpage_info *lpage_disallowed[KVM_NR_PAGE_SIZES - 1];
};

/* Pre-allocated objects, filled before taking mmu_lock (may sleep). */
#define KVM_MMU_CACHE_CAPACITY 16
struct kvm_mmu_memory_cache {
	int nobjs;
	void *objects[KVM_MMU_CACHE_CAPACITY];
};

/* x86's part of struct kvm (kvm->arch). */
struct kvm_arch {
	struct cds_list_head tdp_mmu_roots;	/* RCU; changed under tdp_mmu_pages_lock */
	spinlock_t tdp_mmu_pages_lock;
	/*
	 * Serialises marking indirect shadow pages unsync when mmu_lock is held
	 * only for read: a TDP MMU fault that makes writable a gfn shadowed
	 * for a nested guest (mmu_try_to_unsync_pages()).  Taken only inside
	 * mmu_lock, only when a page really needs to be unsynced, re-checked
	 * under it.  A leaf.
	 */
	spinlock_t mmu_unsync_pages_lock;
	raw_spinlock_t tsc_write_lock;
	uint64_t last_tsc_write, last_tsc_nsec, last_tsc_offset;
	struct { struct mutex hv_lock; uint64_t hv_guest_os_id; uint64_t hv_hypercall; } hyperv;
	struct { struct mutex xen_lock; uint64_t shared_info_gfn; } xen;

	bool ad_enabled;		/* EPT A/D bits (else access tracking) */
	int root_level;			/* 4 or 5 */
	gfn_t max_gfn;			/* kvm_mmu_max_gfn() */
	enum ukvm_dirty_mode dirty_mode;
	bool big_mmu_lock;		/* legacy: faults take mmu_lock for write */
	bool dirty_log_ro_reads;	/* read faults in logged slots map read-only */
	uint64_t mmio_gen_wraps;
	_Atomic unsigned long apic_access_hva;	/* internal APIC-access slot's page */

	/*
	 * Indirect shadow pages (shadow.c), keyed by the gfn they shadow.  The
	 * hash, the list and the count change only under mmu_lock (write);
	 * the count is also read without it (fast exits).
	 */
	struct kvm_mmu_page *mmu_page_hash[KVM_NUM_MMU_PAGES];
	struct cds_list_head active_mmu_pages;
	_Atomic long indirect_shadow_pages;

	/*
	 * Counters on lines of their own: pages[] changes on every fault of
	 * every vCPU, and the fields above are read on every fault (the
	 * kernel keeps them apart too: kvm->stat is not in kvm->arch).
	 */
	struct {
		_Atomic long pages[KVM_NR_PAGE_SIZES];	/* leaf SPTEs per size */
		_Atomic unsigned long tables_allocated, tables_freed;
		_Atomic unsigned long roots_allocated, zaps, wrprot_flushes;
		_Atomic unsigned long mmio_sptes, huge_splits;
		_Atomic unsigned long pi_posted, pi_notifications, pi_wakeups;
		/*
		 * Indirect shadow pages (shadow.c, nested.c): created
		 * (mmu_cache_miss), zapped, marked unsync (unsync_pages, and
		 * the KVM gauge mmu_unsync: unsync now), synced again,
		 * mmu_unsync_pages_lock acquisitions, re-checks that found the
		 * page already unsync, refused unsyncs (mapped read-only), and
		 * emulated writes to shadowed gfns.
		 */
		_Atomic unsigned long mmu_cache_miss, mmu_shadow_zapped;
		_Atomic unsigned long unsync_pages, mmu_syncs;
		_Atomic long mmu_unsync;
		_Atomic unsigned long mmu_unsync_locked, mmu_unsync_recheck;
		_Atomic unsigned long mmu_unsync_refused, mmu_pte_write;
	} stat __attribute__((aligned(64)));
};

/* Per-slot huge-page bookkeeping (slot->arch). */
struct kvm_lpage_info {
	int disallow_lpage;
};
struct kvm_arch_memory_slot {
	struct kvm_lpage_info *lpage_info[KVM_NR_PAGE_SIZES - 1];	/* 2M, 1G */
};

struct kvm_mmu {
	struct kvm_mmu_page *root;	/* referenced (tdp_mmu_root_count) */
	unsigned long root_pfn;
};

/* x86's part of struct kvm_vcpu (vcpu->arch). */
/*
 * The VT-d posted-interrupt descriptor (vmx/posted_intr.h): written by the
 * "IOMMU" (any thread posting a device interrupt) and by the vCPU.  ON says a
 * notification is outstanding; NV and NDST say where it goes: the CPU the
 * vCPU runs on, or — while it is blocked — the wakeup vector of the CPU whose
 * wakeup_vcpus_on_cpu list holds it.
 */
#define POSTED_INTR_VECTOR		0xf2
#define POSTED_INTR_WAKEUP_VECTOR	0xf1
struct pi_desc {
	_Atomic uint64_t pir[4];	/* posted vectors */
	_Atomic bool on;		/* outstanding notification */
	_Atomic bool sn;		/* suppress notification */
	_Atomic uint8_t nv;		/* notification vector */
	_Atomic int ndst;		/* notification destination CPU */
};

struct kvm_vcpu_arch {
	struct kvm_mmu mmu;
	struct kvm_mmu_memory_cache mmu_page_header_cache;
	struct kvm_mmu_memory_cache mmu_shadow_page_cache;
	uint64_t tsc_offset;
	uint64_t apic_base;
	uint64_t hv_vp_index;
	struct pi_desc pi_desc;
	/* On per_cpu(wakeup_vcpus_on_cpu, pi_wakeup_cpu) while blocked. */
	struct cds_list_head pi_wakeup_list;
	int pi_wakeup_cpu;		/* -1: on no list; owned by the vCPU */
	_Atomic unsigned long pi_vectors_delivered;
};

static inline struct kvm_arch *kvm_x86(struct kvm *kvm)
{
	return (struct kvm_arch *)kvm->arch;
}

static inline struct kvm_vcpu_arch *vcpu_x86(struct kvm_vcpu *vcpu)
{
	return (struct kvm_vcpu_arch *)vcpu->arch;
}

static inline struct kvm_mmu_page *sptep_to_sp(_Atomic uint64_t *sptep)
{
	unsigned long pfn = (unsigned long)(((uint8_t *)sptep - host_mem_base) >> PAGE_SHIFT);

	return atomic_load_explicit(&pfn_to_page(pfn)->private, memory_order_acquire);
}

static inline _Atomic uint64_t *spte_to_child_pt(uint64_t spte, int level)
{
	if (!is_shadow_present_pte(spte) || is_last_spte(spte, level))
		return NULL;
	return pfn_to_virt(spte_to_pfn(spte));
}

static inline struct kvm_mmu_page *root_to_sp(struct kvm_mmu *mmu)
{
	return mmu->root;
}

/*
 * A page's role as one word.  kvm_tdp_mmu_invalidate_all_roots() sets
 * role.invalid of a root with an atomic store under mmu_lock (write) while
 * lockless walkers (the CPU, the fast page fault, Dirty-bit harvesting)
 * read the root's level: they must read the word atomically too.
 */
static inline union kvm_mmu_page_role sp_role(const struct kvm_mmu_page *sp)
{
	return (union kvm_mmu_page_role){
		.word = __atomic_load_n(&sp->role.word, __ATOMIC_RELAXED) };
}

/* Results of the page-fault handlers (arch/x86/kvm/mmu/mmu_internal.h). */
enum {
	RET_PF_CONTINUE = 0,
	RET_PF_RETRY,
	RET_PF_EMULATE,
	RET_PF_WRITE_PROTECTED,
	RET_PF_INVALID,
	RET_PF_FIXED,
	RET_PF_SPURIOUS,
};

/* EPT violation qualification bits (our own encoding of the access). */
#define PFERR_PRESENT_MASK	(1u << 0)	/* some permission was present */
#define PFERR_WRITE_MASK	(1u << 1)
#define PFERR_FETCH_MASK	(1u << 2)
#define PFERR_RSVD_MASK		(1u << 3)

struct kvm_page_fault {
	gpa_t addr;
	uint32_t error_code;
	bool prefetch;
	bool exec, write, present, rsvd;
	gfn_t gfn;
	struct kvm_memory_slot *slot;
	int max_level, req_level, goal_level;
	bool huge_page_disallowed;
	unsigned long mmu_seq;
	kvm_pfn_t pfn;
	unsigned long hva;
	bool map_writable;
	struct page *refcounted_page;
};

/* mmu.c */
int kvm_mmu_topup_memory_caches(struct kvm_vcpu *vcpu);
void kvm_mmu_free_memory_caches(struct kvm_vcpu *vcpu);
void *kvm_mmu_memory_cache_alloc(struct kvm_mmu_memory_cache *mc);
int kvm_mmu_max_mapping_level(struct kvm *kvm, const struct kvm_memory_slot *slot,
			      gfn_t gfn, int max_level);
void kvm_mmu_hugepage_adjust(struct kvm_vcpu *vcpu, struct kvm_page_fault *fault);

/* hugepage.c */
int kvm_alloc_lpage_info(struct kvm *kvm, struct kvm_memory_slot *slot);
void kvm_free_lpage_info(struct kvm_memory_slot *slot);
bool lpage_disallowed(const struct kvm_memory_slot *slot, gfn_t gfn, int level);
void kvm_mmu_gfn_disallow_lpage(struct kvm *kvm, const struct kvm_memory_slot *slot,
				gfn_t gfn, struct kvm_lpage_info **li);
void kvm_mmu_gfn_allow_lpage(struct kvm *kvm, struct kvm_lpage_info **li);

/* shadow.c: indirect shadow pages (nested EPT) and unsync */
void kvm_mmu_init_shadow(struct kvm *kvm);
struct kvm_mmu_page *kvm_mmu_find_shadow_page(struct kvm *kvm, int as_id,
					      gfn_t gfn, int level);
struct kvm_mmu_page *kvm_mmu_get_shadow_page(struct kvm *kvm,
					     const struct kvm_memory_slot *slot,
					     gfn_t gfn, int level,
					     struct kvm_mmu_page **prealloc,
					     bool *flush);
void kvm_mmu_sync_page(struct kvm *kvm, struct kvm_mmu_page *sp);
void kvm_mmu_zap_shadow_page(struct kvm *kvm, struct kvm_mmu_page *sp);
void kvm_mmu_zap_shadow_range(struct kvm *kvm, int as_id, gfn_t start, gfn_t end);
void kvm_mmu_zap_all_shadow(struct kvm *kvm);
bool kvm_gfn_is_write_tracked(struct kvm *kvm, int as_id, gfn_t gfn);
int mmu_try_to_unsync_pages(struct kvm *kvm, const struct kvm_memory_slot *slot,
			    gfn_t gfn, int level, bool prefetch);
bool kvm_mmu_range_has_sync_shadow_page(struct kvm *kvm, int as_id, gfn_t gfn,
					uint64_t nr_pages);

#endif /* UKVM_X86_MMU_MMU_INTERNAL_H */
