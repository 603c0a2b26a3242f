// SPDX-License-Identifier: MIT
/*
 * KVM_SET_USER_MEMORY_REGION: validation with KVM's errnos, then the
 * CREATE / DELETE / MOVE / FLAGS_ONLY sequences of kvm-brief.md 2.4-2.5.
 *
 * Locking: the whole operation runs under kvm->slots_lock; kvm_set_memslot()
 * takes kvm->slots_arch_lock, every kvm_swap_active_memslots() drops it
 * before its grace period, and the DELETE/MOVE pre-invalidation takes it
 * back.  On every error path nothing visible has changed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/kvm_internal.h"
#include "sync/bug.h"
#include "sync/race.h"
#include "ukvm/ukvm.h"

static bool hva_range_ok(const struct kvm *kvm, uint64_t addr, uint64_t size)
{
	/* access_ok(): the whole range lies below TASK_SIZE_MAX, no wrap. */
	return size <= kvm->hva_limit && addr <= kvm->hva_limit - size;
}

static int check_memory_region_flags(const struct kvm_userspace_memory_region *mem)
{
	uint32_t valid = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY;

	return (mem->flags & ~valid) ? -EINVAL : 0;
}

static int kvm_alloc_dirty_bitmap(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	unsigned long bytes = kvm_dirty_bitmap_bytes(slot);

	/* Two halves: the live bitmap and a scratch copy for GET/CLEAR. */
	slot->dirty_bitmap = calloc(2, bytes ? bytes : sizeof(unsigned long));
	if (!slot->dirty_bitmap)
		return -ENOMEM;
	if (kvm->manual_dirty_log_protect & KVM_DIRTY_LOG_INITIALLY_SET) {
		/* Only the bits of real pages: the tail of the last word stays 0. */
		for (unsigned long i = 0; i < slot->npages; i++)
			slot->dirty_bitmap[i / 64] |= 1UL << (i % 64);
	}
	return 0;
}

static int kvm_prepare_memory_region(struct kvm *kvm,
				     const struct kvm_memory_slot *old,
				     struct kvm_memory_slot *new,
				     enum kvm_mr_change change)
{
	int r = 0;

	if (change != KVM_MR_DELETE) {
		if (!(new->flags & KVM_MEM_LOG_DIRTY_PAGES))
			new->dirty_bitmap = NULL;
		else if (old && old->dirty_bitmap)
			new->dirty_bitmap = old->dirty_bitmap;
		else if (kvm_use_dirty_bitmap(kvm))
			r = kvm_alloc_dirty_bitmap(kvm, new);
		else	/* a dirty ring without the backup bitmap */
			new->dirty_bitmap = NULL;
		if (r)
			return r;
	}
	if (kvm_arch_has(kvm, prepare_memory_region))
		r = kvm->arch_ops->prepare_memory_region(kvm, old, new, change);
	/* Only free a bitmap this function allocated. */
	if (r && new && new->dirty_bitmap && (!old || !old->dirty_bitmap)) {
		free(new->dirty_bitmap);
		new->dirty_bitmap = NULL;
	}
	return r;
}

static void kvm_commit_memory_region(struct kvm *kvm,
				     struct kvm_memory_slot *old,
				     const struct kvm_memory_slot *new,
				     enum kvm_mr_change change)
{
	uint32_t old_flags = old ? old->flags : 0;
	uint32_t new_flags = new ? new->flags : 0;

	lockdep_assert_held(&kvm->slots_lock);
	if (change == KVM_MR_CREATE)
		kvm->nr_memslot_pages += new->npages;
	else if (change == KVM_MR_DELETE)
		kvm->nr_memslot_pages -= old->npages;
	if ((old_flags ^ new_flags) & KVM_MEM_LOG_DIRTY_PAGES) {
		if (new_flags & KVM_MEM_LOG_DIRTY_PAGES)
			kvm->nr_memslots_dirty_logging++;
		else
			kvm->nr_memslots_dirty_logging--;
	}

	/* The arch hook may write-protect for dirty logging (FLAGS_ONLY). */
	kvm_arch_call(kvm, commit_memory_region, kvm, old, new, change);

	switch (change) {
	case KVM_MR_CREATE:
		break;
	case KVM_MR_DELETE:
		kvm_free_memslot(kvm, old);
		break;
	case KVM_MR_MOVE:
	case KVM_MR_FLAGS_ONLY:
		/* @new may have inherited the bitmap and the arch data. */
		if (old->dirty_bitmap && old->dirty_bitmap != new->dirty_bitmap)
			free(old->dirty_bitmap);
		if (old->arch && old->arch != new->arch)
			kvm_arch_call(kvm, free_memslot, kvm, old);
		free(old);
		break;
	}
}

/*
 * DELETE and MOVE: publish a copy of @old flagged INVALID first, so that no
 * new SPTE can be created for it (faults on an INVALID slot retry), zap what
 * exists, then carry on with slots_arch_lock held again.
 */
static void kvm_invalidate_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
				   struct kvm_memory_slot *invalid_slot)
{
	kvm_copy_memslot(invalid_slot, old);
	invalid_slot->flags |= KVM_MEMSLOT_INVALID;
	kvm_replace_memslot(kvm, old, invalid_slot);

	/*
	 * Publish it, but leave the old slot in the set that becomes inactive:
	 * a failure later on re-publishes it unchanged.
	 */
	kvm_swap_active_memslots(kvm, old->as_id);

	/* Readers of the old set are gone: zap every mapping of the range. */
	kvm_arch_call(kvm, flush_shadow_memslot, kvm, old);
	kvm_arch_call(kvm, guest_memory_reclaimed, kvm);

	mutex_lock(&kvm->slots_arch_lock);
	/*
	 * The invalid slot was the active one while slots_arch_lock was free,
	 * so its arch data is the freshest: take it back.
	 */
	old->arch = invalid_slot->arch;
}

static int kvm_set_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
			   struct kvm_memory_slot *new,
			   enum kvm_mr_change change)
{
	struct kvm_memory_slot *invalid_slot = NULL;
	int r;

	lockdep_assert_held(&kvm->slots_lock);
	RACE_POINT(SLOTS_LOCK_HELD);

	/* Held from before the memslots are read until the changes are done. */
	mutex_lock(&kvm->slots_arch_lock);

	if (change == KVM_MR_DELETE || change == KVM_MR_MOVE) {
		invalid_slot = calloc(1, sizeof(*invalid_slot));
		if (!invalid_slot) {
			mutex_unlock(&kvm->slots_arch_lock);
			return -ENOMEM;
		}
		kvm_invalidate_memslot(kvm, old, invalid_slot);
	}

	r = kvm_prepare_memory_region(kvm, old, new, change);
	if (r) {
		if (invalid_slot) {
			/* Put the old slot back where the invalid one is. */
			kvm_activate_memslot(kvm, invalid_slot, old);
			free(invalid_slot);
		} else {
			mutex_unlock(&kvm->slots_arch_lock);
		}
		return r;
	}

	switch (change) {
	case KVM_MR_CREATE:
		kvm_replace_memslot(kvm, NULL, new);
		kvm_activate_memslot(kvm, NULL, new);
		break;
	case KVM_MR_DELETE:
		/* The inactive set still has @old, the active one @invalid. */
		kvm_replace_memslot(kvm, old, NULL);
		kvm_activate_memslot(kvm, invalid_slot, NULL);
		break;
	case KVM_MR_MOVE:
		kvm_replace_memslot(kvm, old, new);
		kvm_activate_memslot(kvm, invalid_slot, new);
		break;
	case KVM_MR_FLAGS_ONLY:
		kvm_replace_memslot(kvm, old, new);
		kvm_activate_memslot(kvm, old, new);
		break;
	}
	free(invalid_slot);

	kvm_commit_memory_region(kvm, old, new, change);
	return 0;
}

static void count_change(struct kvm *kvm, enum kvm_mr_change change)
{
	_Atomic unsigned long *c[] = {
		[KVM_MR_CREATE] = &kvm->stat.memslot_create,
		[KVM_MR_DELETE] = &kvm->stat.memslot_delete,
		[KVM_MR_MOVE] = &kvm->stat.memslot_move,
		[KVM_MR_FLAGS_ONLY] = &kvm->stat.memslot_flags,
	};
	atomic_fetch_add_explicit(c[change], 1, memory_order_relaxed);
}

/* The checks of kvm-brief.md 2.3, in KVM's order, each with KVM's errno. */
int kvm_set_memory_region(struct kvm *kvm,
			  const struct kvm_userspace_memory_region *mem)
{
	struct kvm_memory_slot *old, *new;
	struct kvm_memslots *slots;
	enum kvm_mr_change change;
	unsigned long npages;
	unsigned int as_id, id;
	gfn_t base_gfn;
	int r;

	lockdep_assert_held(&kvm->slots_lock);

	r = check_memory_region_flags(mem);
	if (r)
		return r;
	as_id = mem->slot >> 16;
	id = (uint16_t)mem->slot;

	if ((mem->memory_size & (PAGE_SIZE - 1)) ||
	    mem->memory_size != (unsigned long)mem->memory_size)
		return -EINVAL;
	if (mem->guest_phys_addr & (PAGE_SIZE - 1))
		return -EINVAL;
	if ((mem->userspace_addr & (PAGE_SIZE - 1)) ||
	    !hva_range_ok(kvm, mem->userspace_addr, mem->memory_size))
		return -EINVAL;
	if (as_id >= (unsigned int)kvm->nr_as_ids || id >= KVM_MEM_SLOTS_NUM)
		return -EINVAL;
	if (mem->guest_phys_addr + mem->memory_size < mem->guest_phys_addr)
		return -EINVAL;
	if ((mem->memory_size >> PAGE_SHIFT) > KVM_MEM_MAX_NR_PAGES)
		return -EINVAL;

	slots = __kvm_memslots(kvm, as_id);
	old = id_to_memslot(slots, (int)id);

	if (!mem->memory_size) {
		if (!old || !old->npages)
			return -EINVAL;
		if (UKVM_WARN_ON(kvm->nr_memslot_pages < old->npages))
			return -EIO;
		change = KVM_MR_DELETE;
		r = kvm_set_memslot(kvm, old, NULL, change);
		goto out;
	}

	base_gfn = mem->guest_phys_addr >> PAGE_SHIFT;
	npages = mem->memory_size >> PAGE_SHIFT;

	if (!old || !old->npages) {
		change = KVM_MR_CREATE;
		/* The total of all slots must not wrap around. */
		if (kvm->nr_memslot_pages + npages < kvm->nr_memslot_pages)
			return -EINVAL;
	} else {
		/* An existing slot can move or change flags, nothing else. */
		if (mem->userspace_addr != old->userspace_addr ||
		    npages != old->npages ||
		    ((mem->flags ^ old->flags) & KVM_MEM_READONLY))
			return -EINVAL;
		if (base_gfn != old->base_gfn)
			change = KVM_MR_MOVE;
		else if (mem->flags != old->flags)
			change = KVM_MR_FLAGS_ONLY;
		else
			return 0;	/* identical: nothing to do */
	}

	if ((change == KVM_MR_CREATE || change == KVM_MR_MOVE) &&
	    kvm_check_memslot_overlap(slots, (int)id, base_gfn, base_gfn + npages))
		return -EEXIST;

	new = calloc(1, sizeof(*new));
	if (!new)
		return -ENOMEM;
	new->as_id = (uint16_t)as_id;
	new->id = (short)id;
	new->base_gfn = base_gfn;
	new->npages = npages;
	new->flags = mem->flags;
	new->userspace_addr = mem->userspace_addr;

	r = kvm_set_memslot(kvm, old, new, change);
	if (r)
		free(new);
out:
	if (r)
		atomic_fetch_add_explicit(&kvm->stat.memslot_errors, 1,
					  memory_order_relaxed);
	else
		count_change(kvm, change);
	return r;
}

/* The KVM_SET_USER_MEMORY_REGION ioctl. */
int ukvm_set_user_memory_region(struct kvm *kvm,
				const struct kvm_userspace_memory_region *mem)
{
	int r;

	if (!kvm || !mem)
		return -EFAULT;
	if ((uint16_t)mem->slot >= KVM_USER_MEM_SLOTS)
		return -EINVAL;
	mutex_lock(&kvm->slots_lock);
	r = kvm_set_memory_region(kvm, mem);
	mutex_unlock(&kvm->slots_lock);
	return r;
}

/*
 * Arch-internal slots (x86's APIC-access page, TSS, identity map): an id
 * above the user range, no flags, caller holds slots_lock.  It can be
 * reached from a vCPU (vcpu->mutex held), which is why vcpu->mutex is taken
 * outside slots_lock.
 */
int kvm_set_internal_memslot(struct kvm *kvm,
			     const struct kvm_userspace_memory_region *mem)
{
	if (UKVM_WARN_ON((uint16_t)mem->slot < KVM_USER_MEM_SLOTS) ||
	    UKVM_WARN_ON(mem->flags))
		return -EINVAL;
	return kvm_set_memory_region(kvm, mem);
}
