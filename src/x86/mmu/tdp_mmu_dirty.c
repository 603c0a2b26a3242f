// SPDX-License-Identifier: MIT
/*
 * Dirty logging and aging in the TDP MMU (kvm-brief.md 5.6, 6.1, 6.3).
 *
 * Every function that removes write access (or, in Dirty-bit mode, clears
 * Dirty) leaves the TLB flush to its caller, who must do it before the dirty
 * log can be relied on (Appendix B invariant 9).
 */
#include "sync/bug.h"
#include "sync/race.h"
#include "x86/mmu/tdp_mmu.h"

/*
 * Iterate the valid roots of address space @_as_id inside RCU (mmu_lock held
 * by the caller): a memslot's gfns mean nothing in the other space.
 */
#define for_each_valid_root(kvm, root, _as_id)                                \
	for_each_tdp_mmu_root(kvm, root)                                      \
		if (is_obsolete_root(root) ||                                 \
		    (int)sp_role(root).as_id != (_as_id)) {} else

/*
 * With mmu_lock held for read: take W away from a present leaf — or, with
 * @dirty_bit, Dirty from a 4 KiB leaf with A/D bits — retrying the cmpxchg
 * until it sticks or the leaf is gone or frozen.  Records the protection
 * for the flush the caller owes (Appendix B 9).
 */
static bool tdp_mmu_leaf_clear_atomic(struct kvm *kvm, struct tdp_iter *iter,
				      bool dirty_bit)
{
	for (;;) {
		uint64_t clear = VMX_EPT_WRITABLE_MASK;

		if (!is_shadow_present_pte(iter->old_spte) ||
		    !is_last_spte(iter->old_spte, iter->level))
			return false;
		if (dirty_bit && iter->level == PG_LEVEL_4K &&
		    spte_ad_enabled(iter->old_spte))
			clear = VMX_EPT_DIRTY_BIT;
		if (!(iter->old_spte & clear))
			return false;
		if (!tdp_mmu_set_spte_atomic(kvm, iter, iter->old_spte & ~clear))
			break;
		if (is_frozen_spte(iter->old_spte))
			return false;
	}
	atomic_store(&kvm->wrprot_unflushed, 1);
	return true;
}

/*
 * Enabling dirty logging: clear W on every leaf of the slot (huge ones too:
 * they split when written).  mmu_lock for read, cmpxchg, retry on failure.
 * MMU-writable stays set, so the fast path can make them writable again.
 */
bool kvm_tdp_mmu_wrprot_slot(struct kvm *kvm, const struct kvm_memory_slot *slot,
			     int min_level)
{
	gfn_t start = slot->base_gfn, end = slot->base_gfn + slot->npages;
	struct kvm_mmu_page *root;
	struct tdp_iter iter;
	bool spte_set = false;

	lockdep_assert_held_read(&kvm->mmu_lock);
	ukvm_rcu_read_lock();
	for_each_valid_root(kvm, root, slot->as_id)
		for_each_tdp_pte_min_level(iter, root, min_level, start, end)
			spte_set |= tdp_mmu_leaf_clear_atomic(kvm, &iter, false);
	ukvm_rcu_read_unlock();
	return spte_set;
}

/*
 * Dirty-bit mode, enabling: clear Dirty on 4 KiB leaves (the CPU sets it
 * again on the next write), write-protect larger ones (so they split) and
 * leaves without A/D bits.
 */
bool kvm_tdp_mmu_clear_dirty_slot(struct kvm *kvm,
				  const struct kvm_memory_slot *slot)
{
	gfn_t start = slot->base_gfn, end = slot->base_gfn + slot->npages;
	struct kvm_mmu_page *root;
	struct tdp_iter iter;
	bool spte_set = false;

	lockdep_assert_held_read(&kvm->mmu_lock);
	ukvm_rcu_read_lock();
	for_each_valid_root(kvm, root, slot->as_id)
		for_each_tdp_pte(iter, root, start, end)
			spte_set |= tdp_mmu_leaf_clear_atomic(kvm, &iter, true);
	ukvm_rcu_read_unlock();
	return spte_set;
}

/*
 * GET/CLEAR_DIRTY_LOG re-protection of the gfns of @mask (relative to
 * @gfn), mmu_lock for write: clear W (write-protect mode, or A/D disabled)
 * or Dirty (Dirty-bit mode).  The update is atomic whenever the CPU or the
 * fast path may change the SPTE concurrently.
 */
void kvm_tdp_mmu_clear_dirty_pt_masked(struct kvm *kvm,
				       struct kvm_memory_slot *slot,
				       gfn_t gfn, unsigned long mask, bool wrprot)
{
	struct kvm_mmu_page *root;
	struct tdp_iter iter;

	lockdep_assert_held_write(&kvm->mmu_lock);
	ukvm_rcu_read_lock();
	for_each_valid_root(kvm, root, slot->as_id) {
		unsigned long m = mask;

		for_each_tdp_pte(iter, root, gfn + (gfn_t)__builtin_ctzl(m),
				 gfn + 64) {
			uint64_t clear;

			if (!m)
				break;
			if (iter.level > PG_LEVEL_4K ||
			    !(m & (1UL << (iter.gfn - gfn))))
				continue;
			m &= ~(1UL << (iter.gfn - gfn));
			if (!is_shadow_present_pte(iter.old_spte))
				continue;
			clear = (wrprot || !spte_ad_enabled(iter.old_spte)) ?
				VMX_EPT_WRITABLE_MASK : VMX_EPT_DIRTY_BIT;
			if (!(iter.old_spte & clear))
				continue;
			atomic_store(&kvm->wrprot_unflushed, 1);
			iter.old_spte = tdp_mmu_clear_spte_bits(iter.sptep, iter.old_spte,
								clear, iter.level);
		}
	}
	ukvm_rcu_read_unlock();
}

/* Write-protect the leaf mapping @gfn at @min_level or above. */
bool kvm_tdp_mmu_write_protect_gfn(struct kvm *kvm, struct kvm_memory_slot *slot,
				   gfn_t gfn, int min_level)
{
	struct kvm_mmu_page *root;
	struct tdp_iter iter;
	bool spte_set = false;

	lockdep_assert_held_write(&kvm->mmu_lock);
	ukvm_rcu_read_lock();
	for_each_valid_root(kvm, root, slot->as_id) {
		for_each_tdp_pte_min_level(iter, root, min_level, gfn, gfn + 1) {
			if (!is_shadow_present_pte(iter.old_spte) ||
			    !is_last_spte(iter.old_spte, iter.level) ||
			    !is_writable_pte(iter.old_spte))
				continue;
			atomic_store(&kvm->wrprot_unflushed, 1);
			iter.old_spte = tdp_mmu_clear_spte_bits(iter.sptep, iter.old_spte,
					VMX_EPT_WRITABLE_MASK, iter.level);
			spte_set = true;
		}
	}
	ukvm_rcu_read_unlock();
	return spte_set;
}

/*
 * A gfn is now shadowed by an indirect shadow page (account_shadowed()) or
 * its pages are being synced: clear W *and* MMU-writable on every leaf that
 * maps it, huge ones included, in every root (invalid ones too: nothing may
 * stay MMU-writable behind the protection), so that neither a fault nor the
 * fast path makes it writable without mmu_try_to_unsync_pages() saying so.
 * The state is "1 0 0" of kvm-brief.md 5.1.  Returns whether a TLB flush is
 * needed before the protection is relied on: removing MMU-writable always
 * needs one, even if W was already clear (a CPU may hold a writable
 * translation made by a fast fault, or by a dirty-log write-protection whose
 * flush comes after mmu_lock).
 */
bool kvm_tdp_mmu_write_protect_shadowed_gfn(struct kvm *kvm, int as_id, gfn_t gfn)
{
	const uint64_t mask = VMX_EPT_WRITABLE_MASK | EPT_SPTE_MMU_WRITABLE;
	struct kvm_mmu_page *root;
	struct tdp_iter iter;
	bool flush = false;

	lockdep_assert_held_write(&kvm->mmu_lock);
	ukvm_rcu_read_lock();
	for_each_tdp_mmu_root(kvm, root) {
		if ((int)root->role.as_id != as_id)
			continue;
		for_each_tdp_pte(iter, root, gfn, gfn + 1) {
			uint64_t old;

			if (!is_shadow_present_pte(iter.old_spte) ||
			    !is_last_spte(iter.old_spte, iter.level) ||
			    !(iter.old_spte & mask))
				continue;
			/* Atomic if the fast path or the CPU may change it meanwhile. */
			old = tdp_mmu_clear_spte_bits(iter.sptep, iter.old_spte, mask,
						      iter.level);
			iter.old_spte = old & ~mask;
			if (is_mmu_writable_spte(old))
				flush = true;
		}
	}
	ukvm_rcu_read_unlock();
	return flush;
}

/* Does a leaf mapping @gfn allow writes, now or after a fast fault? */
bool kvm_tdp_mmu_gfn_maybe_writable(struct kvm *kvm, int as_id, gfn_t gfn)
{
	struct kvm_mmu_page *root;
	struct tdp_iter iter;
	bool writable = false;

	lockdep_assert_held(&kvm->mmu_lock);
	ukvm_rcu_read_lock();
	for_each_tdp_mmu_root(kvm, root) {
		if ((int)root->role.as_id != as_id)
			continue;
		for_each_tdp_pte(iter, root, gfn, gfn + 1)
			if (is_shadow_present_pte(iter.old_spte) &&
			    is_last_spte(iter.old_spte, iter.level) &&
			    (is_writable_pte(iter.old_spte) ||
			     is_mmu_writable_spte(iter.old_spte)))
				writable = true;
	}
	ukvm_rcu_read_unlock();
	return writable;
}

/*
 * Dirty-bit mode, before a log is read: record every 4 KiB leaf the CPU
 * marked Dirty (the role of PML buffers drained on VM-exit).  Lockless: the
 * SPTEs are only read.
 */
void kvm_tdp_mmu_harvest_dirty(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	gfn_t start = slot->base_gfn, end = slot->base_gfn + slot->npages;
	struct kvm_mmu_page *root;
	struct tdp_iter iter;

	ukvm_rcu_read_lock();
	for_each_valid_root(kvm, root, slot->as_id) {
		for_each_tdp_pte(iter, root, start, end) {
			if (iter.level == PG_LEVEL_4K &&
			    is_shadow_present_pte(iter.old_spte) &&
			    spte_ad_enabled(iter.old_spte) &&
			    (iter.old_spte & VMX_EPT_DIRTY_BIT))
				mark_page_dirty_in_slot(kvm, slot, iter.gfn);
		}
	}
	ukvm_rcu_read_unlock();
}

/*
 * Aging, mmu_lock for write (as KVM did before 6.15's lockless aging): clear
 * Accessed, or mark an A/D-disabled SPTE for access tracking.  No flush
 * (clear_young never flushes; x86 elides it for clear_flush_young).
 */
bool kvm_tdp_mmu_age_gfn_range(struct kvm *kvm, struct kvm_gfn_range *range)
{
	struct kvm_mmu_page *root;
	struct tdp_iter iter;
	bool young = false;

	lockdep_assert_held_write(&kvm->mmu_lock);
	ukvm_rcu_read_lock();
	for_each_tdp_mmu_root(kvm, root) {
		if ((int)sp_role(root).as_id != range->slot->as_id)
			continue;
		for_each_tdp_pte(iter, root, range->start, range->end) {
			if (!is_shadow_present_pte(iter.old_spte) ||
			    !is_last_spte(iter.old_spte, iter.level) ||
			    !is_accessed_spte(iter.old_spte))
				continue;
			young = true;
			if (spte_ad_enabled(iter.old_spte)) {
				iter.old_spte = tdp_mmu_clear_spte_bits(iter.sptep,
						iter.old_spte, VMX_EPT_ACCESS_BIT,
						iter.level);
			} else {
				uint64_t new_spte = mark_spte_for_access_track(iter.old_spte);

				iter.old_spte = kvm_tdp_mmu_write_spte(iter.sptep,
						iter.old_spte, new_spte, iter.level);
			}
		}
	}
	ukvm_rcu_read_unlock();
	return young;
}

bool kvm_tdp_mmu_test_age_gfn(struct kvm *kvm, struct kvm_gfn_range *range)
{
	struct kvm_mmu_page *root;
	struct tdp_iter iter;
	bool young = false;

	ukvm_rcu_read_lock();
	for_each_tdp_mmu_root(kvm, root) {
		if ((int)sp_role(root).as_id != range->slot->as_id)
			continue;
		for_each_tdp_pte(iter, root, range->start, range->end) {
			if (is_shadow_present_pte(iter.old_spte) &&
			    is_last_spte(iter.old_spte, iter.level) &&
			    is_accessed_spte(iter.old_spte)) {
				young = true;
				break;
			}
		}
	}
	ukvm_rcu_read_unlock();
	return young;
}
