// SPDX-License-Identifier: MIT
/*
 * TDP MMU core: page-table pages, roots, the SPTE update primitives and the
 * bookkeeping of every SPTE change (kvm-brief.md 4.4-4.6).
 */
#include <errno.h>
#include <stdlib.h>

#include "sync/bug.h"
#include "sync/race.h"
#include "x86/mmu/tdp_mmu.h"

void kvm_mmu_init_tdp_mmu(struct kvm *kvm)
{
	struct kvm_arch *ka = kvm_x86(kvm);

	CDS_INIT_LIST_HEAD(&ka->tdp_mmu_roots);
	__spin_lock_init(&ka->tdp_mmu_pages_lock, "&kvm->arch.tdp_mmu_pages_lock",
			 LOCKDEP_STATIC_KEY("&kvm->arch.tdp_mmu_pages_lock",
					    LD_TYPE_SPINLOCK));
}

/* ---------------------------------------------------------------------- */
/* Page-table pages                                                       */
/* ---------------------------------------------------------------------- */

struct kvm_mmu_page *tdp_mmu_alloc_sp(struct kvm_vcpu *vcpu)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);
	struct kvm_mmu_page *sp = kvm_mmu_memory_cache_alloc(&va->mmu_page_header_cache);
	struct page *page = kvm_mmu_memory_cache_alloc(&va->mmu_shadow_page_cache);

	/* The caches were topped up before mmu_lock: they cannot be empty. */
	UKVM_BUG_ON(!sp || !page);
	sp->spt_pfn = page_to_pfn(page);
	sp->spt = pfn_to_virt(sp->spt_pfn);
	sp->kvm = vcpu->kvm;
	atomic_store_explicit(&page->private, sp, memory_order_release);
	atomic_fetch_add_explicit(&kvm_x86(vcpu->kvm)->stat.tables_allocated, 1,
				  memory_order_relaxed);
	return sp;
}

/* Free a table that was never reachable, or after an RCU grace period. */
void tdp_mmu_free_sp(struct kvm_mmu_page *sp)
{
	struct page *page = pfn_to_page(sp->spt_pfn);

	atomic_store_explicit(&page->private, NULL, memory_order_relaxed);
	put_page(page);
	free(sp);
}

static void tdp_mmu_free_sp_rcu_callback(struct rcu_head *head)
{
	tdp_mmu_free_sp(caa_container_of(head, struct kvm_mmu_page, rcu_head));
}

static void tdp_mmu_free_sp_rcu(struct kvm *kvm, struct kvm_mmu_page *sp)
{
	atomic_fetch_add_explicit(&kvm_x86(kvm)->stat.tables_freed, 1,
				  memory_order_relaxed);
	/* Appendix B 11: lockless walkers may still be inside this table. */
	ukvm_call_rcu(&sp->rcu_head, tdp_mmu_free_sp_rcu_callback);
}

void tdp_mmu_init_child_sp(struct kvm_mmu_page *child, struct tdp_iter *iter)
{
	struct kvm_mmu_page *parent = sptep_to_sp(iter->sptep);

	child->role = parent->role;
	child->role.level = (unsigned int)(iter->level - 1);
	child->gfn = iter->gfn;
}

/* ---------------------------------------------------------------------- */
/* Roots                                                                  */
/* ---------------------------------------------------------------------- */

bool is_obsolete_root(struct kvm_mmu_page *root)
{
	union kvm_mmu_page_role role = {
		.word = __atomic_load_n(&root->role.word, __ATOMIC_ACQUIRE) };

	return role.invalid;
}

bool kvm_tdp_mmu_get_root(struct kvm_mmu_page *root)
{
	int old = atomic_load(&root->tdp_mmu_root_count);

	do {
		if (!old)
			return false;
	} while (!atomic_compare_exchange_weak(&root->tdp_mmu_root_count, &old, old + 1));
	return true;
}

void kvm_tdp_mmu_put_root(struct kvm *kvm, struct kvm_mmu_page *root)
{
	struct kvm_arch *ka = kvm_x86(kvm);

	if (atomic_fetch_sub(&root->tdp_mmu_root_count, 1) != 1)
		return;
	/* Only an invalid root loses its last reference (the MMU holds one). */
	UKVM_INVARIANT(is_obsolete_root(root), "last reference of a valid root dropped");
	spin_lock(&ka->tdp_mmu_pages_lock);
	ukvm_list_del_rcu(&root->link);
	spin_unlock(&ka->tdp_mmu_pages_lock);
	tdp_mmu_free_sp_rcu(kvm, root);
}

struct kvm_mmu_page *kvm_tdp_mmu_alloc_root(struct kvm_vcpu *vcpu)
{
	struct kvm *kvm = vcpu->kvm;
	struct kvm_arch *ka = kvm_x86(kvm);
	union kvm_mmu_page_role role = { .word = 0 };
	struct kvm_mmu_page *root;

	role.level = (unsigned int)ka->root_level;
	role.ad_disabled = !ka->ad_enabled;
	role.direct = 1;

	read_lock(&kvm->mmu_lock);
	ukvm_rcu_read_lock();
	for_each_tdp_mmu_root(kvm, root)
		if (root->role.word == role.word && kvm_tdp_mmu_get_root(root))
			goto out;
	ukvm_rcu_read_unlock();

	spin_lock(&ka->tdp_mmu_pages_lock);
	/*
	 * Another vCPU may have raced us here: check again.  The list only
	 * changes under this lock, so no RCU is needed for this walk.
	 */
	cds_list_for_each_entry(root, &ka->tdp_mmu_roots, link)
		if (root->role.word == role.word && kvm_tdp_mmu_get_root(root)) {
			spin_unlock(&ka->tdp_mmu_pages_lock);
			read_unlock(&kvm->mmu_lock);
			return root;
		}
	root = tdp_mmu_alloc_sp(vcpu);
	root->role = role;
	root->gfn = 0;
	/* One reference for this vCPU, one owned by the MMU until invalidated. */
	atomic_init(&root->tdp_mmu_root_count, 2);
	ukvm_list_add_rcu(&root->link, &ka->tdp_mmu_roots);
	spin_unlock(&ka->tdp_mmu_pages_lock);
	atomic_fetch_add_explicit(&ka->stat.roots_allocated, 1, memory_order_relaxed);
	read_unlock(&kvm->mmu_lock);
	return root;
out:
	ukvm_rcu_read_unlock();
	read_unlock(&kvm->mmu_lock);
	return root;
}

unsigned long kvm_tdp_mmu_nr_roots(struct kvm *kvm)
{
	struct kvm_mmu_page *root;
	unsigned long n = 0;

	ukvm_rcu_read_lock();
	for_each_tdp_mmu_root(kvm, root)
		n++;
	ukvm_rcu_read_unlock();
	return n;
}

/* ---------------------------------------------------------------------- */
/* SPTE updates                                                           */
/* ---------------------------------------------------------------------- */

static void handle_changed_spte(struct kvm *kvm, int as_id, gfn_t gfn,
				uint64_t old_spte, uint64_t new_spte, int level,
				bool shared);

/*
 * Record the write behind a dirty leaf that disappears.  Every path that can
 * zap a leaf of a live VM holds kvm->srcu (faults, notifiers) or slots_lock
 * (memslot and dirty-log updates); a dying VM has no log to feed.
 */
static void kvm_mmu_dirty_leaf_gone(struct kvm *kvm, int as_id, gfn_t gfn)
{
	struct kvm_memory_slot *slot;

	if (atomic_load(&kvm->vm_dead) || !kvm->nr_memslots_dirty_logging)
		return;
	slot = search_memslots(__kvm_memslots(kvm, as_id), gfn, false);
	if (slot && !(slot->flags & KVM_MEMSLOT_INVALID))
		mark_page_dirty_in_slot(kvm, slot, gfn);
}

/* cmpxchg without the bookkeeping: claim the SPTE by freezing it. */
static int tdp_mmu_freeze_spte(struct tdp_iter *iter)
{
	UKVM_BUG_ON(is_frozen_spte(iter->old_spte));
	return atomic_compare_exchange_strong(iter->sptep, &iter->old_spte,
					      FROZEN_SPTE) ? 0 : -EBUSY;
}

/*
 * Write an SPTE with mmu_lock held for write.  If bits of the old value can
 * change behind our back (spte_needs_atomic_update()), exchange atomically so
 * the returned old value includes them: a Dirty bit set by the CPU or a W bit
 * set by the fast path is never lost.
 */
uint64_t kvm_tdp_mmu_write_spte(_Atomic uint64_t *sptep, uint64_t old_spte,
				uint64_t new_spte, int level)
{
	RACE_POINT(SPTE_UPDATE_AFTER_READ);
	if (is_shadow_present_pte(old_spte) && is_last_spte(old_spte, level) &&
	    spte_needs_atomic_update(old_spte) && !ukvm_unsafe(UNSAFE_NONATOMIC_SPTE))
		return atomic_exchange(sptep, new_spte);
	atomic_store_explicit(sptep, new_spte, memory_order_release);
	return old_spte;
}

uint64_t tdp_mmu_clear_spte_bits(_Atomic uint64_t *sptep, uint64_t old_spte,
				 uint64_t mask, int level)
{
	RACE_POINT(SPTE_UPDATE_AFTER_READ);
	if (is_shadow_present_pte(old_spte) && is_last_spte(old_spte, level) &&
	    spte_needs_atomic_update(old_spte) && !ukvm_unsafe(UNSAFE_NONATOMIC_SPTE))
		return atomic_fetch_and(sptep, ~mask);
	atomic_store_explicit(sptep, old_spte & ~mask, memory_order_release);
	return old_spte;
}

/*
 * The only way to change an SPTE with mmu_lock held for read: a cmpxchg from
 * the value the iterator read.  On failure iter->old_spte is refreshed and
 * -EBUSY returned; the caller retries or gives up.
 */
int tdp_mmu_set_spte_atomic(struct kvm *kvm, struct tdp_iter *iter,
			    uint64_t new_spte)
{
	uint64_t old_spte = iter->old_spte;

	lockdep_assert_held(&kvm->mmu_lock);
	/* Appendix B 10: nobody but the freezer writes a frozen SPTE. */
	UKVM_BUG_ON(is_frozen_spte(old_spte));
	if (!atomic_compare_exchange_strong(iter->sptep, &iter->old_spte, new_spte))
		return -EBUSY;
	handle_changed_spte(kvm, iter->as_id, iter->gfn, old_spte, new_spte,
			    iter->level, true);
	return 0;
}

/* With mmu_lock held for write. */
void tdp_mmu_iter_set_spte(struct kvm *kvm, struct tdp_iter *iter,
			   uint64_t new_spte)
{
	uint64_t old_spte;

	lockdep_assert_held_write(&kvm->mmu_lock);
	UKVM_BUG_ON(is_frozen_spte(iter->old_spte) || is_frozen_spte(new_spte));
	old_spte = kvm_tdp_mmu_write_spte(iter->sptep, iter->old_spte, new_spte,
					  iter->level);
	handle_changed_spte(kvm, iter->as_id, iter->gfn, old_spte, new_spte,
			    iter->level, false);
	iter->old_spte = new_spte;
}

/*
 * Zap with mmu_lock held for read: freeze the SPTE (claim it), flush so that
 * no vCPU still uses the old translation, then make it non-present and do the
 * bookkeeping.  While frozen, faults that find it retry.
 */
int tdp_mmu_zap_spte_atomic(struct kvm *kvm, struct tdp_iter *iter)
{
	uint64_t old_spte = iter->old_spte;
	int r;

	lockdep_assert_held_read(&kvm->mmu_lock);
	r = tdp_mmu_freeze_spte(iter);
	if (r)
		return r;
	RACE_POINT(ZAP_BEFORE_FLUSH);
	kvm_flush_remote_tlbs_range(kvm, iter->gfn, KVM_PAGES_PER_HPAGE(iter->level));
	atomic_store_explicit(iter->sptep, SHADOW_NONPRESENT_VALUE, memory_order_release);
	handle_changed_spte(kvm, iter->as_id, iter->gfn, old_spte,
			    SHADOW_NONPRESENT_VALUE, iter->level, true);
	iter->old_spte = SHADOW_NONPRESENT_VALUE;
	return 0;
}

/*
 * A table was unlinked: freeze every entry (so no install can land in the
 * dead table), account for what was in it, then free it after a grace
 * period.  With mmu_lock shared, a racing fault may have frozen an entry
 * momentarily: keep exchanging until the previous value is not frozen.
 */
static void handle_removed_pt(struct kvm *kvm, _Atomic uint64_t *pt, bool shared)
{
	struct kvm_mmu_page *sp = sptep_to_sp(pt);
	int level = (int)sp->role.level;
	gfn_t base_gfn = sp->gfn;

	for (int i = 0; i < SPTE_ENT_PER_PAGE; i++) {
		_Atomic uint64_t *sptep = pt + i;
		gfn_t gfn = base_gfn + (gfn_t)i * KVM_PAGES_PER_HPAGE(level);
		uint64_t old;

		if (shared) {
			for (;;) {
				old = atomic_exchange(sptep, FROZEN_SPTE);
				if (!is_frozen_spte(old))
					break;
				__builtin_ia32_pause();
			}
		} else {
			old = kvm_tdp_mmu_read_spte(sptep);
			if (!is_shadow_present_pte(old))
				continue;
			/*
			 * Even with mmu_lock exclusive: the CPU may set Dirty
			 * through a stale paging-structure cache until the
			 * flush, and a fast fault may have made the leaf
			 * writable.
			 */
			old = kvm_tdp_mmu_write_spte(sptep, old, FROZEN_SPTE, level);
		}
		handle_changed_spte(kvm, (int)sp->role.as_id, gfn, old, FROZEN_SPTE,
				    level, shared);
	}
	tdp_mmu_free_sp_rcu(kvm, sp);
}

/*
 * A leaf that allows writes (W, or MMU-writable: the fast path may set W)
 * maps only gfns whose indirect shadow pages are all unsync (shadow.c).
 * Cheap when nothing is shadowed; mmu_lock is held by every caller.
 */
static bool leaf_respects_shadow_pages(struct kvm *kvm, int as_id, gfn_t gfn,
				       uint64_t new_spte, int level)
{
	if (!is_mmu_writable_spte(new_spte) ||
	    !atomic_load_explicit(&kvm_x86(kvm)->indirect_shadow_pages,
				  memory_order_relaxed))
		return true;
	return !kvm_mmu_range_has_sync_shadow_page(kvm, as_id, gfn,
						   KVM_PAGES_PER_HPAGE(level));
}

static void handle_changed_spte(struct kvm *kvm, int as_id, gfn_t gfn,
				uint64_t old_spte, uint64_t new_spte, int level,
				bool shared)
{
	bool was_present = is_shadow_present_pte(old_spte);
	bool is_present = is_shadow_present_pte(new_spte);
	bool was_leaf = was_present && is_last_spte(old_spte, level);
	bool is_leaf = is_present && is_last_spte(new_spte, level);
	bool pfn_changed = spte_to_pfn(old_spte) != spte_to_pfn(new_spte);

	UKVM_BUG_ON(level < PG_LEVEL_4K || level > PT64_ROOT_MAX_LEVEL);
	UKVM_BUG_ON(gfn & (KVM_PAGES_PER_HPAGE(level) - 1));

	if (old_spte == new_spte)
		return;
	/* Appendix B 8: a present leaf never changes pfn in place. */
	if (was_leaf && is_leaf && pfn_changed) {
		UKVM_INVARIANT(false, "present leaf SPTE for gfn %#llx changed pfn "
			       "%#llx -> %#llx without being zapped",
			       (unsigned long long)gfn,
			       (unsigned long long)spte_to_pfn(old_spte),
			       (unsigned long long)spte_to_pfn(new_spte));
		return;
	}
	if (is_leaf) {
		UKVM_INVARIANT(spte_writable_invariants_hold(new_spte),
			       "writable invariants: SPTE %#llx",
			       (unsigned long long)new_spte);
		UKVM_INVARIANT(leaf_respects_shadow_pages(kvm, as_id, gfn, new_spte, level),
			       "gfn %#llx (level %d) shadowed by a sync shadow page "
			       "mapped by MMU-writable SPTE %#llx",
			       (unsigned long long)gfn, level,
			       (unsigned long long)new_spte);
	}
	if (!was_present && !is_present) {
		/* Only MMIO SPTEs and the frozen value live here. */
		UKVM_INVARIANT(is_mmio_spte(old_spte) || is_mmio_spte(new_spte) ||
			       is_frozen_spte(old_spte) || is_frozen_spte(new_spte) ||
			       old_spte == SHADOW_NONPRESENT_VALUE,
			       "non-present -> non-present %#llx -> %#llx",
			       (unsigned long long)old_spte,
			       (unsigned long long)new_spte);
		return;
	}
	if (is_leaf != was_leaf)
		atomic_fetch_add_explicit(&kvm_x86(kvm)->stat.pages[level - 1],
					  is_leaf ? 1 : -1, memory_order_relaxed);
	/*
	 * Dirty-bit logging learns about writes from the Dirty bits it
	 * harvests: a dirty 4 KiB leaf that goes away (zapped, or replaced by
	 * another frame) hands its Dirty bit to the log first, as a PML buffer
	 * would have logged the write when the CPU set it.
	 */
	if (was_leaf && level == PG_LEVEL_4K && (!is_leaf || pfn_changed) &&
	    spte_ad_enabled(old_spte) && (old_spte & VMX_EPT_DIRTY_BIT) &&
	    kvm_x86(kvm)->dirty_mode == UKVM_DIRTY_DBIT)
		kvm_mmu_dirty_leaf_gone(kvm, as_id, gfn);
	/* A table went away (zapped, replaced by a huge leaf): tear it down. */
	if (was_present && !was_leaf && (is_leaf || !is_present || pfn_changed))
		handle_removed_pt(kvm, spte_to_child_pt(old_spte, level), shared);
}

/*
 * Yield mmu_lock (and RCU) if someone waits for it.  Flush first when zapped
 * SPTEs are pending a flush: nobody may use them once we let go.
 */
bool tdp_mmu_iter_cond_resched(struct kvm *kvm, struct tdp_iter *iter,
			       bool flush, bool shared)
{
	/* Forward progress: never yield twice at the same gfn. */
	if (iter->next_last_level_gfn == iter->yielded_gfn)
		return false;
	if (!rwlock_needbreak(&kvm->mmu_lock))
		return false;
	if (flush)
		kvm_flush_remote_tlbs(kvm);
	ukvm_rcu_read_unlock();
	if (shared)
		cond_resched_rwlock_read(&kvm->mmu_lock);
	else
		cond_resched_rwlock_write(&kvm->mmu_lock);
	ukvm_rcu_read_lock();
	iter->yielded = true;
	return true;
}
