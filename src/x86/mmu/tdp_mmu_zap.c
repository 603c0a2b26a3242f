// SPDX-License-Identifier: MIT
/*
 * Zapping (kvm-brief.md 4.6, 4.7): leaf zaps for MMU-notifier unmaps and
 * memslot deletion (mmu_lock for write), root invalidation and the "fast
 * zap" of everything (write to invalidate, read to zap), zap-all at teardown,
 * and recovering huge pages after dirty logging (read, frozen SPTEs).
 */
#include "sync/bug.h"
#include "sync/race.h"
#include "x86/mmu/tdp_mmu.h"

/*
 * Yield-safe root iteration: returns the next root (after @prev, or the
 * first) with a reference held, and drops @prev's.  The reference keeps the
 * current root on the list while mmu_lock or RCU is let go.
 */
static struct kvm_mmu_page *tdp_mmu_next_root(struct kvm *kvm,
					      struct kvm_mmu_page *prev, int as_id,
					      bool only_valid, bool only_invalid)
{
	struct kvm_arch *ka = kvm_x86(kvm);
	struct cds_list_head *pos;
	struct kvm_mmu_page *next = NULL;

	ukvm_rcu_read_lock();
	pos = prev ? ukvm_rcu_dereference(prev->link.next) :
		     ukvm_rcu_dereference(ka->tdp_mmu_roots.next);
	while (pos != &ka->tdp_mmu_roots) {
		struct kvm_mmu_page *r = caa_container_of(pos, struct kvm_mmu_page, link);

		if ((as_id < 0 || (int)sp_role(r).as_id == as_id) &&
		    (!only_valid || !is_obsolete_root(r)) &&
		    (!only_invalid || is_obsolete_root(r)) &&
		    kvm_tdp_mmu_get_root(r)) {
			next = r;
			break;
		}
		pos = ukvm_rcu_dereference(pos->next);
	}
	ukvm_rcu_read_unlock();
	if (prev)
		kvm_tdp_mmu_put_root(kvm, prev);
	return next;
}

/* @as_id < 0: every address space. */
#define for_each_tdp_mmu_root_yield_safe(kvm, root, as_id, only_valid)        \
	for ((root) = tdp_mmu_next_root((kvm), NULL, (as_id), (only_valid), false); \
	     (root);                                                          \
	     (root) = tdp_mmu_next_root((kvm), (root), (as_id), (only_valid), false))

/*
 * Zap the leaf SPTEs of [start, end) in @root, mmu_lock held for write.  The
 * host page is marked accessed here, and only here, when a leaf the guest
 * accessed goes away (5f6a3bad).  Returns whether a flush is needed.
 */
static bool tdp_mmu_zap_leafs(struct kvm *kvm, struct kvm_mmu_page *root,
			      gfn_t start, gfn_t end, bool can_yield, bool flush)
{
	struct tdp_iter iter;

	lockdep_assert_held_write(&kvm->mmu_lock);
	ukvm_rcu_read_lock();
	for_each_tdp_pte_min_level(iter, root, PG_LEVEL_4K, start, end) {
		if (can_yield && tdp_mmu_iter_cond_resched(kvm, &iter, flush, false)) {
			flush = false;
			continue;
		}
		if (!is_shadow_present_pte(iter.old_spte) ||
		    !is_last_spte(iter.old_spte, iter.level))
			continue;
		if (is_accessed_spte(iter.old_spte))
			atomic_fetch_or(&pfn_to_page(spte_to_pfn(iter.old_spte))->flags,
					PG_young);
		tdp_mmu_iter_set_spte(kvm, &iter, SHADOW_NONPRESENT_VALUE);
		flush = true;
	}
	ukvm_rcu_read_unlock();
	if (flush)
		atomic_fetch_add_explicit(&kvm_x86(kvm)->stat.zaps, 1, memory_order_relaxed);
	return flush;
}

/*
 * MMU-notifier unmap: the generic walker holds mmu_lock for write, added the
 * range to mmu_invalidate_* and flushes if we return true, before dropping
 * the lock.  All roots, invalid ones included: they may still be in use.
 */
bool kvm_tdp_mmu_unmap_gfn_range(struct kvm *kvm, struct kvm_gfn_range *range,
				 bool flush)
{
	struct kvm_mmu_page *root;

	lockdep_assert_held_write(&kvm->mmu_lock);
	for_each_tdp_mmu_root_yield_safe(kvm, root, range->slot->as_id, false)
		flush = tdp_mmu_zap_leafs(kvm, root, range->start, range->end,
					  range->may_block, flush);
	return flush;
}

/* Zap leaves of a gfn range in every root of @as_id (memslot deletion/move). */
bool kvm_tdp_mmu_zap_leafs(struct kvm *kvm, int as_id, gfn_t start, gfn_t end,
			   bool flush)
{
	struct kvm_mmu_page *root;

	lockdep_assert_held_write(&kvm->mmu_lock);
	for_each_tdp_mmu_root_yield_safe(kvm, root, as_id, false)
		flush = tdp_mmu_zap_leafs(kvm, root, start, end, true, flush);
	return flush;
}

/*
 * Zap a whole root.  Top-level entries only: removing a table recurses into
 * it (handle_removed_pt()).  Shared: with mmu_lock for read, each entry is
 * frozen, flushed and cleared; exclusive: written directly.
 */
static void tdp_mmu_zap_root(struct kvm *kvm, struct kvm_mmu_page *root,
			     bool shared)
{
	int top = (int)root->role.level;
	struct tdp_iter iter;

	ukvm_rcu_read_lock();
	for_each_tdp_pte_min_level(iter, root, top, 0, ~0ULL) {
retry:
		if (tdp_mmu_iter_cond_resched(kvm, &iter, false, shared))
			continue;
		if (!is_shadow_present_pte(iter.old_spte))
			continue;
		if (!shared) {
			tdp_mmu_iter_set_spte(kvm, &iter, SHADOW_NONPRESENT_VALUE);
		} else if (tdp_mmu_zap_spte_atomic(kvm, &iter)) {
			if (is_frozen_spte(iter.old_spte))
				iter.old_spte = kvm_tdp_mmu_read_spte(iter.sptep);
			goto retry;
		}
	}
	ukvm_rcu_read_unlock();
}

/*
 * Mark every root invalid: vCPUs find their root obsolete and load a new one;
 * the invalid roots are zapped afterwards.  Write lock (or VM teardown).
 */
void kvm_tdp_mmu_invalidate_all_roots(struct kvm *kvm)
{
	struct kvm_mmu_page *root;

	ukvm_rcu_read_lock();
	for_each_tdp_mmu_root(kvm, root) {
		union kvm_mmu_page_role role = { .word = root->role.word };

		if (role.invalid)
			continue;
		role.invalid = 1;
		__atomic_store_n(&root->role.word, role.word, __ATOMIC_RELEASE);
		root->tdp_mmu_scheduled_root_to_zap = true;
	}
	ukvm_rcu_read_unlock();
}

/* Zap every root scheduled by invalidation, then drop the MMU's reference. */
void kvm_tdp_mmu_zap_invalidated_roots(struct kvm *kvm, bool shared)
{
	struct kvm_mmu_page *root;

	for (root = tdp_mmu_next_root(kvm, NULL, -1, false, true); root;
	     root = tdp_mmu_next_root(kvm, root, -1, false, true)) {
		if (!root->tdp_mmu_scheduled_root_to_zap)
			continue;
		root->tdp_mmu_scheduled_root_to_zap = false;
		tdp_mmu_zap_root(kvm, root, shared);
		/*
		 * Dropped only now: notifiers had to be able to reach the
		 * root's SPTEs while it was being zapped.
		 */
		kvm_tdp_mmu_put_root(kvm, root);
	}
}

/* Teardown / ->release: no vCPU can run; zap everything, lock for write. */
void kvm_tdp_mmu_zap_all(struct kvm *kvm)
{
	struct kvm_mmu_page *root;

	lockdep_assert_held_write(&kvm->mmu_lock);
	for_each_tdp_mmu_root_yield_safe(kvm, root, -1, false)
		tdp_mmu_zap_root(kvm, root, false);
}

/*
 * After dirty logging is turned off: zap the 4 KiB tables under every
 * 2 MiB range that could now be mapped huge, so that it refaults as one huge
 * leaf.  Read lock; frozen-SPTE protocol with a flush per zapped table.
 */
void kvm_tdp_mmu_recover_huge_pages(struct kvm *kvm,
				    const struct kvm_memory_slot *slot)
{
	gfn_t start = slot->base_gfn, end = slot->base_gfn + slot->npages;
	struct kvm_mmu_page *root;
	struct tdp_iter iter;

	lockdep_assert_held_read(&kvm->mmu_lock);
	for_each_tdp_mmu_root_yield_safe(kvm, root, slot->as_id, true) {
		ukvm_rcu_read_lock();
		for_each_tdp_pte_min_level(iter, root, PG_LEVEL_2M, start, end) {
retry:
			if (tdp_mmu_iter_cond_resched(kvm, &iter, false, true))
				continue;
			if (iter.level != PG_LEVEL_2M ||
			    !is_shadow_present_pte(iter.old_spte) ||
			    is_last_spte(iter.old_spte, iter.level) ||
			    iter.gfn < start || iter.gfn + 512 > end)
				continue;
			if (kvm_mmu_max_mapping_level(kvm, slot, iter.gfn, PG_LEVEL_2M) <
			    PG_LEVEL_2M)
				continue;
			if (tdp_mmu_zap_spte_atomic(kvm, &iter)) {
				if (is_frozen_spte(iter.old_spte))
					iter.old_spte = kvm_tdp_mmu_read_spte(iter.sptep);
				goto retry;
			}
		}
		ukvm_rcu_read_unlock();
	}
}
