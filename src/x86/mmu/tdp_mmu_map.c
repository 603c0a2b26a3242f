// SPDX-License-Identifier: MIT
/*
 * Installing mappings with mmu_lock held for read (kvm-brief.md 4.3): walk
 * to the goal level, linking new tables (or splitting a huge leaf) with a
 * cmpxchg on the parent, then install the leaf with a cmpxchg.  Losing a
 * race just means RET_PF_RETRY: the guest re-faults.
 */
#include "sync/bug.h"
#include "sync/race.h"
#include "x86/mmu/tdp_mmu.h"

/* Link an empty table below the current (non-present) SPTE. */
static int tdp_mmu_link_sp(struct kvm *kvm, struct tdp_iter *iter,
			   struct kvm_mmu_page *sp)
{
	uint64_t spte = make_nonleaf_spte(sp->spt_pfn, !sp->role.ad_disabled);

	return tdp_mmu_set_spte_atomic(kvm, iter, spte);
}

/*
 * Replace a huge leaf by a table of 512 smaller leaves mapping the same
 * memory with the same permissions.  The children are filled before the
 * table becomes reachable, so the change is one atomic step for everyone.
 */
static int tdp_mmu_split_huge_page(struct kvm *kvm, struct tdp_iter *iter,
				   struct kvm_mmu_page *sp)
{
	uint64_t huge_spte = iter->old_spte;
	int r;

	for (int i = 0; i < SPTE_ENT_PER_PAGE; i++)
		atomic_store_explicit(&sp->spt[i],
			make_huge_page_split_spte(huge_spte, iter->level, i),
			memory_order_relaxed);
	r = tdp_mmu_link_sp(kvm, iter, sp);
	if (r)
		return r;
	/* The leaves moved one level down: account for them. */
	atomic_fetch_add_explicit(&kvm_x86(kvm)->stat.pages[iter->level - 2],
				  SPTE_ENT_PER_PAGE, memory_order_relaxed);
	atomic_fetch_add_explicit(&kvm_x86(kvm)->stat.huge_splits, 1,
				  memory_order_relaxed);
	return 0;
}

static int tdp_mmu_map_handle_target_level(struct kvm_vcpu *vcpu,
					   struct kvm_page_fault *fault,
					   struct tdp_iter *iter)
{
	struct kvm *kvm = vcpu->kvm;
	struct kvm_arch *ka = kvm_x86(kvm);
	int ret = RET_PF_FIXED;
	uint64_t new_spte;
	bool wrprot = false;

	if (!fault->slot) {
		/* No memslot: an MMIO SPTE tagged with the memslot generation. */
		new_spte = make_mmio_spte(kvm_memslots_gen(kvm_memslots(kvm)), iter->gfn);
	} else {
		wrprot = make_spte(vcpu, iter->level, ACC_ALL, iter->gfn, fault->pfn,
				   iter->old_spte, fault->prefetch, fault->map_writable,
				   ka->ad_enabled, fault->slot, &new_spte);
	}

	RACE_POINT(FAULT_BEFORE_INSTALL);
	/* Appendix B 5: nothing is installed over a racing invalidation. */
	UKVM_INVARIANT(!fault->slot ||
		       !mmu_invalidate_retry_gfn(kvm, fault->mmu_seq, fault->gfn),
		       "installing gfn %#llx while an invalidation covers it",
		       (unsigned long long)fault->gfn);
	if (new_spte == iter->old_spte)
		ret = RET_PF_SPURIOUS;
	else if (tdp_mmu_set_spte_atomic(kvm, iter, new_spte))
		return RET_PF_RETRY;
	else if (is_shadow_present_pte(iter->old_spte) &&
		 (!is_last_spte(iter->old_spte, iter->level) ||
		  (is_writable_pte(iter->old_spte) && !is_writable_pte(new_spte)) ||
		  (is_mmu_writable_spte(iter->old_spte) &&
		   !is_mmu_writable_spte(new_spte))))
		/*
		 * A table replaced by a huge leaf, write access removed, or
		 * MMU-writable removed (kvm-brief.md 5.1: a fast fault may
		 * have made it writable meanwhile).
		 */
		kvm_flush_remote_tlbs_range(kvm, iter->gfn,
					    KVM_PAGES_PER_HPAGE(iter->level));

	if (wrprot && fault->write)
		ret = RET_PF_WRITE_PROTECTED;
	if (is_mmio_spte(new_spte)) {
		atomic_fetch_add_explicit(&ka->stat.mmio_sptes, 1, memory_order_relaxed);
		ret = RET_PF_EMULATE;
	}
	return ret;
}

int kvm_tdp_mmu_map(struct kvm_vcpu *vcpu, struct kvm_page_fault *fault)
{
	struct kvm_mmu_page *root = vcpu_x86(vcpu)->mmu.root;
	struct kvm *kvm = vcpu->kvm;
	struct tdp_iter iter;
	int ret = RET_PF_RETRY;

	lockdep_assert_held(&kvm->mmu_lock);
	kvm_mmu_hugepage_adjust(vcpu, fault);

	ukvm_rcu_read_lock();
	for_each_tdp_pte(iter, root, fault->gfn, fault->gfn + 1) {
		struct kvm_mmu_page *sp;
		int r;

		/* Someone is mid-update here: let the guest fault again. */
		if (is_frozen_spte(iter.old_spte))
			goto out;
		if (iter.level == fault->goal_level) {
			ret = tdp_mmu_map_handle_target_level(vcpu, fault, &iter);
			goto out;
		}
		/* A table already here: step down into it. */
		if (is_shadow_present_pte(iter.old_spte) && !is_large_pte(iter.old_spte))
			continue;

		/* Non-present, or a huge leaf that must be split. */
		sp = tdp_mmu_alloc_sp(vcpu);
		tdp_mmu_init_child_sp(sp, &iter);
		if (is_shadow_present_pte(iter.old_spte))
			r = tdp_mmu_split_huge_page(kvm, &iter, sp);
		else
			r = tdp_mmu_link_sp(kvm, &iter, sp);
		if (r) {
			/* Never published: free it directly. */
			tdp_mmu_free_sp(sp);
			goto out;
		}
	}
	/* The walk ended above the goal level (a frozen upper SPTE). */
out:
	ukvm_rcu_read_unlock();
	return ret;
}

/*
 * The leaf SPTE for @gfn, for the fast page fault: a lockless walk inside
 * the caller's RCU read-side section.  Returns NULL if the walk met nothing.
 */
_Atomic uint64_t *kvm_tdp_mmu_fast_pf_get_last_sptep(struct kvm_vcpu *vcpu,
						     gfn_t gfn, uint64_t *spte,
						     int *level)
{
	struct kvm_mmu_page *root = vcpu_x86(vcpu)->mmu.root;
	_Atomic uint64_t *pt, *sptep = NULL;

	/*
	 * One descent, as the CPU's walker does it: the generic iterator's
	 * restart and sibling logic is not needed for a single gfn, and this
	 * is the hot part of the fast path.  Caller holds RCU.
	 */
	*spte = FROZEN_SPTE;
	if (!root)
		return NULL;
	pt = root->spt;
	for (int lvl = (int)sp_role(root).level;; lvl--) {
		sptep = &pt[spte_index(gfn, lvl)];
		*spte = atomic_load_explicit(sptep, memory_order_acquire);
		*level = lvl;
		if (!is_shadow_present_pte(*spte) || is_last_spte(*spte, lvl))
			break;
		pt = spte_to_child_pt(*spte, lvl);
	}
	return sptep;
}

/* The SPTEs on the path to @gfn, root first (diagnostics, tests). */
int kvm_tdp_mmu_get_walk(struct kvm_vcpu *vcpu, gfn_t gfn, uint64_t *sptes,
			 int *root_level)
{
	struct kvm_mmu_page *root = vcpu_x86(vcpu)->mmu.root;
	struct tdp_iter iter;
	int leaf = -1;

	if (!root)
		return -1;
	*root_level = (int)sp_role(root).level;
	ukvm_rcu_read_lock();
	for_each_tdp_pte(iter, root, gfn, gfn + 1) {
		leaf = iter.level;
		sptes[leaf] = iter.old_spte;
	}
	ukvm_rcu_read_unlock();
	return leaf;
}
