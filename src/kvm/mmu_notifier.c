// SPDX-License-Identifier: MIT
/*
 * KVM's MMU-notifier handlers (kvm-brief.md section 3): how the host's
 * changes to hva -> pfn reach the secondary MMU.
 *
 *  - invalidate_range_start: count the invalidation (mn_active_invalidate_
 *    count, unconditionally), then — only if a memslot overlaps the range —
 *    take mmu_lock for write, raise mmu_invalidate_in_progress, record the
 *    gfn range, zap the SPTEs and flush remote TLBs before returning.
 *  - invalidate_range_end: if a memslot overlaps, bump mmu_invalidate_seq and
 *    drop in_progress under mmu_lock; then uncount, waking a memslot writer
 *    that waits for the count to reach zero.
 *  The memslot writer publishes a new set only while the count is zero, so a
 *  start and its end always see the same memslots and the in_progress
 *  increments and decrements pair up.
 *
 * Handlers never take slots_lock or slots_arch_lock (the memslot writer
 * holds both while it waits for us): for the validator the window from the
 * increment to the decrement is a read of &kvm->mn_active_invalidate_count,
 * which the writer syncs.
 */
#include <errno.h>
#include <setjmp.h>

#include "kvm/kvm_internal.h"
#include "sync/bug.h"
#include "sync/race.h"

typedef bool (*gfn_handler_t)(struct kvm *kvm, struct kvm_gfn_range *range);
typedef void (*on_lock_fn_t)(struct kvm *kvm);

struct kvm_mmu_notifier_range {
	unsigned long start, end;	/* hva, [start, end) */
	gfn_handler_t handler;
	on_lock_fn_t on_lock;
	bool flush_on_ret;
	bool may_block;
	bool lockless;
};

struct kvm_mmu_notifier_return {
	bool ret;
	bool found_memslot;
};

static inline struct kvm *mmu_notifier_to_kvm(struct mmu_notifier *mn)
{
	return caa_container_of(mn, struct kvm, mmu_notifier);
}

static bool kvm_null_handler(struct kvm *kvm, struct kvm_gfn_range *range)
{
	(void)kvm;
	(void)range;
	return false;
}

void kvm_mmu_invalidate_begin(struct kvm *kvm)
{
	long n;

	lockdep_assert_held_write(&kvm->mmu_lock);
	n = atomic_fetch_add_explicit(&kvm->mmu_invalidate_in_progress, 1,
				      memory_order_relaxed) + 1;
	if (n == 1) {
		/* First invalidation: the range starts empty. */
		atomic_store_explicit(&kvm->mmu_invalidate_range_start, INVALID_GFN,
				      memory_order_relaxed);
		atomic_store_explicit(&kvm->mmu_invalidate_range_end, INVALID_GFN,
				      memory_order_relaxed);
	}
}

void kvm_mmu_invalidate_range_add(struct kvm *kvm, gfn_t start, gfn_t end)
{
	gfn_t s, e;

	lockdep_assert_held_write(&kvm->mmu_lock);
	UKVM_WARN_ON(!atomic_load(&kvm->mmu_invalidate_in_progress));
	s = atomic_load_explicit(&kvm->mmu_invalidate_range_start, memory_order_relaxed);
	e = atomic_load_explicit(&kvm->mmu_invalidate_range_end, memory_order_relaxed);
	if (s == INVALID_GFN) {
		s = start;
		e = end;
	} else {
		/* Ranges only grow until every invalidation has ended. */
		s = start < s ? start : s;
		e = end > e ? end : e;
	}
	atomic_store_explicit(&kvm->mmu_invalidate_range_start, s, memory_order_relaxed);
	atomic_store_explicit(&kvm->mmu_invalidate_range_end, e, memory_order_relaxed);
}

void kvm_mmu_invalidate_end(struct kvm *kvm)
{
	long n;

	lockdep_assert_held_write(&kvm->mmu_lock);
	/*
	 * Bump the sequence *before* dropping in_progress (release: the
	 * kernel's smp_wmb()), so that a fault reading in_progress == 0 then
	 * the sequence (acquire) sees the new sequence.
	 */
	atomic_fetch_add_explicit(&kvm->mmu_invalidate_seq, 1, memory_order_release);
	n = atomic_fetch_sub_explicit(&kvm->mmu_invalidate_in_progress, 1,
				      memory_order_release) - 1;
	UKVM_INVARIANT(n >= 0, "mmu_invalidate_in_progress went negative");
	UKVM_WARN_ON(atomic_load_explicit(&kvm->mmu_invalidate_range_start,
					  memory_order_relaxed) == INVALID_GFN);
}

static bool kvm_mmu_unmap_gfn_range(struct kvm *kvm, struct kvm_gfn_range *range)
{
	kvm_mmu_invalidate_range_add(kvm, range->start, range->end);
	if (kvm_arch_has(kvm, unmap_gfn_range))
		return kvm->arch_ops->unmap_gfn_range(kvm, range);
	return false;
}

static bool kvm_age_gfn(struct kvm *kvm, struct kvm_gfn_range *range)
{
	return kvm_arch_has(kvm, age_gfn) ? kvm->arch_ops->age_gfn(kvm, range) : false;
}

static bool kvm_test_age_gfn(struct kvm *kvm, struct kvm_gfn_range *range)
{
	return kvm_arch_has(kvm, test_age_gfn) ?
	       kvm->arch_ops->test_age_gfn(kvm, range) : false;
}

static inline gfn_t hva_to_gfn_memslot(unsigned long hva,
				       const struct kvm_memory_slot *slot)
{
	return slot->base_gfn + ((hva - slot->userspace_addr) >> PAGE_SHIFT);
}

/*
 * Walk the memslots of every address space intersecting the hva range and
 * run the handler on each part.  mmu_lock (write) and on_lock() happen only
 * if at least one memslot overlaps: the optimisation that makes
 * mn_active_invalidate_count necessary.
 */
static struct kvm_mmu_notifier_return
__kvm_handle_hva_range(struct kvm *kvm, const struct kvm_mmu_notifier_range *range)
{
	struct kvm_mmu_notifier_return r = { false, false };
	bool locked = false, stop = false;
	int idx;

	if (UKVM_WARN_ON(range->end <= range->start))
		return r;

	idx = srcu_read_lock(&kvm->srcu);
	for (int as = 0; as < KVM_ADDRESS_SPACE_NUM && !stop; as++) {
		struct kvm_memslots *slots = __kvm_memslots(kvm, as);
		struct kvm_memory_slot *slot;

		kvm_for_each_memslot_in_hva_range(slot, slots, range->start,
						  range->end - 1) {
			unsigned long slot_end = slot->userspace_addr +
						 (slot->npages << PAGE_SHIFT);
			unsigned long hva_start = range->start > slot->userspace_addr ?
						  range->start : slot->userspace_addr;
			unsigned long hva_end = range->end < slot_end ? range->end : slot_end;
			struct kvm_gfn_range gfn_range = {
				.slot = slot,
				.start = hva_to_gfn_memslot(hva_start, slot),
				/* Round up: a partial last page is covered. */
				.end = hva_to_gfn_memslot(hva_end + PAGE_SIZE - 1, slot),
				.may_block = range->may_block,
			};

			if (!r.found_memslot) {
				r.found_memslot = true;
				if (!range->lockless) {
					write_lock(&kvm->mmu_lock);
					locked = true;
					if (range->on_lock)
						range->on_lock(kvm);
					if (range->handler == kvm_null_handler) {
						stop = true;
						break;
					}
				}
			}
			r.ret |= range->handler(kvm, &gfn_range);
		}
	}

	/* The flush happens before mmu_lock is dropped and before returning:
	 * the primary MMU frees or moves the pages right after. */
	if (range->flush_on_ret && r.ret)
		kvm_flush_remote_tlbs(kvm);
	if (locked)
		write_unlock(&kvm->mmu_lock);
	srcu_read_unlock(&kvm->srcu, idx);
	return r;
}

static bool kvm_handle_hva_range(struct kvm *kvm, unsigned long start,
				 unsigned long end, gfn_handler_t handler,
				 bool flush_on_ret)
{
	const struct kvm_mmu_notifier_range range = {
		.start = start,
		.end = end,
		.handler = handler,
		.flush_on_ret = flush_on_ret,
		.may_block = false,
		.lockless = kvm->arch_ops && kvm->arch_ops->lockless_aging,
	};

	return __kvm_handle_hva_range(kvm, &range).ret;
}

static void notifier_bailout(void *arg, enum lockdep_report_kind kind)
{
	(void)kind;
	longjmp(*(jmp_buf *)arg, 1);
}

/*
 * Unsafe knob NOTIFIER_SLOTS_LOCK: a handler that wants stable memslots takes
 * slots_lock -- exactly what must not be: a memslot writer holding it may be
 * waiting for this very invalidation to end.  The validator reports the cycle
 * before mutex_lock() blocks, and its bail-out brings us back here without
 * the lock, so the invalidation completes and the writer goes on.  (Without
 * the validator this deadlocks.)
 */
static void __attribute__((noinline)) unsafe_notifier_slots_lock(struct kvm *kvm)
{
	jmp_buf env;

	RACE_POINT(MN_START_IN_CALLBACK);
	if (!setjmp(env)) {
		lockdep_set_thread_bailout(notifier_bailout, &env);
		mutex_lock(&kvm->slots_lock);
		lockdep_set_thread_bailout(NULL, NULL);
		mutex_unlock(&kvm->slots_lock);
	}
	lockdep_set_thread_bailout(NULL, NULL);
}

static int kvm_mmu_notifier_invalidate_range_start(struct mmu_notifier *mn,
		const struct mmu_notifier_range *range)
{
	struct kvm *kvm = mmu_notifier_to_kvm(mn);
	const struct kvm_mmu_notifier_range hva_range = {
		.start = range->start,
		.end = range->end,
		.handler = kvm_mmu_unmap_gfn_range,
		.on_lock = kvm_mmu_invalidate_begin,
		.flush_on_ret = true,
		.may_block = range->blockable,
	};

	/* Appendix B invariant 2: never called with the memslot locks held. */
	lockdep_assert_not_held(&kvm->slots_lock);
	lockdep_assert_not_held(&kvm->slots_arch_lock);

	lock_map_acquire_read(&kvm->mn_active_invalidate_map);
	/*
	 * Counted unconditionally and *before* looking at the memslots: the
	 * memslot writer cannot publish between here and our _end.
	 */
	spin_lock(&kvm->mn_invalidate_lock);
	kvm->mn_active_invalidate_count++;
	spin_unlock(&kvm->mn_invalidate_lock);

	if (ukvm_unsafe(UNSAFE_NOTIFIER_SLOTS_LOCK))
		unsafe_notifier_slots_lock(kvm);

	atomic_fetch_add_explicit(&kvm->stat.mmu_notifier_start, 1, memory_order_relaxed);
	if (__kvm_handle_hva_range(kvm, &hva_range).found_memslot) {
		atomic_fetch_add_explicit(&kvm->stat.mmu_notifier_start_found, 1,
					  memory_order_relaxed);
		kvm_arch_call(kvm, guest_memory_reclaimed, kvm);
	}
	lock_map_release(&kvm->mn_active_invalidate_map);
	RACE_POINT(MN_START_DONE);
	return 0;
}

static void kvm_mmu_notifier_invalidate_range_end(struct mmu_notifier *mn,
		const struct mmu_notifier_range *range)
{
	struct kvm *kvm = mmu_notifier_to_kvm(mn);
	const struct kvm_mmu_notifier_range hva_range = {
		.start = range->start,
		.end = range->end,
		.handler = kvm_null_handler,
		.on_lock = kvm_mmu_invalidate_end,
		.flush_on_ret = false,
		.may_block = range->blockable,
	};
	bool wake;

	lockdep_assert_not_held(&kvm->slots_lock);
	lockdep_assert_not_held(&kvm->slots_arch_lock);

	lock_map_acquire_read(&kvm->mn_active_invalidate_map);
	RACE_POINT(MN_END_BEGIN);
	/* Same memslots as at _start (the count kept the writer out). */
	__kvm_handle_hva_range(kvm, &hva_range);

	spin_lock(&kvm->mn_invalidate_lock);
	if (!UKVM_WARN_ON(kvm->mn_active_invalidate_count == 0))
		kvm->mn_active_invalidate_count--;
	wake = !kvm->mn_active_invalidate_count;
	spin_unlock(&kvm->mn_invalidate_lock);

	/* Only one waiter can exist: it holds slots_lock. */
	if (wake)
		rcuwait_wake_up(&kvm->mn_memslots_update_rcuwait);
	atomic_fetch_add_explicit(&kvm->stat.mmu_notifier_end, 1, memory_order_relaxed);
	lock_map_release(&kvm->mn_active_invalidate_map);
}

static int kvm_mmu_notifier_clear_flush_young(struct mmu_notifier *mn,
					      struct host_mm *mm,
					      unsigned long start,
					      unsigned long end)
{
	struct kvm *kvm = mmu_notifier_to_kvm(mn);

	(void)mm;
	atomic_fetch_add_explicit(&kvm->stat.mmu_notifier_age, 1, memory_order_relaxed);
	/* x86 elides the flush for aging (KVM_ELIDE_TLB_FLUSH_IF_YOUNG). */
	return kvm_handle_hva_range(kvm, start, end, kvm_age_gfn, false);
}

static int kvm_mmu_notifier_clear_young(struct mmu_notifier *mn,
					struct host_mm *mm,
					unsigned long start, unsigned long end)
{
	struct kvm *kvm = mmu_notifier_to_kvm(mn);

	(void)mm;
	atomic_fetch_add_explicit(&kvm->stat.mmu_notifier_age, 1, memory_order_relaxed);
	return kvm_handle_hva_range(kvm, start, end, kvm_age_gfn, false);
}

static int kvm_mmu_notifier_test_young(struct mmu_notifier *mn,
				       struct host_mm *mm, unsigned long address)
{
	struct kvm *kvm = mmu_notifier_to_kvm(mn);

	(void)mm;
	return kvm_handle_hva_range(kvm, address, address + 1, kvm_test_age_gfn,
				    false);
}

static void kvm_mmu_notifier_release(struct mmu_notifier *mn, struct host_mm *mm)
{
	struct kvm *kvm = mmu_notifier_to_kvm(mn);
	int idx;

	(void)mm;
	idx = srcu_read_lock(&kvm->srcu);
	kvm_arch_call(kvm, flush_shadow_all, kvm);
	srcu_read_unlock(&kvm->srcu, idx);
}

const struct mmu_notifier_ops kvm_mmu_notifier_ops = {
	.invalidate_range_start = kvm_mmu_notifier_invalidate_range_start,
	.invalidate_range_end = kvm_mmu_notifier_invalidate_range_end,
	.clear_flush_young = kvm_mmu_notifier_clear_flush_young,
	.clear_young = kvm_mmu_notifier_clear_young,
	.test_young = kvm_mmu_notifier_test_young,
	.release = kvm_mmu_notifier_release,
};

int kvm_init_mmu_notifier(struct kvm *kvm)
{
	kvm->mmu_notifier.ops = &kvm_mmu_notifier_ops;
	return mmu_notifier_register(&kvm->mmu_notifier, kvm->mm);
}
