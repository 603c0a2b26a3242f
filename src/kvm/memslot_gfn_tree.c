// SPDX-License-Identifier: MIT
/*
 * The gfn index of a memslot set: a red-black tree (libbsd <sys/tree.h>)
 * keyed by base_gfn.  Slots of one address space never overlap, so ordering
 * by base_gfn also orders the ends, which makes "the slot containing gfn"
 * and "the first slot ending after gfn" plain descents.
 */
#include <bsd/sys/tree.h>

#include "kvm/kvm_host.h"

static int gfn_cmp(struct kvm_memory_slot *a, struct kvm_memory_slot *b)
{
	return a->base_gfn < b->base_gfn ? -1 : a->base_gfn > b->base_gfn;
}

RB_HEAD(gfn_tree0, kvm_memory_slot);
RB_HEAD(gfn_tree1, kvm_memory_slot);
RB_GENERATE_INTERNAL(gfn_tree0, kvm_memory_slot, gfn_node[0], gfn_cmp,
		     __attribute__((unused)) static)
RB_GENERATE_INTERNAL(gfn_tree1, kvm_memory_slot, gfn_node[1], gfn_cmp,
		     __attribute__((unused)) static)

#define LEFT(s, i)	((s)->gfn_node[i].rbe_left)
#define RIGHT(s, i)	((s)->gfn_node[i].rbe_right)
#define PARENT(s, i)	((s)->gfn_node[i].rbe_parent)

void memslot_gfn_insert(struct memslot_gfn_root *root, int idx,
			struct kvm_memory_slot *slot)
{
	struct kvm_memory_slot *dup;

	if (idx)
		dup = RB_INSERT(gfn_tree1, (struct gfn_tree1 *)root, slot);
	else
		dup = RB_INSERT(gfn_tree0, (struct gfn_tree0 *)root, slot);
	UKVM_BUG_ON(dup);	/* callers checked for overlap */
}

void memslot_gfn_remove(struct memslot_gfn_root *root, int idx,
			struct kvm_memory_slot *slot)
{
	if (idx)
		RB_REMOVE(gfn_tree1, (struct gfn_tree1 *)root, slot);
	else
		RB_REMOVE(gfn_tree0, (struct gfn_tree0 *)root, slot);
}

void memslot_gfn_replace(struct memslot_gfn_root *root, int idx,
			 struct kvm_memory_slot *old,
			 struct kvm_memory_slot *new)
{
	struct kvm_memory_slot *parent = PARENT(old, idx);

	UKVM_BUG_ON(old->base_gfn != new->base_gfn);
	new->gfn_node[idx] = old->gfn_node[idx];
	if (!parent)
		root->rbh_root = new;
	else if (LEFT(parent, idx) == old)
		LEFT(parent, idx) = new;
	else
		RIGHT(parent, idx) = new;
	if (LEFT(new, idx))
		PARENT(LEFT(new, idx), idx) = new;
	if (RIGHT(new, idx))
		PARENT(RIGHT(new, idx), idx) = new;
}

struct kvm_memory_slot *memslot_gfn_search(struct memslot_gfn_root *root,
					   int idx, gfn_t gfn, bool approx)
{
	struct kvm_memory_slot *node = root->rbh_root, *last = NULL;

	while (node) {
		last = node;
		if (gfn >= node->base_gfn) {
			if (gfn < node->base_gfn + node->npages)
				return node;
			node = RIGHT(node, idx);
		} else {
			node = LEFT(node, idx);
		}
	}
	return approx ? last : NULL;
}

/* The lowest slot whose range ends after @start, if it begins before @end. */
struct kvm_memory_slot *memslot_gfn_first(struct kvm_memslots *slots,
					  gfn_t start, gfn_t end)
{
	int idx = slots->node_idx;
	struct kvm_memory_slot *node = slots->gfn_tree.rbh_root, *best = NULL;

	while (node) {
		if (node->base_gfn + node->npages > start) {
			best = node;
			node = LEFT(node, idx);
		} else {
			node = RIGHT(node, idx);
		}
	}
	if (best && best->base_gfn < end)
		return best;
	return NULL;
}

struct kvm_memory_slot *memslot_gfn_next(struct kvm_memslots *slots,
					 struct kvm_memory_slot *slot,
					 gfn_t end)
{
	struct kvm_memory_slot *next;

	if (slots->node_idx)
		next = RB_NEXT(gfn_tree1, NULL, slot);
	else
		next = RB_NEXT(gfn_tree0, NULL, slot);
	if (next && next->base_gfn < end)
		return next;
	return NULL;
}
