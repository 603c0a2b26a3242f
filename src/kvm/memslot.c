// SPDX-License-Identifier: MIT
/*
 * Memslot sets: lookups, the active/inactive pair, and the swap that
 * publishes a new set (kvm-brief.md section 2).
 *
 * Each address space has two sets.  Readers (under kvm->srcu) only ever see
 * the active one, which is never modified while readers can reach it: every
 * edit goes to the inactive set, kvm_swap_active_memslots() publishes it and
 * waits for the readers of the old one (synchronize_srcu_expedited), and only
 * then is the old set, now inactive, edited to catch up.
 */
#include <errno.h>
#include <stdlib.h>

#include "kvm/kvm_arch.h"
#include "kvm/kvm_internal.h"
#include "sync/bug.h"
#include "sync/race.h"

void kvm_init_memslots(struct kvm *kvm)
{
	for (int as = 0; as < KVM_ADDRESS_SPACE_NUM; as++) {
		for (int j = 0; j < 2; j++) {
			struct kvm_memslots *slots = &kvm->__memslots[as][j];

			/* Distinct generations per address space: as, as + 2, ... */
			kvm_memslots_set_gen(slots, (uint64_t)as);
			slots->node_idx = j;
			atomic_init(&slots->last_used_slot, NULL);
			for (size_t b = 0; b < ARRAY_SIZE(slots->id_hash); b++)
				CDS_INIT_HLIST_HEAD(&slots->id_hash[b]);
		}
		kvm->memslots[as] = &kvm->__memslots[as][0];
	}
}

static inline unsigned int id_hash(int id)
{
	/* A multiplicative hash over the 16-bit id. */
	return ((unsigned int)id * 0x9E37u) >> (16 - KVM_MEMSLOT_ID_HASH_BITS) &
	       ((1u << KVM_MEMSLOT_ID_HASH_BITS) - 1);
}

struct kvm_memory_slot *id_to_memslot(struct kvm_memslots *slots, int id)
{
	struct cds_hlist_node *pos;
	int idx = slots->node_idx;

	cds_hlist_for_each(pos, &slots->id_hash[id_hash(id)]) {
		struct kvm_memory_slot *s =
			caa_container_of(pos, struct kvm_memory_slot, id_node[idx]);

		if (s->id == id)
			return s;
	}
	return NULL;
}

struct kvm_memory_slot *search_memslots(struct kvm_memslots *slots, gfn_t gfn,
					bool approx)
{
	return memslot_gfn_search(&slots->gfn_tree, slots->node_idx, gfn, approx);
}

static inline bool slot_contains(const struct kvm_memory_slot *s, gfn_t gfn)
{
	return s && gfn >= s->base_gfn && gfn < s->base_gfn + s->npages;
}

/* The set-wide last-used cache first, then the tree. */
struct kvm_memory_slot *__gfn_to_memslot(struct kvm_memslots *slots, gfn_t gfn)
{
	struct kvm_memory_slot *slot =
		atomic_load_explicit(&slots->last_used_slot, memory_order_relaxed);

	if (slot_contains(slot, gfn))
		return slot;
	slot = search_memslots(slots, gfn, false);
	if (slot)
		atomic_store_explicit(&slots->last_used_slot, slot,
				      memory_order_relaxed);
	return slot;
}

struct kvm_memory_slot *gfn_to_memslot(struct kvm *kvm, gfn_t gfn)
{
	return __gfn_to_memslot(kvm_memslots(kvm), gfn);
}

/* The vCPU's own cache, valid only for the generation it was filled in. */
struct kvm_memory_slot *kvm_vcpu_gfn_to_memslot(struct kvm_vcpu *vcpu, gfn_t gfn)
{
	struct kvm_memslots *slots = kvm_memslots(vcpu->kvm);
	uint64_t gen = kvm_memslots_gen(slots);
	struct kvm_memory_slot *slot;

	if (vcpu->last_used_slot_gen == gen &&
	    slot_contains(vcpu->last_used_slot, gfn))
		return vcpu->last_used_slot;
	slot = __gfn_to_memslot(slots, gfn);
	/* Never cache while a swap is in flight: the generation is in flux. */
	if (slot && !(gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS)) {
		vcpu->last_used_slot = slot;
		vcpu->last_used_slot_gen = gen;
	}
	return slot;
}

bool kvm_is_visible_memslot(const struct kvm_memory_slot *slot)
{
	return slot && slot->id < KVM_USER_MEM_SLOTS &&
	       !(slot->flags & KVM_MEMSLOT_INVALID);
}

unsigned long gfn_to_hva_memslot_prot(const struct kvm_memory_slot *slot,
				      gfn_t gfn, bool *writable)
{
	if (!slot || (slot->flags & KVM_MEMSLOT_INVALID))
		return KVM_HVA_ERR_BAD;
	if (writable)
		*writable = !(slot->flags & KVM_MEM_READONLY);
	return __gfn_to_hva_memslot(slot, gfn);
}

int kvm_memslots_count(struct kvm_memslots *slots)
{
	struct kvm_memory_slot *s;
	int n = 0;

	kvm_for_each_memslot(s, slots)
		n++;
	return n;
}

struct kvm_memslots *kvm_get_inactive_memslots(struct kvm *kvm, int as_id)
{
	struct kvm_memslots *active = __kvm_memslots(kvm, as_id);
	int node_idx_inactive = active->node_idx ^ 1;

	return &kvm->__memslots[as_id][node_idx_inactive];
}

/*
 * Replace @old by @new in the *inactive* set of their address space (either
 * may be NULL).  The only place that edits a memslot set.
 */
void kvm_replace_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
			 struct kvm_memory_slot *new)
{
	int as_id = old ? old->as_id : new->as_id;
	struct kvm_memslots *slots = kvm_get_inactive_memslots(kvm, as_id);
	int idx = slots->node_idx;

	lockdep_assert_held(&kvm->slots_lock);
	if (old) {
		cds_hlist_del(&old->id_node[idx]);
		memslot_hva_remove(&slots->hva_tree, idx, old);
		if (atomic_load_explicit(&slots->last_used_slot,
					 memory_order_relaxed) == old)
			atomic_store_explicit(&slots->last_used_slot, new,
					      memory_order_relaxed);
		if (!new) {
			memslot_gfn_remove(&slots->gfn_tree, idx, old);
			return;
		}
	}
	cds_hlist_add_head(&new->id_node[idx], &slots->id_hash[id_hash(new->id)]);
	memslot_hva_insert(&slots->hva_tree, idx, new);
	if (old && old->base_gfn == new->base_gfn) {
		memslot_gfn_replace(&slots->gfn_tree, idx, old, new);
	} else {
		if (old)
			memslot_gfn_remove(&slots->gfn_tree, idx, old);
		memslot_gfn_insert(&slots->gfn_tree, idx, new);
	}
}

/*
 * Publish the inactive set of @as_id.  Waits until no MMU-notifier
 * invalidation is between _start and _end, so that every start/end pair sees
 * one memslot set (the balance of mmu_invalidate_in_progress depends on it),
 * then waits for the readers of the old set.  Called with slots_arch_lock
 * held; drops it before synchronize_srcu so that vCPUs blocked on it inside
 * a kvm->srcu reader can finish.
 */
void kvm_swap_active_memslots(struct kvm *kvm, int as_id)
{
	struct kvm_memslots *slots = kvm_get_inactive_memslots(kvm, as_id);
	uint64_t gen = kvm_memslots_gen(__kvm_memslots(kvm, as_id));

	lockdep_assert_held(&kvm->slots_lock);
	lockdep_assert_held(&kvm->slots_arch_lock);
	UKVM_INVARIANT(!(gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS),
		       "active memslot generation %#llx has IN_PROGRESS set",
		       (unsigned long long)gen);
	/* A unique in-flux generation: no generation-tagged cache may hit. */
	kvm_memslots_set_gen(slots, gen | KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS);

	RACE_POINT(SWAP_BEFORE_WAIT);
	/* For the validator: waiting for the count is a sync of the window. */
	lock_map_sync(&kvm->mn_active_invalidate_map);
	spin_lock(&kvm->mn_invalidate_lock);
	prepare_to_rcuwait(&kvm->mn_memslots_update_rcuwait);
	while (kvm->mn_active_invalidate_count && !ukvm_unsafe(UNSAFE_SWAP_NO_WAIT)) {
		uint32_t t = rcuwait_ticket(&kvm->mn_memslots_update_rcuwait);

		spin_unlock(&kvm->mn_invalidate_lock);
		rcuwait_sleep(&kvm->mn_memslots_update_rcuwait, t);
		spin_lock(&kvm->mn_invalidate_lock);
	}
	finish_rcuwait(&kvm->mn_memslots_update_rcuwait);
	ukvm_rcu_assign_pointer(kvm->memslots[as_id], slots);
	spin_unlock(&kvm->mn_invalidate_lock);
	RACE_POINT(SWAP_PUBLISHED);

	/* Readers may now take slots_arch_lock, see the new set, and finish. */
	mutex_unlock(&kvm->slots_arch_lock);
	synchronize_srcu_expedited(&kvm->srcu);

	gen = (kvm_memslots_gen(slots) & ~KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS) +
	      KVM_ADDRESS_SPACE_NUM;
	kvm_arch_call(kvm, memslots_updated, kvm, gen);
	kvm_memslots_set_gen(slots, gen);
}

/*
 * Swap, then bring the set that became inactive up to date with the same
 * change (it is unreachable to readers after the swap's grace period).
 */
void kvm_activate_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
			  struct kvm_memory_slot *new)
{
	int as_id = old ? old->as_id : new->as_id;

	kvm_swap_active_memslots(kvm, as_id);
	kvm_replace_memslot(kvm, old, new);
}

/* kvm_copy_memslot(): data fields only, never the index nodes. */
void kvm_copy_memslot(struct kvm_memory_slot *dest,
		      const struct kvm_memory_slot *src)
{
	dest->base_gfn = src->base_gfn;
	dest->npages = src->npages;
	dest->dirty_bitmap = src->dirty_bitmap;
	dest->arch = src->arch;
	dest->userspace_addr = src->userspace_addr;
	dest->flags = src->flags;
	dest->id = src->id;
	dest->as_id = src->as_id;
}

/* Is any *other* slot of @slots overlapping [start, end)? */
bool kvm_check_memslot_overlap(struct kvm_memslots *slots, int id,
			       gfn_t start, gfn_t end)
{
	struct kvm_memory_slot *s;

	kvm_for_each_memslot_in_gfn_range(s, slots, start, end)
		if (s->id != id)
			return true;
	return false;
}

void kvm_free_memslot(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	free(slot->dirty_bitmap);
	slot->dirty_bitmap = NULL;
	kvm_arch_call(kvm, free_memslot, kvm, slot);
	free(slot);
}

/* VM teardown: no readers, no writers; each slot is in both sets. */
void kvm_free_memslots(struct kvm *kvm)
{
	for (int as = 0; as < KVM_ADDRESS_SPACE_NUM; as++) {
		struct kvm_memslots *slots = &kvm->__memslots[as][1];
		int n = kvm_memslots_count(slots), i = 0;
		struct kvm_memory_slot **all, *s;

		if (!n)
			continue;
		/* Collect first: freeing while walking would climb freed nodes. */
		all = calloc((size_t)n, sizeof(*all));
		UKVM_BUG_ON(!all);
		kvm_for_each_memslot(s, slots)
			all[i++] = s;
		for (i = 0; i < n; i++)
			kvm_free_memslot(kvm, all[i]);
		free(all);
	}
}
