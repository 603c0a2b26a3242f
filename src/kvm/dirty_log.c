// SPDX-License-Identifier: MIT
/*
 * Dirty logging, bitmap mode (kvm-brief.md section 6): marking (to the
 * bitmap, or to a vCPU's dirty ring: dirty_ring.c), and the
 * KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG ioctls with KVM's semantics.
 *
 * Bits are set by vCPUs with atomic OR and harvested with an atomic
 * exchange (or fetch-and-not), so no bit set concurrently is ever lost.  Every
 * re-protection of the harvested gfns is followed by a TLB flush before the
 * ioctl returns: a vCPU must not keep writing through a stale writable
 * translation that the next log would miss.
 */
#include <errno.h>
#include <string.h>

#include "kvm/kvm_internal.h"
#include "sync/bug.h"
#include "sync/race.h"
#include "ukvm/ukvm.h"

#define BITS_PER_LONG 64

static inline unsigned long bitmap_load(unsigned long *w)
{
	return __atomic_load_n(w, __ATOMIC_RELAXED);
}

/*
 * Record a write to @gfn of @slot; callers hold kvm->srcu (or slots_lock).
 * With a dirty ring the gfn goes to the ring of the thread's running vCPU;
 * a write outside vCPU context can only go to the bitmap of ring + bitmap
 * mode, and is a bug otherwise (KVM warns).  Without a ring: the bitmap.
 *
 * Unlike KVM, the two warnings apply only to VMs that use a ring: KVM
 * compiles them in for every VM of an architecture with dirty rings, but
 * ukvm's Dirty-bit mode legitimately hands a zapped leaf's Dirty bit to the
 * bitmap from a host thread (or from a vCPU of another VM sharing the mm).
 */
void mark_page_dirty_in_slot(struct kvm *kvm, const struct kvm_memory_slot *slot,
			     gfn_t gfn)
{
	struct kvm_vcpu *vcpu = NULL;
	unsigned long rel;

	if (kvm_dirty_ring_size(kvm)) {
		vcpu = kvm_get_running_vcpu();
		if (UKVM_WARN_ON(vcpu && vcpu->kvm != kvm))
			return;
		if (UKVM_WARN_ON(!vcpu && !kvm_arch_allow_write_without_running_vcpu(kvm)))
			return;
	}
	if (!slot || !kvm_slot_dirty_track_enabled(slot))
		return;
	if (UKVM_WARN_ON(gfn < slot->base_gfn || gfn >= slot->base_gfn + slot->npages))
		return;
	rel = gfn - slot->base_gfn;
	if (vcpu) {
		kvm_dirty_ring_push(vcpu, ((uint32_t)slot->as_id << 16) | (uint16_t)slot->id,
				    rel);
		return;
	}
	if (!slot->dirty_bitmap)
		return;
	if (!(bitmap_load(&slot->dirty_bitmap[rel / BITS_PER_LONG]) &
	      (1UL << (rel % BITS_PER_LONG)))) {
		struct kvm_vcpu *running = kvm_get_running_vcpu();

		__atomic_fetch_or(&slot->dirty_bitmap[rel / BITS_PER_LONG],
				  1UL << (rel % BITS_PER_LONG), __ATOMIC_SEQ_CST);
		/* A vCPU logging its own write counts it in its own line. */
		if (running && running->kvm == kvm)
			vcpu_stat_inc(running, dirty_pages_logged);
		else
			atomic_fetch_add_explicit(&kvm->stat.dirty_pages_logged, 1,
						  memory_order_relaxed);
	}
}

void mark_page_dirty(struct kvm *kvm, gfn_t gfn)
{
	mark_page_dirty_in_slot(kvm, gfn_to_memslot(kvm, gfn), gfn);
}

static int lookup_logged_slot(struct kvm *kvm, uint32_t slot_arg,
			      struct kvm_memory_slot **out)
{
	unsigned int as_id = slot_arg >> 16, id = (uint16_t)slot_arg;
	struct kvm_memory_slot *slot;

	if (as_id >= (unsigned int)kvm->nr_as_ids || id >= KVM_USER_MEM_SLOTS)
		return -EINVAL;
	slot = id_to_memslot(__kvm_memslots(kvm, (int)as_id), (int)id);
	if (!slot || !slot->dirty_bitmap)
		return -ENOENT;
	*out = slot;
	return 0;
}

/*
 * Unsafe knob SLOTS_LOCK_UNDER_VCPU_REVERSED: drain per-vCPU dirty state by
 * waiting for each vCPU to leave its ioctl (taking its mutex) instead of
 * kicking it out of guest mode as x86's PML flush does -- with slots_lock
 * held, the reverse of the documented vcpu->mutex => slots_lock.
 */
static void kvm_dirty_log_wait_vcpus(struct kvm *kvm)
{
	struct kvm_vcpu *vcpu;
	int i;

	kvm_for_each_vcpu(i, vcpu, kvm) {
		mutex_lock(&vcpu->mutex);
		mutex_unlock(&vcpu->mutex);
	}
}

/*
 * KVM_GET_DIRTY_LOG.  Without manual protect: snapshot-and-clear each word
 * (xchg) and write-protect its gfns under mmu_lock, then flush.  With manual
 * protect: a plain copy; protection is left to KVM_CLEAR_DIRTY_LOG.
 */
int kvm_get_dirty_log_protect(struct kvm *kvm, struct kvm_dirty_log *log)
{
	struct kvm_memory_slot *slot;
	unsigned long *bitmap, *buffer, words;
	bool flush = false;
	int r;

	lockdep_assert_held(&kvm->slots_lock);
	/* A ring without the backup bitmap: there is no bitmap to return. */
	if (!kvm_use_dirty_bitmap(kvm))
		return -ENXIO;
	r = lookup_logged_slot(kvm, log->slot, &slot);
	if (r)
		return r;
	bitmap = slot->dirty_bitmap;
	if (ukvm_unsafe(UNSAFE_SLOTS_LOCK_UNDER_VCPU_REVERSED))
		kvm_dirty_log_wait_vcpus(kvm);
	kvm_arch_call(kvm, sync_dirty_log, kvm, slot);
	words = kvm_dirty_bitmap_bytes(slot) / sizeof(unsigned long);

	if (kvm->manual_dirty_log_protect) {
		buffer = kvm_second_dirty_bitmap(slot);
		for (unsigned long i = 0; i < words; i++)
			buffer[i] = bitmap_load(&bitmap[i]);
	} else {
		buffer = kvm_second_dirty_bitmap(slot);
		memset(buffer, 0, words * sizeof(unsigned long));
		write_lock(&kvm->mmu_lock);
		for (unsigned long i = 0; i < words; i++) {
			unsigned long mask;

			if (!bitmap_load(&bitmap[i]))
				continue;
			flush = true;
			/* Snapshot and clear at once: a later set lands in the next log. */
			mask = __atomic_exchange_n(&bitmap[i], 0, __ATOMIC_SEQ_CST);
			buffer[i] = mask;
			RACE_POINT(DIRTY_LOG_HARVESTED);
			kvm_arch_call(kvm, mmu_enable_log_dirty_pt_masked, kvm, slot,
				      i * BITS_PER_LONG, mask);
		}
		write_unlock(&kvm->mmu_lock);
	}

	/*
	 * Until this flush a vCPU may still write through a writable TLB
	 * entry: harmless, the page is in this snapshot, and the flush makes
	 * every later write fault and be logged for the next call.
	 */
	RACE_POINT(WRPROT_BEFORE_FLUSH);
	if (flush && !ukvm_unsafe(UNSAFE_NO_WRPROT_FLUSH))
		kvm_flush_remote_tlbs_memslot(kvm, slot);
	UKVM_INVARIANT(!atomic_load(&kvm->wrprot_unflushed),
		       "GET_DIRTY_LOG returns with write access removed but not flushed");

	if (!log->dirty_bitmap)
		return -EFAULT;
	memcpy(log->dirty_bitmap, buffer, words * sizeof(unsigned long));
	atomic_fetch_add_explicit(&kvm->stat.dirty_log_get, 1, memory_order_relaxed);
	return 0;
}

/*
 * KVM_CLEAR_DIRTY_LOG (manual protect): clear the requested bits, and
 * re-protect exactly the gfns whose bit was set and is now cleared.
 * 64-page granularity keeps mmu_lock hold times short.
 */
int kvm_clear_dirty_log_protect(struct kvm *kvm, struct kvm_clear_dirty_log *log)
{
	struct kvm_memory_slot *slot;
	unsigned long *bitmap, *buffer, n, i, offset;
	bool flush = false;
	int r;

	lockdep_assert_held(&kvm->slots_lock);
	if (!kvm_use_dirty_bitmap(kvm))
		return -ENXIO;
	if (log->first_page & 63)
		return -EINVAL;
	r = lookup_logged_slot(kvm, log->slot, &slot);
	if (r)
		return r;
	bitmap = slot->dirty_bitmap;
	n = ((log->num_pages + 63) & ~63ULL) / 8;
	if (log->first_page > slot->npages ||
	    log->num_pages > slot->npages - log->first_page ||
	    (log->num_pages < slot->npages - log->first_page &&
	     (log->num_pages & 63)))
		return -EINVAL;

	kvm_arch_call(kvm, sync_dirty_log, kvm, slot);
	buffer = kvm_second_dirty_bitmap(slot);
	/* copy_from_user() of nothing succeeds, whatever the pointer. */
	if (n && !log->dirty_bitmap)
		return -EFAULT;
	if (n)
		memcpy(buffer, log->dirty_bitmap, n);

	write_lock(&kvm->mmu_lock);
	for (offset = log->first_page, i = offset / BITS_PER_LONG,
	     n = (log->num_pages + BITS_PER_LONG - 1) / BITS_PER_LONG;
	     n--; i++, offset += BITS_PER_LONG) {
		unsigned long mask = *buffer++;

		if (!mask)
			continue;
		/* Bits past the slot's end are never set: ignored here. */
		mask &= __atomic_fetch_and(&bitmap[i], ~mask, __ATOMIC_SEQ_CST);
		if (mask) {
			flush = true;
			kvm_arch_call(kvm, mmu_enable_log_dirty_pt_masked, kvm, slot,
				      offset, mask);
		}
	}
	write_unlock(&kvm->mmu_lock);

	RACE_POINT(WRPROT_BEFORE_FLUSH);
	if (flush && !ukvm_unsafe(UNSAFE_NO_WRPROT_FLUSH))
		kvm_flush_remote_tlbs_memslot(kvm, slot);
	UKVM_INVARIANT(!atomic_load(&kvm->wrprot_unflushed),
		       "CLEAR_DIRTY_LOG returns with write access removed but not flushed");
	atomic_fetch_add_explicit(&kvm->stat.dirty_log_clear, 1, memory_order_relaxed);
	return 0;
}

int ukvm_get_dirty_log(struct kvm *kvm, struct kvm_dirty_log *log)
{
	int r;

	if (!kvm || !log)
		return -EFAULT;
	mutex_lock(&kvm->slots_lock);
	r = kvm_get_dirty_log_protect(kvm, log);
	mutex_unlock(&kvm->slots_lock);
	return r;
}

int ukvm_clear_dirty_log(struct kvm *kvm, struct kvm_clear_dirty_log *log)
{
	int r;

	if (!kvm || !log)
		return -EFAULT;
	mutex_lock(&kvm->slots_lock);
	r = kvm_clear_dirty_log_protect(kvm, log);
	mutex_unlock(&kvm->slots_lock);
	return r;
}
