/* SPDX-License-Identifier: MIT */
/*
 * SPTEs: the 64-bit entries of KVM's secondary (EPT) page tables, with the
 * x86 bit layout of kvm-brief.md 5.1.
 *
 *   bit  0-2   R, W, X (hardware permissions; "present" to the CPU if any)
 *   bit  3-5   memory type (WB = 6 in leaves)
 *   bit  7     page size (a leaf above 4 KiB)
 *   bit  8     Accessed (A/D enabled SPTEs, set by the CPU)
 *   bit  9     Dirty (A/D enabled SPTEs, set by the CPU on a write)
 *   bit 11     SPTE_MMU_PRESENT: backed by memory in KVM's view
 *   bit 12-51  pfn (of the frame, or of the next table)
 *   bit 52-53  A/D type: 0 enabled, 1 disabled (access tracking)
 *   bit 54,56  saved R and X of an access-tracked SPTE
 *   bit 57     Host-writable (the host mapping and the memslot allow writes)
 *   bit 58     MMU-writable (KVM allows writes; W may be set locklessly)
 *   bit 63     "suppress #VE": SHADOW_NONPRESENT_VALUE, the empty entry
 *
 * Writable states of a present leaf (H M W): 111 writable; 110 write-
 * protected for dirty logging / access tracking (the fast path may set W);
 * 100 write-protected because KVM shadows the gfn (an indirect shadow page
 * that is not unsync: only the slow path, mmu_lock held, may lift it);
 * 000 not writable for the host or the memslot.  MMU-writable implies
 * Host-writable, W implies MMU-writable.
 *
 * No global masks: whether an SPTE uses A/D bits is read from the SPTE
 * itself, so VMs with and without A/D bits coexist.
 */
#ifndef UKVM_X86_MMU_SPTE_H
#define UKVM_X86_MMU_SPTE_H

#include <stdbool.h>
#include <stdint.h>

#include "kvm/kvm_types.h"

#define PT64_ROOT_4LEVEL	4
#define PT64_ROOT_5LEVEL	5
#define PG_LEVEL_4K		1
#define PG_LEVEL_2M		2
#define PG_LEVEL_1G		3
#define SPTE_ENT_PER_PAGE	512
#define SPTE_LEVEL_BITS		9

#define BIT_ULL(n)		(1ULL << (n))

#define VMX_EPT_READABLE_MASK		BIT_ULL(0)
#define VMX_EPT_WRITABLE_MASK		BIT_ULL(1)
#define VMX_EPT_EXECUTABLE_MASK		BIT_ULL(2)
#define VMX_EPT_RWX_MASK		(BIT_ULL(0) | BIT_ULL(1) | BIT_ULL(2))
#define VMX_EPT_MT_WB			(6ULL << 3)
#define PT_PAGE_SIZE_MASK		BIT_ULL(7)
#define VMX_EPT_ACCESS_BIT		BIT_ULL(8)
#define VMX_EPT_DIRTY_BIT		BIT_ULL(9)
#define SPTE_MMU_PRESENT_MASK		BIT_ULL(11)
#define SPTE_BASE_ADDR_MASK		(((1ULL << 52) - 1) & ~0xfffULL)

#define SPTE_TDP_AD_SHIFT		52
#define SPTE_TDP_AD_MASK		(3ULL << SPTE_TDP_AD_SHIFT)
#define SPTE_TDP_AD_ENABLED		(0ULL << SPTE_TDP_AD_SHIFT)
#define SPTE_TDP_AD_DISABLED		(1ULL << SPTE_TDP_AD_SHIFT)
#define SPTE_TDP_AD_WRPROT_ONLY		(2ULL << SPTE_TDP_AD_SHIFT)

#define SHADOW_ACC_TRACK_SAVED_BITS_MASK (VMX_EPT_READABLE_MASK | VMX_EPT_EXECUTABLE_MASK)
#define SHADOW_ACC_TRACK_SAVED_BITS_SHIFT 54
#define SHADOW_ACC_TRACK_SAVED_MASK \
	(SHADOW_ACC_TRACK_SAVED_BITS_MASK << SHADOW_ACC_TRACK_SAVED_BITS_SHIFT)

#define EPT_SPTE_HOST_WRITABLE		BIT_ULL(57)
#define EPT_SPTE_MMU_WRITABLE		BIT_ULL(58)

#define SHADOW_NONPRESENT_VALUE		BIT_ULL(63)
/* A thread without exclusive mmu_lock is mid-update here: hands off. */
#define FROZEN_SPTE			(SHADOW_NONPRESENT_VALUE | 0x5a0ULL)

/*
 * MMIO SPTEs: the EPT misconfiguration pattern W|X without R, not
 * MMU-present, carrying the gfn and the low 19 bits of the memslot
 * generation (bits 3-10 and 52-62).
 */
#define SPTE_MMIO_VALUE			(VMX_EPT_WRITABLE_MASK | VMX_EPT_EXECUTABLE_MASK)
#define SPTE_MMIO_MASK			VMX_EPT_RWX_MASK
#define MMIO_SPTE_GEN_LOW_SHIFT		3
#define MMIO_SPTE_GEN_LOW_BITS		8
#define MMIO_SPTE_GEN_HIGH_SHIFT	52
#define MMIO_SPTE_GEN_HIGH_BITS		11
#define MMIO_SPTE_GEN_BITS		19
#define MMIO_SPTE_GEN_MASK		((1ULL << MMIO_SPTE_GEN_BITS) - 1)

/* Permissions a fault needs (the EPT violation's access type). */
#define ACC_EXEC_MASK	1
#define ACC_WRITE_MASK	2
#define ACC_USER_MASK	4
#define ACC_ALL		(ACC_EXEC_MASK | ACC_WRITE_MASK | ACC_USER_MASK)

static inline uint64_t spte_index_shift(int level)
{
	return 12 + (uint64_t)(level - 1) * SPTE_LEVEL_BITS;
}

static inline uint64_t KVM_PAGES_PER_HPAGE(int level)
{
	return 1ULL << ((level - 1) * SPTE_LEVEL_BITS);
}

static inline int spte_index(gfn_t gfn, int level)
{
	return (int)((gfn >> ((level - 1) * SPTE_LEVEL_BITS)) & (SPTE_ENT_PER_PAGE - 1));
}

static inline bool is_mmio_spte(uint64_t spte)
{
	return (spte & SPTE_MMIO_MASK) == SPTE_MMIO_VALUE &&
	       !(spte & SPTE_MMU_PRESENT_MASK);
}

static inline bool is_frozen_spte(uint64_t spte)
{
	return spte == FROZEN_SPTE;
}

/* Present in KVM's view (an access-tracked SPTE is, though not to the CPU). */
static inline bool is_shadow_present_pte(uint64_t spte)
{
	return spte & SPTE_MMU_PRESENT_MASK;
}

static inline bool is_large_pte(uint64_t spte)
{
	return spte & PT_PAGE_SIZE_MASK;
}

static inline bool is_last_spte(uint64_t spte, int level)
{
	return level == PG_LEVEL_4K || is_large_pte(spte);
}

static inline kvm_pfn_t spte_to_pfn(uint64_t spte)
{
	return (spte & SPTE_BASE_ADDR_MASK) >> 12;
}

static inline bool spte_ad_enabled(uint64_t spte)
{
	return (spte & SPTE_TDP_AD_MASK) != SPTE_TDP_AD_DISABLED;
}

static inline bool spte_ad_need_write_protect(uint64_t spte)
{
	return (spte & SPTE_TDP_AD_MASK) != SPTE_TDP_AD_ENABLED;
}

static inline bool is_writable_pte(uint64_t spte)
{
	return spte & VMX_EPT_WRITABLE_MASK;
}

static inline bool is_executable_pte(uint64_t spte)
{
	return spte & VMX_EPT_EXECUTABLE_MASK;
}

static inline bool is_mmu_writable_spte(uint64_t spte)
{
	return spte & EPT_SPTE_MMU_WRITABLE;
}

static inline bool is_host_writable_spte(uint64_t spte)
{
	return spte & EPT_SPTE_HOST_WRITABLE;
}

/* Access-tracked: MMU-present, A/D disabled, RWX cleared by aging. */
static inline bool is_access_track_spte(uint64_t spte)
{
	return !spte_ad_enabled(spte) && !(spte & VMX_EPT_RWX_MASK);
}

static inline bool is_accessed_spte(uint64_t spte)
{
	return spte_ad_enabled(spte) ? (spte & VMX_EPT_ACCESS_BIT) :
				       !is_access_track_spte(spte);
}

static inline bool is_dirty_spte(uint64_t spte)
{
	return spte_ad_enabled(spte) ? (spte & VMX_EPT_DIRTY_BIT) :
				       is_writable_pte(spte);
}

/*
 * Must an update of this (present, leaf) SPTE be an atomic RMW?  Yes if a
 * bit of it can change without mmu_lock: W (fast page fault, if MMU-writable
 * but not writable), the access-tracking state (A/D disabled: lockless aging
 * and the fast path), Dirty (the CPU, if writable and not yet dirty).
 * Accessed alone does not count (61d65f2d): stale aging data is tolerated.
 */
bool spte_needs_atomic_update(uint64_t spte);

/* The writable-state invariant above (Appendix B invariant 8). */
bool spte_writable_invariants_hold(uint64_t spte);

uint64_t mark_spte_for_access_track(uint64_t spte);
uint64_t restore_acc_track_spte(uint64_t spte);

struct kvm_mmu_page;
struct kvm_memory_slot;
struct kvm_vcpu;

/*
 * Build a leaf SPTE, with mmu_lock held.  @pte_access: the permissions the
 * guest may get; @host_writable: the host mapping is writable; @ad_enabled:
 * the VM uses A/D bits.  Returns true ("wrprot") if write access was
 * allowed but could not be granted because the gfn's indirect shadow pages
 * could not go unsync (mmu_try_to_unsync_pages()).  Marks the gfn dirty
 * when it creates a writable SPTE in a dirty-logged slot.
 */
bool make_spte(struct kvm_vcpu *vcpu, int level, unsigned int pte_access,
	       gfn_t gfn, kvm_pfn_t pfn, uint64_t old_spte, bool prefetch,
	       bool host_writable, bool ad_enabled,
	       const struct kvm_memory_slot *slot, uint64_t *new_spte);
uint64_t make_nonleaf_spte(kvm_pfn_t child_table_pfn, bool ad_enabled);
uint64_t make_mmio_spte(uint64_t gen, gfn_t gfn);
uint64_t get_mmio_spte_gen(uint64_t spte);
gfn_t get_mmio_spte_gfn(uint64_t spte);
/* Split a huge leaf: the SPTE of child @index one level down. */
uint64_t make_huge_page_split_spte(uint64_t huge_spte, int huge_level, int index);

#endif /* UKVM_X86_MMU_SPTE_H */
