/* SPDX-License-Identifier: MIT */
/*
 * rcuwait: one waiter sleeps until a condition, woken by rcuwait_wake_up().
 * KVM uses it for the memslot writer that waits for mn_active_invalidate_count
 * to drop to zero (kvm->mn_memslots_update_rcuwait): exactly one waiter can
 * exist because that waiter holds kvm->slots_lock.
 *
 * Lost wake-ups are impossible: the waiter takes a ticket (the futex word)
 * *before* its last check of the condition, and rcuwait_wake_up() bumps the
 * word after the condition changed, so the sleep returns at once.
 */
#ifndef UKVM_SYNC_RCUWAIT_H
#define UKVM_SYNC_RCUWAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct rcuwait {
	_Atomic uint32_t seq;		/* futex word */
	_Atomic int waiting;		/* a waiter is between prepare and finish */
};

#define __RCUWAIT_INITIALIZER { 0, 0 }

static inline void rcuwait_init(struct rcuwait *w)
{
	atomic_store(&w->seq, 0);
	atomic_store(&w->waiting, 0);
}

static inline void prepare_to_rcuwait(struct rcuwait *w)
{
	atomic_store(&w->waiting, 1);
}

static inline void finish_rcuwait(struct rcuwait *w)
{
	atomic_store(&w->waiting, 0);
}

/* Take a ticket, then check the condition, then rcuwait_sleep(ticket). */
static inline uint32_t rcuwait_ticket(struct rcuwait *w)
{
	return atomic_load(&w->seq);
}

/* Sleep until woken after @ticket was taken (returns at once if already). */
void rcuwait_sleep(struct rcuwait *w, uint32_t ticket);

/* Wake the waiter, if any; returns true if there was one. */
bool rcuwait_wake_up(struct rcuwait *w);

/* Wait until @condition holds (checked without any lock). */
#define rcuwait_wait_event(w, condition)                                      \
	do {                                                                  \
		prepare_to_rcuwait(w);                                        \
		for (;;) {                                                    \
			uint32_t __t = rcuwait_ticket(w);                     \
			if (condition)                                        \
				break;                                        \
			rcuwait_sleep((w), __t);                              \
		}                                                             \
		finish_rcuwait(w);                                            \
	} while (0)

#endif /* UKVM_SYNC_RCUWAIT_H */
