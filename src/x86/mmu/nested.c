// SPDX-License-Identifier: MIT
/*
 * L1 running L2 with nested EPT, as far as the MMU's locking sees it: the
 * vCPU-context operations that create and sync the indirect shadow pages of
 * L1's EPT12 tables (shadow.c), the VM-wide drop of them all, and the
 * emulation of a guest write KVM refused to map writable.
 *
 * kvm_x86_nested_shadow_gfns() is what a nested VM-entry or an emulated
 * INVEPT does to the EPT12 tables it walks: it runs as a vCPU ioctl
 * (vcpu->mutex, the vCPU's kvm->srcu read section), allocates outside
 * mmu_lock, then with mmu_lock held for write creates the pages that are
 * missing (write-protecting their gfns) and syncs the unsync ones:
 * write-protect again, flush remote TLBs, and only then clear unsync, so
 * that from the moment a page is sync no vCPU can write the gfn unseen.
 */
#include <errno.h>
#include <stdlib.h>

#include "sync/bug.h"
#include "x86/mmu/mmu.h"
#include "x86/mmu/tdp_mmu.h"

#define NESTED_MAX_GFNS	4096

/* Count the gfns without a page at @level (mmu_lock for read). */
static int nested_count_missing(struct kvm *kvm, const gfn_t *gfns, int n,
				int level)
{
	int missing = 0;

	read_lock(&kvm->mmu_lock);
	for (int i = 0; i < n; i++)
		if (!kvm_mmu_find_shadow_page(kvm, 0, gfns[i], level))
			missing++;
	read_unlock(&kvm->mmu_lock);
	return missing;
}

/*
 * One pass with mmu_lock held for write.  Returns -EAGAIN if the
 * pre-allocated pages ran out (pages were zapped since they were counted).
 */
static int nested_shadow_locked(struct kvm *kvm, const gfn_t *gfns,
				struct kvm_memory_slot **slots, int n, int level,
				struct kvm_mmu_page **cache, int *ncache)
{
	bool flush = false;
	int i;

	lockdep_assert_held_write(&kvm->mmu_lock);
	for (i = 0; i < n; i++) {
		struct kvm_mmu_page *sp = kvm_mmu_find_shadow_page(kvm, 0, gfns[i], level);

		if (!sp) {
			if (!*ncache)
				break;
			sp = kvm_mmu_get_shadow_page(kvm, slots[i], gfns[i], level,
						     &cache[*ncache - 1], &flush);
			(*ncache)--;
		}
		/* L1 may have written it: protect it again before re-reading. */
		if (atomic_load_explicit(&sp->unsync, memory_order_relaxed) &&
		    kvm_tdp_mmu_write_protect_shadowed_gfn(kvm, 0, gfns[i]))
			flush = true;
	}
	/* Before the protection is relied on, and before mmu_lock is dropped. */
	if (flush)
		kvm_flush_remote_tlbs(kvm);
	if (i < n)
		return -EAGAIN;
	for (i = 0; i < n; i++)
		kvm_mmu_sync_page(kvm, kvm_mmu_find_shadow_page(kvm, 0, gfns[i], level));
	return 0;
}

static int nested_shadow_gfns(struct kvm_vcpu *vcpu, const gfn_t *gfns,
			      struct kvm_memory_slot **slots, int n, int level)
{
	struct kvm *kvm = vcpu->kvm;
	struct kvm_mmu_page **cache = NULL;
	int ncache = 0, cap = 0, r;

	lockdep_assert_held(&vcpu->mutex);
	do {
		int missing = nested_count_missing(kvm, gfns, n, level);

		/* Allocate outside mmu_lock (it may sleep), consume under it. */
		might_sleep();
		if (missing > cap) {
			struct kvm_mmu_page **c = realloc(cache, sizeof(*c) * (size_t)missing);

			if (!c) {
				r = -ENOMEM;
				break;
			}
			cache = c;
			cap = missing;
		}
		while (ncache < missing) {
			cache[ncache] = calloc(1, sizeof(struct kvm_mmu_page));
			if (!cache[ncache]) {
				r = -ENOMEM;
				goto out;
			}
			ncache++;
		}
		write_lock(&kvm->mmu_lock);
		r = nested_shadow_locked(kvm, gfns, slots, n, level, cache, &ncache);
		write_unlock(&kvm->mmu_lock);
	} while (r == -EAGAIN);
out:
	while (ncache)
		free(cache[--ncache]);
	free(cache);
	return r;
}

/*
 * L1's vCPU walks the EPT12 tables at @gfns (guest tables of level @level:
 * PG_LEVEL_4K for last-level tables, which may go unsync; higher for upper
 * levels, which stay write-tracked) for L2: shadow the missing ones, sync
 * the unsync ones.  Every gfn must be in a memslot of address space 0.
 * Returns 0, -EINVAL, -EFAULT (a gfn outside guest memory), -EAGAIN (a
 * memslot being deleted or moved: retry), -ENOMEM, or -EIO (dead VM).
 */
int kvm_x86_nested_shadow_gfns(struct kvm_vcpu *vcpu, const gfn_t *gfns, int n,
			       int level)
{
	struct kvm_memory_slot **slots;
	int r;

	if (n < 0 || n > NESTED_MAX_GFNS || level < PG_LEVEL_4K ||
	    level > PT64_ROOT_4LEVEL)
		return -EINVAL;
	if (!n)
		return 0;
	if (!gfns)
		return -EFAULT;
	slots = calloc((size_t)n, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	r = kvm_vcpu_ioctl_begin(vcpu);
	if (r)
		goto out_free;
	kvm_vcpu_srcu_read_lock(vcpu);
	for (int i = 0; i < n && !r; i++) {
		slots[i] = gfns[i] > kvm_x86(vcpu->kvm)->max_gfn ? NULL :
			   kvm_vcpu_gfn_to_memslot(vcpu, gfns[i]);
		if (!slots[i])
			r = -EFAULT;
		/*
		 * An invalid slot's zap may already be past us (its grace
		 * period need not wait for this reader): a page made now
		 * could outlive the slot.  Faults retry there too.
		 */
		else if (slots[i]->flags & KVM_MEMSLOT_INVALID)
			r = -EAGAIN;
	}
	/* The slots stay valid while we hold kvm->srcu. */
	if (!r)
		r = nested_shadow_gfns(vcpu, gfns, slots, n, level);
	kvm_vcpu_srcu_read_unlock(vcpu);
	kvm_vcpu_ioctl_end(vcpu);
out_free:
	free(slots);
	return r;
}

/* L1 leaves nested mode for good (or its EPT12 is gone): drop every page. */
void kvm_x86_nested_zap_shadow(struct kvm *kvm)
{
	write_lock(&kvm->mmu_lock);
	kvm_mmu_zap_all_shadow(kvm);
	write_unlock(&kvm->mmu_lock);
}

/*
 * kvm_mmu_track_write(): a write KVM emulated landed on a gfn it may
 * shadow.  KVM zaps or updates the shadow entries derived from the written
 * guest entry here; ukvm's pages hold none, so it only counts the write.
 */
static void kvm_mmu_track_write(struct kvm_vcpu *vcpu, gfn_t gfn)
{
	struct kvm *kvm = vcpu->kvm;
	struct kvm_arch *ka = kvm_x86(kvm);

	/* Pairs with account_shadowed(): the data is visible, or we see the page. */
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&ka->indirect_shadow_pages, memory_order_relaxed))
		return;
	write_lock(&kvm->mmu_lock);
	for (int level = PG_LEVEL_4K; level <= PT64_ROOT_4LEVEL; level++) {
		if (kvm_mmu_find_shadow_page(kvm, 0, gfn, level)) {
			atomic_fetch_add_explicit(&ka->stat.mmu_pte_write, 1,
						  memory_order_relaxed);
			break;
		}
	}
	write_unlock(&kvm->mmu_lock);
}

/*
 * RET_PF_WRITE_PROTECTED: the fault path mapped @gpa read-only because its
 * gfn could not go unsync (write-tracked).  Emulate the guest's write of
 * @len bytes: store it through the host mapping as kvm_vcpu_write_guest()
 * does, log it, tell the shadow MMU.  vCPU context (vcpu->mutex and
 * kvm->srcu held).  -EAGAIN: no usable memslot right now, re-execute the
 * access (it faults again).
 */
int kvm_x86_emulate_write(struct kvm_vcpu *vcpu, gpa_t gpa, const void *val, int len)
{
	struct kvm *kvm = vcpu->kvm;
	gfn_t gfn = gpa_to_gfn(gpa);
	unsigned long offset = gpa & (PAGE_SIZE - 1);
	struct kvm_memory_slot *slot;
	int r;

	lockdep_assert_held(&vcpu->mutex);
	UKVM_BUG_ON(!srcu_read_lock_held(&kvm->srcu));
	if (len <= 0 || len > 8 || offset + (unsigned long)len > PAGE_SIZE)
		return -EINVAL;
	slot = gfn > kvm_x86(kvm)->max_gfn ? NULL : kvm_vcpu_gfn_to_memslot(vcpu, gfn);
	if (!slot || (slot->flags & KVM_MEMSLOT_INVALID))
		return -EAGAIN;
	/* Writes to a read-only slot are MMIO: they never get here. */
	if (UKVM_WARN_ON(slot->flags & KVM_MEM_READONLY))
		return -EFAULT;
	r = host_access(kvm->mm, __gfn_to_hva_memslot(slot, gfn) + offset,
			(void *)val, (size_t)len, true);
	if (r)
		return r;
	mark_page_dirty_in_slot(kvm, slot, gfn);
	kvm_mmu_track_write(vcpu, gfn);
	return 0;
}
