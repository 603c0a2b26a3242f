// SPDX-License-Identifier: MIT
/*
 * MMU notifiers: secondary MMUs (KVM) register a struct mmu_notifier on an
 * mm and are told about every change of the mm's translations.
 *
 * The list of an mm is an RCU list: writers (register, unregister, release)
 * serialise on mm->notifier_lock; callers of the callbacks walk it inside a
 * read section of the global SRCU domain mmu_notifier_srcu, so callbacks may
 * sleep, and unregister waits (synchronize_srcu()) until no callback of the
 * removed notifier can still be running.
 *
 * ->release is called exactly once per notifier: by host_mm_release() for
 * the notifiers registered when the mm goes away, or by
 * mmu_notifier_unregister() for one that leaves while the mm lives.  The
 * decision is taken under notifier_lock (mm->released, mn->on_list).
 */
#include <errno.h>

#include "host/host_internal.h"

struct srcu_struct mmu_notifier_srcu;

int mmu_notifier_global_init(void)
{
	return init_srcu_struct(&mmu_notifier_srcu);
}

void mmu_notifier_global_exit(void)
{
	cleanup_srcu_struct(&mmu_notifier_srcu);
}

/*
 * mmap_lock for write, like Linux: every invalidation holds mmap_lock from
 * its _start to its _end, so a new notifier sees both calls or neither.
 */
int mmu_notifier_register(struct mmu_notifier *mn, struct host_mm *mm)
{
	int ret = 0;

	down_write(&mm->mmap_lock);
	mutex_lock(&mm->notifier_lock);
	if (mm->released || mn->on_list) {
		ret = -EINVAL;
	} else {
		mn->mm = mm;
		mn->on_list = true;
		ukvm_list_add_tail_rcu(&mn->list, &mm->notifiers);
	}
	mutex_unlock(&mm->notifier_lock);
	up_write(&mm->mmap_lock);
	return ret;
}

void mmu_notifier_unregister(struct mmu_notifier *mn, struct host_mm *mm)
{
	bool call_release;

	mutex_lock(&mm->notifier_lock);
	call_release = mn->on_list && !mm->released;
	if (mn->on_list) {
		ukvm_list_del_rcu(&mn->list);
		mn->on_list = false;
	}
	mutex_unlock(&mm->notifier_lock);

	if (call_release && mn->ops->release) {
		int idx = srcu_read_lock(&mmu_notifier_srcu);

		mn->ops->release(mn, mm);
		srcu_read_unlock(&mmu_notifier_srcu, idx);
	}
	/* No callback of @mn runs after this (nor a concurrent ->release). */
	synchronize_srcu(&mmu_notifier_srcu);
}

void host_mm_release(struct host_mm *mm)
{
	struct mmu_notifier *mn, *tmp;
	int idx;

	mutex_lock(&mm->notifier_lock);
	if (mm->released) {
		mutex_unlock(&mm->notifier_lock);
		return;
	}
	mm->released = true;
	mutex_unlock(&mm->notifier_lock);

	/* New registrations fail now; unregister no longer calls ->release. */
	idx = srcu_read_lock(&mmu_notifier_srcu);
	ukvm_list_for_each_entry_rcu(mn, &mm->notifiers, list)
		if (mn->ops->release)
			mn->ops->release(mn, mm);
	srcu_read_unlock(&mmu_notifier_srcu, idx);

	mutex_lock(&mm->notifier_lock);
	cds_list_for_each_entry_safe(mn, tmp, &mm->notifiers, list) {
		ukvm_list_del_rcu(&mn->list);
		mn->on_list = false;
	}
	mutex_unlock(&mm->notifier_lock);
	synchronize_srcu(&mmu_notifier_srcu);
}

/* ---------------------------------------------------------------------- */
/* Invocation (the mm operations)                                         */
/* ---------------------------------------------------------------------- */

void mmu_notifier_invalidate_range_start(struct mmu_notifier_range *r)
{
	struct host_mm *mm = r->mm;
	struct mmu_notifier *mn;
	int idx;

	lockdep_assert_held(&mm->mmap_lock);
	mm_stat_inc(mm, MM_NOTIFIER_STARTS);
	atomic_fetch_add_explicit(&mm->nr_invalidations, 1, memory_order_relaxed);
	idx = srcu_read_lock(&mmu_notifier_srcu);
	ukvm_list_for_each_entry_rcu(mn, &mm->notifiers, list)
		if (mn->ops->invalidate_range_start)
			HOST_WARN_ON(mn->ops->invalidate_range_start(mn, r));
	srcu_read_unlock(&mmu_notifier_srcu, idx);
}

void mmu_notifier_invalidate_range_end(struct mmu_notifier_range *r)
{
	struct host_mm *mm = r->mm;
	struct mmu_notifier *mn;
	int idx;

	lockdep_assert_held(&mm->mmap_lock);
	idx = srcu_read_lock(&mmu_notifier_srcu);
	ukvm_list_for_each_entry_rcu(mn, &mm->notifiers, list)
		if (mn->ops->invalidate_range_end)
			mn->ops->invalidate_range_end(mn, r);
	srcu_read_unlock(&mmu_notifier_srcu, idx);
	mm_stat_inc(mm, MM_NOTIFIER_ENDS);
}

#define DEFINE_YOUNG_CALL(op, ...)                                            \
	int young = 0, idx;                                                   \
	struct mmu_notifier *mn;                                              \
									      \
	lockdep_assert_held(&mm->mmap_lock);                                  \
	idx = srcu_read_lock(&mmu_notifier_srcu);                             \
	ukvm_list_for_each_entry_rcu(mn, &mm->notifiers, list)                \
		if (mn->ops->op)                                              \
			young |= !!mn->ops->op(mn, mm, __VA_ARGS__);          \
	srcu_read_unlock(&mmu_notifier_srcu, idx);                            \
	return young

int mmu_notifier_clear_flush_young(struct host_mm *mm, unsigned long start,
				   unsigned long end)
{
	DEFINE_YOUNG_CALL(clear_flush_young, start, end);
}

int mmu_notifier_clear_young(struct host_mm *mm, unsigned long start,
			     unsigned long end)
{
	DEFINE_YOUNG_CALL(clear_young, start, end);
}

int mmu_notifier_test_young(struct host_mm *mm, unsigned long address)
{
	DEFINE_YOUNG_CALL(test_young, address);
}
