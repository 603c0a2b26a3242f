/* SPDX-License-Identifier: MIT */
/*
 * The TDP MMU (arch/x86/kvm/mmu/tdp_mmu.c): page tables whose SPTEs change
 * with mmu_lock held for *read* only by atomic compare-and-exchange, with the
 * frozen-SPTE protocol for multi-step changes, and whose page-table pages
 * are freed after an RCU grace period.
 *
 * Lock modes (kvm-brief.md 4.7):
 *   fault install, split, huge-page recovery, write-protect for logging,
 *   zap of invalidated roots ................................. read
 *   notifier unmap, slot zap, clear dirty masked, aging, zap all ... write
 *   fast page fault, D-bit harvest .................. none (RCU + cmpxchg)
 */
#ifndef UKVM_X86_MMU_TDP_MMU_H
#define UKVM_X86_MMU_TDP_MMU_H

#include "x86/mmu/tdp_iter.h"

/* Roots (tdp_mmu.c) */
void kvm_mmu_init_tdp_mmu(struct kvm *kvm);
void kvm_mmu_uninit_tdp_mmu(struct kvm *kvm);
struct kvm_mmu_page *kvm_tdp_mmu_alloc_root(struct kvm_vcpu *vcpu);
bool kvm_tdp_mmu_get_root(struct kvm_mmu_page *root);
void kvm_tdp_mmu_put_root(struct kvm *kvm, struct kvm_mmu_page *root);
bool is_obsolete_root(struct kvm_mmu_page *root);
unsigned long kvm_tdp_mmu_nr_roots(struct kvm *kvm);

/* Low-level SPTE updates (tdp_mmu.c) */
uint64_t kvm_tdp_mmu_write_spte(_Atomic uint64_t *sptep, uint64_t old_spte,
				uint64_t new_spte, int level);
int tdp_mmu_set_spte_atomic(struct kvm *kvm, struct tdp_iter *iter,
			    uint64_t new_spte);
void tdp_mmu_iter_set_spte(struct kvm *kvm, struct tdp_iter *iter,
			   uint64_t new_spte);
uint64_t tdp_mmu_clear_spte_bits(_Atomic uint64_t *sptep, uint64_t old_spte,
				 uint64_t mask, int level);
int tdp_mmu_zap_spte_atomic(struct kvm *kvm, struct tdp_iter *iter);
bool tdp_mmu_iter_cond_resched(struct kvm *kvm, struct tdp_iter *iter,
			       bool flush, bool shared);
struct kvm_mmu_page *tdp_mmu_alloc_sp(struct kvm_vcpu *vcpu);
void tdp_mmu_free_sp(struct kvm_mmu_page *sp);
void tdp_mmu_init_child_sp(struct kvm_mmu_page *child, struct tdp_iter *iter);

/* Root iteration (lockless list walk inside RCU or under mmu_lock). */
#define for_each_tdp_mmu_root(kvm, root)                                      \
	ukvm_list_for_each_entry_rcu(root, &kvm_x86(kvm)->tdp_mmu_roots, link)

/* Faults (tdp_mmu_map.c) */
int kvm_tdp_mmu_map(struct kvm_vcpu *vcpu, struct kvm_page_fault *fault);
_Atomic uint64_t *kvm_tdp_mmu_fast_pf_get_last_sptep(struct kvm_vcpu *vcpu,
						     gfn_t gfn, uint64_t *spte,
						     int *level);
int kvm_tdp_mmu_get_walk(struct kvm_vcpu *vcpu, gfn_t gfn, uint64_t *sptes,
			 int *root_level);

/* Zapping (tdp_mmu_zap.c) */
bool kvm_tdp_mmu_unmap_gfn_range(struct kvm *kvm, struct kvm_gfn_range *range,
				 bool flush);
bool kvm_tdp_mmu_zap_leafs(struct kvm *kvm, int as_id, gfn_t start, gfn_t end,
			   bool flush);
void kvm_tdp_mmu_zap_all(struct kvm *kvm);
void kvm_tdp_mmu_invalidate_all_roots(struct kvm *kvm);
void kvm_tdp_mmu_zap_invalidated_roots(struct kvm *kvm, bool shared);
void kvm_tdp_mmu_recover_huge_pages(struct kvm *kvm,
				    const struct kvm_memory_slot *slot);

/* Dirty logging and aging (tdp_mmu_dirty.c) */
bool kvm_tdp_mmu_wrprot_slot(struct kvm *kvm, const struct kvm_memory_slot *slot,
			     int min_level);
bool kvm_tdp_mmu_clear_dirty_slot(struct kvm *kvm,
				  const struct kvm_memory_slot *slot);
void kvm_tdp_mmu_clear_dirty_pt_masked(struct kvm *kvm,
				       struct kvm_memory_slot *slot,
				       gfn_t gfn, unsigned long mask,
				       bool wrprot);
bool kvm_tdp_mmu_write_protect_gfn(struct kvm *kvm, struct kvm_memory_slot *slot,
				   gfn_t gfn, int min_level);
/* Indirect shadow pages: protect a shadowed gfn (W and MMU-writable). */
bool kvm_tdp_mmu_write_protect_shadowed_gfn(struct kvm *kvm, int as_id, gfn_t gfn);
bool kvm_tdp_mmu_gfn_maybe_writable(struct kvm *kvm, int as_id, gfn_t gfn);
void kvm_tdp_mmu_harvest_dirty(struct kvm *kvm, struct kvm_memory_slot *slot);
bool kvm_tdp_mmu_age_gfn_range(struct kvm *kvm, struct kvm_gfn_range *range);
bool kvm_tdp_mmu_test_age_gfn(struct kvm *kvm, struct kvm_gfn_range *range);

#endif /* UKVM_X86_MMU_TDP_MMU_H */
