// SPDX-License-Identifier: MIT
/*
 * rwlock_t: initialisation and the cond_resched helpers.  The lock itself is
 * a glibc rwlock of the writer-preferring, non-recursive kind, so that a new
 * reader waits behind a waiting writer (what rwlock.h promises the validator
 * with read=1).
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/rwlock.h"

void __rwlock_init(rwlock_t *lock, const char *name,
		   const struct lock_class_key *key)
{
	pthread_rwlockattr_t attr;
	int r;

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	r = pthread_rwlock_init(&lock->rw, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (r) {
		fprintf(stderr, "ukvm: pthread_rwlock_init: %s\n", strerror(r));
		abort();
	}
	atomic_init(&lock->waiters, 0);
	lockdep_init_map_type(&lock->dep_map, name, key, 0, LD_WAIT_CONFIG,
			      LD_WAIT_CONFIG, LD_TYPE_RWLOCK);
}

void rwlock_destroy(rwlock_t *lock)
{
	pthread_rwlock_destroy(&lock->rw);
}

/*
 * Drop the lock if somebody waits for it, let the waiter run, and take it
 * again.  The validator sees a real release and a new acquisition, exactly
 * as for the kernel's cond_resched_rwlock_*(): whatever the caller learnt
 * under the lock may be stale afterwards, which is why it returns true.
 */
bool __cond_resched_rwlock_read(rwlock_t *l, const struct lockdep_site *site)
{
	if (!rwlock_needbreak(l))
		return false;
	__rw_unlock(l, site);
	sched_yield();
	__read_lock(l, site);
	return true;
}

bool __cond_resched_rwlock_write(rwlock_t *l, const struct lockdep_site *site)
{
	if (!rwlock_needbreak(l))
		return false;
	__rw_unlock(l, site);
	sched_yield();
	__write_lock(l, site);
	return true;
}
