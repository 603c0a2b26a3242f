// SPDX-License-Identifier: MIT
/* The TDP iterator (see tdp_iter.h). */
#include "x86/mmu/tdp_iter.h"

static inline gfn_t gfn_round_for_level(gfn_t gfn, int level)
{
	return gfn & ~(KVM_PAGES_PER_HPAGE(level) - 1);
}

/* Re-read the SPTE for the current gfn at the current level. */
static void tdp_iter_refresh_sptep(struct tdp_iter *iter)
{
	iter->sptep = iter->pt_path[iter->level - 1] +
		      spte_index(iter->gfn, iter->level);
	iter->old_spte = kvm_tdp_mmu_read_spte(iter->sptep);
}

void tdp_iter_restart(struct tdp_iter *iter)
{
	iter->yielded = false;
	iter->yielded_gfn = iter->next_last_level_gfn;
	iter->level = iter->root_level;
	iter->gfn = gfn_round_for_level(iter->next_last_level_gfn, iter->level);
	tdp_iter_refresh_sptep(iter);
	iter->valid = true;
}

void tdp_iter_start(struct tdp_iter *iter, struct kvm_mmu_page *root,
		    int min_level, gfn_t next_last_level_gfn)
{
	union kvm_mmu_page_role role;

	if (!root) {
		iter->valid = false;
		return;
	}
	/* Lockless walks too: the root may be invalidated meanwhile. */
	role = sp_role(root);
	if (role.level < 1 || role.level > PT64_ROOT_MAX_LEVEL) {
		iter->valid = false;
		return;
	}
	iter->next_last_level_gfn = next_last_level_gfn;
	iter->root_level = (int)role.level;
	iter->min_level = min_level;
	iter->pt_path[iter->root_level - 1] = root->spt;
	iter->as_id = (int)role.as_id;
	tdp_iter_restart(iter);
}

/* Step down into the table the current SPTE points to, if any. */
static bool try_step_down(struct tdp_iter *iter)
{
	_Atomic uint64_t *child;

	if (iter->level == iter->min_level)
		return false;
	/* Re-read: the SPTE may have changed since it was last looked at. */
	iter->old_spte = kvm_tdp_mmu_read_spte(iter->sptep);
	child = spte_to_child_pt(iter->old_spte, iter->level);
	if (!child)
		return false;
	iter->level--;
	iter->pt_path[iter->level - 1] = child;
	iter->gfn = gfn_round_for_level(iter->next_last_level_gfn, iter->level);
	tdp_iter_refresh_sptep(iter);
	return true;
}

/* Next SPTE in the same table, if the current one is not its last. */
static bool try_step_side(struct tdp_iter *iter)
{
	if (spte_index(iter->gfn, iter->level) == SPTE_ENT_PER_PAGE - 1)
		return false;
	iter->gfn += KVM_PAGES_PER_HPAGE(iter->level);
	iter->next_last_level_gfn = iter->gfn;
	iter->sptep++;
	iter->old_spte = kvm_tdp_mmu_read_spte(iter->sptep);
	return true;
}

static bool try_step_up(struct tdp_iter *iter)
{
	if (iter->level == iter->root_level)
		return false;
	iter->level++;
	iter->gfn = gfn_round_for_level(iter->gfn, iter->level);
	tdp_iter_refresh_sptep(iter);
	return true;
}

/*
 * Pre-order: down if possible, else to the next sibling, else up until a
 * level has a next sibling.  Past the last entry of the root, invalid.
 */
void tdp_iter_next(struct tdp_iter *iter)
{
	if (iter->yielded) {
		tdp_iter_restart(iter);
		return;
	}
	if (try_step_down(iter))
		return;
	do {
		if (try_step_side(iter))
			return;
	} while (try_step_up(iter));
	iter->valid = false;
}
