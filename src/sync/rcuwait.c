// SPDX-License-Identifier: MIT
/*
 * rcuwait: the sleeping and waking halves (rcuwait.h has the protocol).
 *
 * Waiter (rcuwait_wait_event()):  waiting = 1; ticket = seq; check condition;
 *                                 futex_wait(seq, ticket)
 * Waker:                          make the condition true; barrier;
 *                                 if (waiting) { seq++; futex_wake(seq) }
 *
 * Either the waker sees waiting == 1 and bumps seq (then the waiter's futex
 * wait, which compares seq with its ticket inside the kernel, returns), or
 * the waiter's condition check, which comes after its seq_cst store of
 * waiting, sees the condition true.  That is a store-buffering pair: each
 * side needs a full barrier between its store and its load (the waiter's
 * seq_cst store is an XCHG; the waker's is the RMW below).
 */
#include "sync/rcuwait.h"
#include "sync/sync_internal.h"

void rcuwait_sleep(struct rcuwait *w, uint32_t ticket)
{
	/*
	 * A cheap re-check before the syscall; the kernel re-checks
	 * atomically anyway.  Acquire pairs with the waker's seq_cst bump.
	 */
	if (atomic_load_explicit(&w->seq, memory_order_acquire) != ticket)
		return;
	futex_wait(&w->seq, ticket, NULL);
}

bool rcuwait_wake_up(struct rcuwait *w)
{
	/*
	 * Full barrier between the caller's update of the condition and the
	 * load of waiting: a locked RMW that adds nothing (the kernel's
	 * smp_mb() in rcuwait_wake_up()).  It pairs with the waiter's seq_cst
	 * store of waiting before it checks the condition.
	 */
	if (!atomic_fetch_or_explicit(&w->waiting, 0, memory_order_seq_cst))
		return false;
	/*
	 * The bump comes after the condition update (seq_cst RMW): a waiter
	 * whose ticket load reads it also sees the condition true.
	 */
	atomic_fetch_add_explicit(&w->seq, 1, memory_order_seq_cst);
	futex_wake(&w->seq, 1);
	return true;
}
