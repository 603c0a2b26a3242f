// SPDX-License-Identifier: MIT
/*
 * spinlock_t / raw_spinlock_t: initialisation and the contended paths of the
 * arch lock word (spinlock.h has the uncontended ones inline).
 *
 * The word is 0 (free), 1 (held, nobody sleeps) or 2 (held, a thread may
 * sleep on the futex).  A contended locker first spins a little, because
 * critical sections under spinlocks are short; if the owner does not let go
 * in that time it is probably preempted (ukvm runs up to ~12 threads on 2
 * CPUs), and burning our time slice would only delay it further, so the
 * locker marks the word 2 and sleeps.
 */
#include "sync/spinlock.h"
#include "sync/sync_internal.h"

/*
 * Spin budget before sleeping.  PAUSE costs tens of cycles on older cores and
 * ~140 on recent Intel ones, so this is a few microseconds: long enough to
 * cover a typical critical section, short enough not to waste a time slice.
 */
#define SPIN_LOCK_SPINS 64

void __raw_spin_lock_init(raw_spinlock_t *lock, const char *name,
			  const struct lock_class_key *key)
{
	atomic_init(&lock->raw_lock.val, 0);
	lockdep_init_map_type(&lock->dep_map, name, key, 0, LD_WAIT_SPIN,
			      LD_WAIT_SPIN, LD_TYPE_RAW_SPINLOCK);
}

void __spin_lock_init(spinlock_t *lock, const char *name,
		      const struct lock_class_key *key)
{
	atomic_init(&lock->raw_lock.val, 0);
	lockdep_init_map_type(&lock->dep_map, name, key, 0, LD_WAIT_CONFIG,
			      LD_WAIT_CONFIG, LD_TYPE_SPINLOCK);
}

void arch_spin_lock_slow(arch_spinlock_t *l)
{
	uint32_t v;

	/*
	 * Phase 1: spin on relaxed loads (no cache-line ping-pong while the
	 * owner holds the lock), and try the 0 -> 1 CAS only when the word
	 * looks free.  The CAS is an acquire pairing with the release exchange
	 * of arch_spin_unlock().
	 */
	for (int i = 0; i < SPIN_LOCK_SPINS; i++) {
		v = atomic_load_explicit(&l->val, memory_order_relaxed);
		if (v == 0) {
			uint32_t expected = 0;

			if (atomic_compare_exchange_weak_explicit(&l->val,
					&expected, 1, memory_order_acquire,
					memory_order_relaxed))
				return;
		}
		cpu_relax();
	}

	/*
	 * Phase 2: mark the word "held, with sleepers" and sleep until it is
	 * handed back free.  The exchange is an acquire (pairs with the unlock
	 * release) and returns the previous state: 0 means we now own the lock
	 * -- in state 2, which costs at most one spurious futex wake at our
	 * unlock, but keeps the invariant that a sleeper always sees 2 set
	 * before it sleeps, so no wake-up can be lost.  The kernel re-checks
	 * the word against 2 atomically with queueing us, so an unlock that
	 * happens between our exchange and the sleep makes futex_wait() return
	 * at once.
	 */
	while (atomic_exchange_explicit(&l->val, 2, memory_order_acquire) != 0)
		futex_wait(&l->val, 2, NULL);
}

void arch_spin_unlock_wake(arch_spinlock_t *l)
{
	/*
	 * arch_spin_unlock() already released the word (exchange to 0, release
	 * order); the woken thread re-takes it with an acquire exchange.
	 */
	futex_wake(&l->val, 1);
}
