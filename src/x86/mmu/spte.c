// SPDX-License-Identifier: MIT
/* SPTE construction and classification (kvm-brief.md 5.1, 5.2, 5.4, 5.6). */
#include "kvm/kvm_host.h"
#include "sync/bug.h"
#include "x86/mmu/mmu_internal.h"

bool spte_needs_atomic_update(uint64_t spte)
{
	/* The fast page fault may make it writable. */
	if (!is_writable_pte(spte) && is_mmu_writable_spte(spte))
		return true;
	/* Access tracking: aging marks it, the fast path restores it. */
	if (!spte_ad_enabled(spte))
		return true;
	/* The CPU may set Dirty on the next write. */
	return is_writable_pte(spte) && !(spte & VMX_EPT_DIRTY_BIT);
}

bool spte_writable_invariants_hold(uint64_t spte)
{
	if (is_mmu_writable_spte(spte) && !is_host_writable_spte(spte))
		return false;
	if (is_writable_pte(spte) && !is_mmu_writable_spte(spte))
		return false;
	return true;
}

/*
 * Aging of an SPTE: with A/D bits clear Accessed; without, make it
 * non-present to the CPU (clear RWX, keep R and X in the saved bits).  W is
 * not saved: the SPTE is also dirty-tracked, a write goes through the fast
 * path's write-protection case.  Idempotent.
 */
uint64_t mark_spte_for_access_track(uint64_t spte)
{
	if (spte_ad_enabled(spte))
		return spte & ~VMX_EPT_ACCESS_BIT;
	if (is_access_track_spte(spte))
		return spte;
	/* Only an SPTE the fast path can make writable again may lose W. */
	UKVM_INVARIANT(!is_writable_pte(spte) || is_mmu_writable_spte(spte),
		       "access-tracking a writable SPTE the fast path cannot restore");
	spte |= (spte & SHADOW_ACC_TRACK_SAVED_BITS_MASK)
		<< SHADOW_ACC_TRACK_SAVED_BITS_SHIFT;
	return spte & ~VMX_EPT_RWX_MASK;
}

uint64_t restore_acc_track_spte(uint64_t spte)
{
	uint64_t saved = (spte >> SHADOW_ACC_TRACK_SAVED_BITS_SHIFT) &
			 SHADOW_ACC_TRACK_SAVED_BITS_MASK;

	spte &= ~SHADOW_ACC_TRACK_SAVED_MASK;
	return spte | saved;
}

bool make_spte(struct kvm_vcpu *vcpu, int level, unsigned int pte_access,
	       gfn_t gfn, kvm_pfn_t pfn, uint64_t old_spte, bool prefetch,
	       bool host_writable, bool ad_enabled,
	       const struct kvm_memory_slot *slot, uint64_t *new_spte)
{
	uint64_t spte = SPTE_MMU_PRESENT_MASK | VMX_EPT_READABLE_MASK |
			VMX_EPT_MT_WB | (pfn << 12);
	bool wrprot = false;

	spte |= ad_enabled ? SPTE_TDP_AD_ENABLED : SPTE_TDP_AD_DISABLED;
	if (ad_enabled && !prefetch)
		spte |= VMX_EPT_ACCESS_BIT;
	if (pte_access & ACC_EXEC_MASK)
		spte |= VMX_EPT_EXECUTABLE_MASK;
	if (level > PG_LEVEL_4K)
		spte |= PT_PAGE_SIZE_MASK;

	/* Host-writable is fixed now and never changes on a present SPTE. */
	if (host_writable)
		spte |= EPT_SPTE_HOST_WRITABLE;
	else
		pte_access &= ~ACC_WRITE_MASK;

	if (pte_access & ACC_WRITE_MASK) {
		spte |= VMX_EPT_WRITABLE_MASK | EPT_SPTE_MMU_WRITABLE;
		/*
		 * Writable: indirect shadow pages of the gfn must go unsync
		 * first.  If the old SPTE was a writable leaf they already are
		 * (a present leaf never changes pfn in place), skip the lookup.
		 * If they cannot, map it read-only *and* not MMU-writable, so
		 * that the fast page fault cannot make it writable either.
		 */
		if ((!is_shadow_present_pte(old_spte) || !is_last_spte(old_spte, level) ||
		     !is_writable_pte(old_spte)) &&
		    mmu_try_to_unsync_pages(vcpu->kvm, slot, gfn, level, prefetch)) {
			wrprot = true;
			spte &= ~(VMX_EPT_WRITABLE_MASK | EPT_SPTE_MMU_WRITABLE);
		} else if (ad_enabled) {
			/* Being mapped for a write (or writable anyway): pre-dirty it. */
			spte |= VMX_EPT_DIRTY_BIT;
		}
	}

	if (prefetch && !ad_enabled)
		spte = mark_spte_for_access_track(spte);

	/* A writable SPTE in a logged slot: the page may be written now. */
	if ((spte & VMX_EPT_WRITABLE_MASK) && slot &&
	    kvm_slot_dirty_track_enabled(slot)) {
		/* kvm_mmu_hugepage_adjust() keeps logged slots at 4 KiB. */
		UKVM_INVARIANT(level == PG_LEVEL_4K,
			       "writable huge SPTE in a dirty-logged slot");
		mark_page_dirty_in_slot(vcpu->kvm, slot, gfn);
	}

	UKVM_INVARIANT(spte_writable_invariants_hold(spte), "make_spte %#llx",
		       (unsigned long long)spte);
	*new_spte = spte;
	return wrprot;
}

uint64_t make_nonleaf_spte(kvm_pfn_t child_table_pfn, bool ad_enabled)
{
	uint64_t spte = SPTE_MMU_PRESENT_MASK | VMX_EPT_RWX_MASK |
			(child_table_pfn << 12);

	return spte | (ad_enabled ? VMX_EPT_ACCESS_BIT : SPTE_TDP_AD_DISABLED);
}

uint64_t make_mmio_spte(uint64_t gen, gfn_t gfn)
{
	uint64_t spte = SPTE_MMIO_VALUE | (gfn << 12);

	gen &= MMIO_SPTE_GEN_MASK;
	spte |= (gen & ((1ULL << MMIO_SPTE_GEN_LOW_BITS) - 1)) << MMIO_SPTE_GEN_LOW_SHIFT;
	spte |= (gen >> MMIO_SPTE_GEN_LOW_BITS) << MMIO_SPTE_GEN_HIGH_SHIFT;
	return spte;
}

uint64_t get_mmio_spte_gen(uint64_t spte)
{
	uint64_t low = (spte >> MMIO_SPTE_GEN_LOW_SHIFT) &
		       ((1ULL << MMIO_SPTE_GEN_LOW_BITS) - 1);
	uint64_t high = (spte >> MMIO_SPTE_GEN_HIGH_SHIFT) &
			((1ULL << MMIO_SPTE_GEN_HIGH_BITS) - 1);

	return low | (high << MMIO_SPTE_GEN_LOW_BITS);
}

gfn_t get_mmio_spte_gfn(uint64_t spte)
{
	return (spte & ((1ULL << MMIO_SPTE_GEN_HIGH_SHIFT) - 1) & ~0xfffULL) >> 12;
}

uint64_t make_huge_page_split_spte(uint64_t huge_spte, int huge_level, int index)
{
	int child_level = huge_level - 1;
	uint64_t child = huge_spte & ~SPTE_BASE_ADDR_MASK;
	kvm_pfn_t pfn = spte_to_pfn(huge_spte) +
			(kvm_pfn_t)index * KVM_PAGES_PER_HPAGE(child_level);

	if (child_level == PG_LEVEL_4K)
		child &= ~PT_PAGE_SIZE_MASK;
	return child | (pfn << 12);
}
