/* SPDX-License-Identifier: MIT */
/*
 * The two ordered indexes of a memslot set: the gfn tree (red-black tree by
 * base_gfn, non-overlapping ranges within an address space) and the hva
 * interval tree (hva ranges may overlap: aliases).  Both are libbsd's
 * <sys/tree.h> red-black trees; every slot embeds one node per memslot set
 * (node_idx 0 and 1), as in KVM, so the active and the inactive set can both
 * index it.  Lookups are O(log n).
 */
#ifndef UKVM_KVM_MEMSLOT_TREE_H
#define UKVM_KVM_MEMSLOT_TREE_H

#include <stdbool.h>

#include "kvm/kvm_types.h"

/* Layout-compatible with <sys/tree.h>'s RB_ENTRY / RB_HEAD. */
struct memslot_gfn_node {
	struct kvm_memory_slot *rbe_left, *rbe_right, *rbe_parent;
	int rbe_color;
};
struct memslot_hva_node {
	struct kvm_memory_slot *rbe_left, *rbe_right, *rbe_parent;
	int rbe_color;
	unsigned long subtree_last;	/* max hva_last in this subtree */
};
struct memslot_gfn_root { struct kvm_memory_slot *rbh_root; };
struct memslot_hva_root { struct kvm_memory_slot *rbh_root; };

/* The gfn tree (memslot_gfn_tree.c).  @idx is the set's node_idx. */
void memslot_gfn_insert(struct memslot_gfn_root *root, int idx,
			struct kvm_memory_slot *slot);
void memslot_gfn_remove(struct memslot_gfn_root *root, int idx,
			struct kvm_memory_slot *slot);
/* O(1): @new takes @old's place (same base_gfn). */
void memslot_gfn_replace(struct memslot_gfn_root *root, int idx,
			 struct kvm_memory_slot *old,
			 struct kvm_memory_slot *new);
/* The slot containing @gfn, or, if @approx, the nearest one. */
struct kvm_memory_slot *memslot_gfn_search(struct memslot_gfn_root *root,
					   int idx, gfn_t gfn, bool approx);
struct kvm_memory_slot *memslot_gfn_first(struct kvm_memslots *slots,
					  gfn_t start, gfn_t end);
struct kvm_memory_slot *memslot_gfn_next(struct kvm_memslots *slots,
					 struct kvm_memory_slot *slot,
					 gfn_t end);

/* The hva interval tree (memslot_hva_tree.c). */
void memslot_hva_insert(struct memslot_hva_root *root, int idx,
			struct kvm_memory_slot *slot);
void memslot_hva_remove(struct memslot_hva_root *root, int idx,
			struct kvm_memory_slot *slot);
struct kvm_memory_slot *memslot_hva_first(struct kvm_memslots *slots,
					  unsigned long start,
					  unsigned long last);
struct kvm_memory_slot *memslot_hva_next(struct kvm_memslots *slots,
					 struct kvm_memory_slot *slot,
					 unsigned long start,
					 unsigned long last);
/* Debug: every subtree_last of the tree equals its recomputation. */
bool memslot_hva_check(struct memslot_hva_root *root, int idx);

#endif /* UKVM_KVM_MEMSLOT_TREE_H */
