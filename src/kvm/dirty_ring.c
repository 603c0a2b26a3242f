// SPDX-License-Identifier: MIT
/*
 * The per-vCPU dirty ring (KVM_CAP_DIRTY_LOG_RING[_ACQ_REL], kvm-brief.md
 * 6.5): the ring's memory, pushing a dirty gfn from vCPU context, the
 * soft-full exit, and KVM_RESET_DIRTY_RINGS.
 *
 * An entry (struct kvm_dirty_gfn, shared with userspace) goes round
 *
 *     free (flags 0) --push, KVM--> DIRTY --harvest, VMM--> RESET
 *          ^                                                   |
 *          +-------------- KVM_RESET_DIRTY_RINGS --------------+
 *
 * and every change of state is a store-release of @flags that the next
 * owner reads with a load-acquire: KVM writes slot and offset before it
 * publishes DIRTY, the VMM reads them after it sees DIRTY and only then
 * publishes RESET, and the reset reads them after it sees RESET (the
 * _ACQ_REL contract; on x86 plain loads and stores would do).
 *
 * The ring has one producer, the vCPU's own thread (the running vCPU of
 * the thread that marks the page dirty), and one consumer on KVM's side,
 * the reset under kvm->slots_lock.  dirty_index - reset_index entries are in
 * use; at soft_limit (the size minus the reserved entries) the vCPU gets
 * KVM_REQ_DIRTY_RING_SOFT_FULL and exits to the VMM before it runs guest
 * code again, so what it pushes after the check -- a few gfns per exit --
 * fits in the reserve and the ring never overflows (Appendix B 13).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/kvm_internal.h"
#include "sync/bug.h"
#include "sync/race.h"
#include "ukvm/ukvm.h"

/*
 * Entries an architecture may push after the soft-full check, on top of
 * KVM's own reserve.  x86 with PML drains a whole PML buffer (512 gfns) into
 * the ring on a VM-exit, so real x86 hosts with PML reserve 64 + 512.  ukvm
 * has no PML (the Dirty-bit mode, its PML-like scheme, refuses the ring):
 * nothing to add.
 */
static uint32_t kvm_cpu_dirty_log_size(struct kvm *kvm)
{
	(void)kvm;
	return 0;
}

uint32_t kvm_dirty_ring_get_rsvd_entries(struct kvm *kvm)
{
	return KVM_DIRTY_RING_RSVD_ENTRIES + kvm_cpu_dirty_log_size(kvm);
}

/* Do memslots get a bitmap: no ring, or ring + bitmap. */
bool kvm_use_dirty_bitmap(struct kvm *kvm)
{
	lockdep_assert_held(&kvm->slots_lock);
	return !kvm_dirty_ring_size(kvm) || kvm->dirty_ring_with_bitmap;
}

/*
 * May a page be dirtied with no running vCPU?  In the kernel only arm64
 * says yes (saving the vGIC/ITS tables), and only with ring + bitmap;
 * ukvm offers ring + bitmap to every VM, so writes made outside vCPU
 * context go to the bitmap whenever it is on.
 */
bool kvm_arch_allow_write_without_running_vcpu(struct kvm *kvm)
{
	return kvm->dirty_ring_with_bitmap;
}

int kvm_dirty_ring_alloc(struct kvm *kvm, struct kvm_dirty_ring *ring, uint32_t bytes)
{
	/* What the VMM maps: whole pages, zeroed (every entry free). */
	ring->dirty_gfns = aligned_alloc(PAGE_SIZE, bytes);
	if (!ring->dirty_gfns)
		return -ENOMEM;
	memset(ring->dirty_gfns, 0, bytes);
	ring->size = bytes / sizeof(struct kvm_dirty_gfn);
	/* The capability checked size >= the reserved entries. */
	ring->soft_limit = ring->size - kvm_dirty_ring_get_rsvd_entries(kvm);
	atomic_init(&ring->dirty_index, 0);
	atomic_init(&ring->reset_index, 0);
	return 0;
}

void kvm_dirty_ring_free(struct kvm_dirty_ring *ring)
{
	free(ring->dirty_gfns);
	ring->dirty_gfns = NULL;
	ring->size = 0;
}

/*
 * Entries in use.  The acquire pairs with the reset's store-release of
 * reset_index: the reset's reads of the entries it freed happen before the
 * vCPU writes them again.
 */
static uint32_t kvm_dirty_ring_used(struct kvm_dirty_ring *ring)
{
	return atomic_load_explicit(&ring->dirty_index, memory_order_relaxed) -
	       atomic_load_explicit(&ring->reset_index, memory_order_acquire);
}

bool kvm_dirty_ring_soft_full(struct kvm_dirty_ring *ring)
{
	return ring->size && kvm_dirty_ring_used(ring) >= ring->soft_limit;
}

static bool kvm_dirty_gfn_harvested(struct kvm_dirty_gfn *gfn)
{
	return __atomic_load_n(&gfn->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_RESET;
}

static void kvm_dirty_gfn_set_dirtied(struct kvm_dirty_gfn *gfn)
{
	__atomic_store_n(&gfn->flags, KVM_DIRTY_GFN_F_DIRTY, __ATOMIC_RELEASE);
}

static void kvm_dirty_gfn_set_invalid(struct kvm_dirty_gfn *gfn)
{
	__atomic_store_n(&gfn->flags, 0, __ATOMIC_RELEASE);
}

/*
 * Record a dirty gfn (@slot = as_id << 16 | id, @offset from the slot's
 * base) in @vcpu's ring.  Only the thread running @vcpu calls this, with
 * vcpu->mutex held: the ring has a single producer and needs no lock, so
 * it is safe inside mmu_lock and RCU (make_spte(), the fast page fault).
 */
void kvm_dirty_ring_push(struct kvm_vcpu *vcpu, uint32_t slot, uint64_t offset)
{
	struct kvm_dirty_ring *ring = &vcpu->dirty_ring;
	uint32_t index = atomic_load_explicit(&ring->dirty_index, memory_order_relaxed);
	uint32_t used = kvm_dirty_ring_used(ring);
	struct kvm_dirty_gfn *entry;

	lockdep_assert_held(&vcpu->mutex);
	UKVM_INVARIANT(used < ring->size,
		       "vCPU %d: dirty ring overflow, %u of %u entries in use before a push "
		       "(Appendix B 13: dirty_index - reset_index <= size)",
		       vcpu->vcpu_idx, used, ring->size);

	entry = &ring->dirty_gfns[index & (ring->size - 1)];
	__atomic_store_n(&entry->slot, slot, __ATOMIC_RELAXED);
	__atomic_store_n(&entry->offset, offset, __ATOMIC_RELAXED);
	/*
	 * The index first: a reset that finds this entry RESET has seen it
	 * (the VMM's release of RESET follows its acquire of DIRTY).
	 */
	atomic_store_explicit(&ring->dirty_index, index + 1, memory_order_relaxed);
	/* Slot and offset are visible before the entry is DIRTY (smp_wmb). */
	kvm_dirty_gfn_set_dirtied(entry);
	atomic_fetch_add_explicit(&vcpu->kvm->stat.dirty_ring_pushes, 1,
				  memory_order_relaxed);

	if (used + 1 >= ring->soft_limit)
		kvm_make_request(KVM_REQ_DIRTY_RING_SOFT_FULL, vcpu);
}

/*
 * Before entering the guest: while the ring is soft-full the vCPU does not
 * run; it exits with KVM_EXIT_DIRTY_RING_FULL, and the request stays set
 * until a KVM_RESET_DIRTY_RINGS has made room (then the next entry clears
 * it and runs the guest).
 */
bool kvm_dirty_ring_check_request(struct kvm_vcpu *vcpu)
{
	if (kvm_check_request(KVM_REQ_DIRTY_RING_SOFT_FULL, vcpu) &&
	    kvm_dirty_ring_soft_full(&vcpu->dirty_ring)) {
		kvm_make_request(KVM_REQ_DIRTY_RING_SOFT_FULL, vcpu);
		vcpu_stat_inc(vcpu, dirty_ring_full_exits);
		return true;
	}
	return false;
}

static unsigned int fls64_index(uint64_t mask)
{
	return 63 - (unsigned int)__builtin_clzll(mask);
}

/*
 * Write-protect again the gfns @offset + bit of @mask of memslot @slot.
 * The entry comes from memory the VMM can write and may be older than the
 * current memslots: a slot id, address space or offset that does not fit
 * a live slot is skipped.  slots_lock makes the lookup stable.
 */
static void kvm_reset_dirty_gfn(struct kvm *kvm, uint32_t slot, uint64_t offset,
				uint64_t mask)
{
	unsigned int as_id = slot >> 16, id = (uint16_t)slot;
	struct kvm_memory_slot *memslot;

	lockdep_assert_held(&kvm->slots_lock);
	if (!mask)
		return;
	if (as_id >= (unsigned int)kvm->nr_as_ids || id >= KVM_USER_MEM_SLOTS)
		return;
	memslot = id_to_memslot(__kvm_memslots(kvm, (int)as_id), (int)id);
	if (!memslot || offset >= memslot->npages ||
	    fls64_index(mask) >= memslot->npages - offset)
		return;

	write_lock(&kvm->mmu_lock);
	kvm_arch_call(kvm, mmu_enable_log_dirty_pt_masked, kvm, memslot,
		      (gfn_t)offset, (unsigned long)mask);
	write_unlock(&kvm->mmu_lock);
}

/*
 * Free, in ring order, every entry the VMM has marked RESET, and write-
 * protect their gfns again so the next write is pushed anew.  Runs of
 * entries in one slot within 64 pages of each other (the guest walking
 * memory up or down) become one mask and one mmu_lock section.  Adds the
 * entries freed to *@nr_entries_reset; the caller flushes TLBs.
 */
int kvm_dirty_ring_reset(struct kvm *kvm, struct kvm_dirty_ring *ring,
			 int *nr_entries_reset)
{
	uint32_t cur_slot = 0;
	uint64_t cur_offset = 0, mask = 0;

	lockdep_assert_held(&kvm->slots_lock);
	while (*nr_entries_reset < INT_MAX) {
		uint32_t index = atomic_load_explicit(&ring->reset_index,
						      memory_order_relaxed);
		struct kvm_dirty_gfn *entry = &ring->dirty_gfns[index & (ring->size - 1)];
		uint32_t slot;
		uint64_t offset;
		int64_t delta;

		/*
		 * Never past what KVM pushed: a VMM that marks a free entry
		 * RESET must not drive reset_index beyond dirty_index.  Read
		 * after the acquire of RESET, it includes the push of @entry.
		 */
		if (!kvm_dirty_gfn_harvested(entry) ||
		    index == atomic_load_explicit(&ring->dirty_index, memory_order_relaxed))
			break;
		slot = __atomic_load_n(&entry->slot, __ATOMIC_RELAXED);
		offset = __atomic_load_n(&entry->offset, __ATOMIC_RELAXED);
		kvm_dirty_gfn_set_invalid(entry);
		/* Release: our reads of the entry precede its next push. */
		atomic_store_explicit(&ring->reset_index, index + 1, memory_order_release);
		(*nr_entries_reset)++;

		if (mask && slot == cur_slot) {
			delta = (int64_t)(offset - cur_offset);
			/* At or above the run's first page, within 64. */
			if (delta >= 0 && delta < 64) {
				mask |= 1ULL << delta;
				continue;
			}
			/* Below it: shift the run up if no bit falls off. */
			if (delta < 0 && delta > -64 &&
			    ((mask << -delta) >> -delta) == mask) {
				cur_offset = offset;
				mask = (mask << -delta) | 1;
				continue;
			}
		}
		/* A new run: protect the previous one first. */
		kvm_reset_dirty_gfn(kvm, cur_slot, cur_offset, mask);
		cur_slot = slot;
		cur_offset = offset;
		mask = 1;
	}
	kvm_reset_dirty_gfn(kvm, cur_slot, cur_offset, mask);
	return 0;
}

/*
 * KVM_RESET_DIRTY_RINGS.  The re-protection happens under slots_lock, the
 * TLB flush after dropping it (as KVM does): the flush must only precede
 * the return, because the VMM reads the pages it harvested after this
 * call.  Until then a vCPU may still write through a stale writable
 * translation without pushing; harmless, the page is being harvested and
 * will be read after the flush.
 *
 * wrprot_unflushed (Appendix B 9): every other path that write-protects
 * does it under slots_lock and flushes before dropping it, asserting the
 * count is 0.  We take the count over while we still hold slots_lock, so
 * a GET_DIRTY_LOG that runs between our unlock and our flush, and has
 * nothing to flush itself, does not see our pending flush as its own
 * missing one; our own assertion below checks that we did flush.
 */
int ukvm_reset_dirty_rings(struct kvm *kvm)
{
	struct kvm_vcpu *vcpu;
	unsigned long owed;
	bool flushed = false;
	int i, cleared = 0;

	if (!kvm)
		return -EFAULT;
	if (!kvm_dirty_ring_size(kvm))
		return -EINVAL;

	mutex_lock(&kvm->slots_lock);
	kvm_for_each_vcpu(i, vcpu, kvm) {
		if (kvm_dirty_ring_reset(kvm, &vcpu->dirty_ring, &cleared))
			break;
	}
	owed = atomic_exchange(&kvm->wrprot_unflushed, 0);
	mutex_unlock(&kvm->slots_lock);

	RACE_POINT(WRPROT_BEFORE_FLUSH);
	if (cleared && !ukvm_unsafe(UNSAFE_NO_WRPROT_FLUSH)) {
		kvm_flush_remote_tlbs(kvm);
		flushed = true;
	}
	UKVM_INVARIANT(!owed || flushed,
		       "RESET_DIRTY_RINGS returns with write access removed but not flushed");
	atomic_fetch_add_explicit(&kvm->stat.dirty_ring_resets, (unsigned long)cleared,
				  memory_order_relaxed);
	return cleared;
}

/* The VMM's view of the ring: what mmap() at KVM_DIRTY_LOG_PAGE_OFFSET maps. */
int ukvm_vcpu_dirty_ring(struct kvm_vcpu *vcpu, struct kvm_dirty_gfn **ring,
			 uint32_t *nr_entries)
{
	if (!vcpu)
		return -EINVAL;
	if (!ring || !nr_entries)
		return -EFAULT;
	if (!kvm_dirty_ring_size(vcpu->kvm) || !vcpu->dirty_ring.dirty_gfns)
		return -ENXIO;
	*ring = vcpu->dirty_ring.dirty_gfns;
	*nr_entries = vcpu->dirty_ring.size;
	return 0;
}
