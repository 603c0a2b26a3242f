// SPDX-License-Identifier: MIT
/*
 * The fast page fault (locking.rst section 2, kvm-brief.md 5.3): fixing a
 * fault without mmu_lock, inside RCU, with one cmpxchg on a direct TDP leaf.
 *
 * Two cases: the SPTE was marked for access tracking (restore R/X), or it is
 * write-protected for dirty logging but MMU-writable (set W, log the gfn).
 * The cmpxchg detects any concurrent change; the ABA problem of locking.rst
 * cannot occur because a TDP SPTE's gfn is fixed by its position (direct
 * pages only), and a huge SPTE in a dirty-logged slot is never made writable
 * here (it must be split by the slow path).
 */
#include "sync/bug.h"
#include "sync/race.h"
#include "x86/mmu/mmu.h"
#include "x86/mmu/tdp_mmu.h"

#define FAST_PF_MAX_RETRIES 4

static bool page_fault_can_be_fast(struct kvm *kvm, struct kvm_page_fault *fault)
{
	/* A reserved-bit fault is an MMIO SPTE with a stale generation. */
	if (fault->rsvd)
		return false;
	/* Not present: only an access-tracked SPTE can be fixed here. */
	if (!fault->present)
		return !kvm_x86(kvm)->ad_enabled;
	/* Present: only a write-protection fault. */
	return fault->write;
}

static bool is_access_allowed(struct kvm_page_fault *fault, uint64_t spte)
{
	if (fault->exec)
		return is_executable_pte(spte);
	if (fault->write)
		return is_writable_pte(spte);
	return spte & VMX_EPT_READABLE_MASK;
}

/* The cmpxchg; logs the gfn when it newly grants write access. */
static bool fast_pf_fix_direct_spte(struct kvm_vcpu *vcpu,
				    struct kvm_page_fault *fault,
				    _Atomic uint64_t *sptep, uint64_t old_spte,
				    uint64_t new_spte)
{
	if (!atomic_compare_exchange_strong(sptep, &old_spte, new_spte))
		return false;
	/* Appendix B 12: W granted here is always logged. */
	if (is_writable_pte(new_spte) && !is_writable_pte(old_spte))
		mark_page_dirty_in_slot(vcpu->kvm, fault->slot, fault->gfn);
	return true;
}

int fast_page_fault(struct kvm_vcpu *vcpu, struct kvm_page_fault *fault)
{
	struct kvm *kvm = vcpu->kvm;
	int ret = RET_PF_INVALID, retry = 0;

	if (!page_fault_can_be_fast(kvm, fault) || !fault->slot)
		return RET_PF_INVALID;

	ukvm_rcu_read_lock();
	for (;;) {
		_Atomic uint64_t *sptep;
		uint64_t spte, new_spte;
		int level = 0;

		sptep = kvm_tdp_mmu_fast_pf_get_last_sptep(vcpu, fault->gfn, &spte, &level);
		if (!sptep || !is_shadow_present_pte(spte) || !is_last_spte(spte, level))
			break;
		/* Appendix B 12: only direct (TDP) pages reach this point. */
		UKVM_INVARIANT(sptep_to_sp(sptep) != NULL,
			       "fast page fault on a table without a header");
		RACE_POINT(FAST_PF_AFTER_READ);

		/* Already fixed, by someone else or a stale TLB entry. */
		if (is_access_allowed(fault, spte)) {
			ret = RET_PF_SPURIOUS;
			break;
		}
		new_spte = spte;
		if (is_access_track_spte(spte))
			new_spte = restore_acc_track_spte(new_spte);
		if (fault->write && is_mmu_writable_spte(spte)) {
			new_spte |= VMX_EPT_WRITABLE_MASK;
			/* A huge page in a logged slot must be split first. */
			if (level > PG_LEVEL_4K &&
			    kvm_slot_dirty_track_enabled(fault->slot))
				break;
		}
		/* Nothing the fast path can give: take the slow path. */
		if (new_spte == spte || !is_access_allowed(fault, new_spte))
			break;
		if (fast_pf_fix_direct_spte(vcpu, fault, sptep, spte, new_spte)) {
			ret = RET_PF_FIXED;
			/* Per vCPU: a VM-wide counter would bounce between CPUs. */
			vcpu_stat_inc(vcpu, pf_fast);
			break;
		}
		if (++retry > FAST_PF_MAX_RETRIES)
			break;
	}
	ukvm_rcu_read_unlock();
	return ret;
}
