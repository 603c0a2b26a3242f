// SPDX-License-Identifier: MIT
/*
 * The hva index of a memslot set: an interval tree, i.e. a red-black tree
 * (libbsd <sys/tree.h>) keyed by (userspace_addr, id) and augmented with the
 * largest hva_last of each subtree, so that the MMU-notifier walk finds every
 * slot intersecting an hva range in O(log n + k).  Slots may alias the same
 * host memory, hence an interval tree and not a plain search tree.
 *
 * <sys/tree.h> recomputes the augmentation of the nodes a rotation moves
 * (RB_AUGMENT); after an insertion or removal we recompute the path from the
 * changed position to the root ourselves.
 */
#include "kvm/kvm_host.h"

static void hva_augment(struct kvm_memory_slot *s, int idx);
#define RB_AUGMENT(x) hva_augment((x), HVA_IDX)
#include <bsd/sys/tree.h>

static inline unsigned long hva_last(const struct kvm_memory_slot *s)
{
	return s->userspace_addr + (s->npages << PAGE_SHIFT) - 1;
}

static int hva_cmp(struct kvm_memory_slot *a, struct kvm_memory_slot *b)
{
	if (a->userspace_addr != b->userspace_addr)
		return a->userspace_addr < b->userspace_addr ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

RB_HEAD(hva_tree0, kvm_memory_slot);
RB_HEAD(hva_tree1, kvm_memory_slot);
#define HVA_IDX 0
RB_GENERATE_INTERNAL(hva_tree0, kvm_memory_slot, hva_node[0], hva_cmp,
		     __attribute__((unused)) static)
#undef HVA_IDX
#define HVA_IDX 1
RB_GENERATE_INTERNAL(hva_tree1, kvm_memory_slot, hva_node[1], hva_cmp,
		     __attribute__((unused)) static)
#undef HVA_IDX

#define LEFT(s, i)	((s)->hva_node[i].rbe_left)
#define RIGHT(s, i)	((s)->hva_node[i].rbe_right)
#define PARENT(s, i)	((s)->hva_node[i].rbe_parent)
#define SUBLAST(s, i)	((s)->hva_node[i].subtree_last)

static unsigned long compute_last(struct kvm_memory_slot *s, int idx)
{
	unsigned long m = hva_last(s);

	if (LEFT(s, idx) && SUBLAST(LEFT(s, idx), idx) > m)
		m = SUBLAST(LEFT(s, idx), idx);
	if (RIGHT(s, idx) && SUBLAST(RIGHT(s, idx), idx) > m)
		m = SUBLAST(RIGHT(s, idx), idx);
	return m;
}

static void hva_augment(struct kvm_memory_slot *s, int idx)
{
	SUBLAST(s, idx) = compute_last(s, idx);
}

static void augment_to_root(struct kvm_memory_slot *s, int idx)
{
	for (; s; s = PARENT(s, idx))
		hva_augment(s, idx);
}

void memslot_hva_insert(struct memslot_hva_root *root, int idx,
			struct kvm_memory_slot *slot)
{
	struct kvm_memory_slot *dup;

	SUBLAST(slot, idx) = hva_last(slot);
	if (idx)
		dup = RB_INSERT(hva_tree1, (struct hva_tree1 *)root, slot);
	else
		dup = RB_INSERT(hva_tree0, (struct hva_tree0 *)root, slot);
	UKVM_BUG_ON(dup);
	augment_to_root(slot, idx);
}

void memslot_hva_remove(struct memslot_hva_root *root, int idx,
			struct kvm_memory_slot *slot)
{
	struct kvm_memory_slot *fix;

	/*
	 * With two children the library walks the whole path up from the
	 * successor's old position itself; with fewer, only the parent is
	 * recomputed, so finish the path from there.
	 */
	fix = (LEFT(slot, idx) && RIGHT(slot, idx)) ? NULL : PARENT(slot, idx);
	if (idx)
		RB_REMOVE(hva_tree1, (struct hva_tree1 *)root, slot);
	else
		RB_REMOVE(hva_tree0, (struct hva_tree0 *)root, slot);
	augment_to_root(fix, idx);
}

/* Leftmost slot of the subtree at @node intersecting [start, last]. */
static struct kvm_memory_slot *subtree_search(struct kvm_memory_slot *node,
					      int idx, unsigned long start,
					      unsigned long last)
{
	for (;;) {
		struct kvm_memory_slot *l = LEFT(node, idx);

		if (l && SUBLAST(l, idx) >= start) {
			node = l;
			continue;
		}
		if (node->userspace_addr <= last) {
			if (hva_last(node) >= start)
				return node;
			node = RIGHT(node, idx);
			if (node && SUBLAST(node, idx) >= start)
				continue;
		}
		return NULL;
	}
}

struct kvm_memory_slot *memslot_hva_first(struct kvm_memslots *slots,
					  unsigned long start,
					  unsigned long last)
{
	struct kvm_memory_slot *root = slots->hva_tree.rbh_root;

	if (!root || SUBLAST(root, slots->node_idx) < start)
		return NULL;
	return subtree_search(root, slots->node_idx, start, last);
}

struct kvm_memory_slot *memslot_hva_next(struct kvm_memslots *slots,
					 struct kvm_memory_slot *node,
					 unsigned long start,
					 unsigned long last)
{
	int idx = slots->node_idx;
	struct kvm_memory_slot *rb = RIGHT(node, idx), *prev;

	for (;;) {
		/* Anything to the right that could still intersect? */
		if (rb && SUBLAST(rb, idx) >= start)
			return subtree_search(rb, idx, start, last);
		/* Climb until we arrive from a left child. */
		do {
			rb = PARENT(node, idx);
			prev = node;
			node = rb;
		} while (rb && prev == RIGHT(rb, idx));
		if (!rb || rb->userspace_addr > last)
			return NULL;
		if (hva_last(rb) >= start)
			return rb;
		rb = RIGHT(rb, idx);
	}
}

static bool check_node(struct kvm_memory_slot *s, int idx)
{
	if (!s)
		return true;
	if (!check_node(LEFT(s, idx), idx) || !check_node(RIGHT(s, idx), idx))
		return false;
	return SUBLAST(s, idx) == compute_last(s, idx);
}

bool memslot_hva_check(struct memslot_hva_root *root, int idx)
{
	return check_node(root->rbh_root, idx);
}
