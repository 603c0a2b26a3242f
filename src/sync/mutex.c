// SPDX-License-Identifier: MIT
/*
 * struct mutex: initialisation and teardown.  Lock and unlock are inline in
 * mutex.h: a pthread mutex plus the validator hooks.
 */
#include <pthread.h>

#include "sync/mutex.h"
#include "sync/sync_internal.h"

void __mutex_init(struct mutex *lock, const char *name,
		  const struct lock_class_key *key)
{
	pthread_mutex_init(&lock->m, NULL);
	atomic_init(&lock->locked, 0);
	lockdep_init_map_type(&lock->dep_map, name, key, 0, LD_WAIT_SLEEP,
			      LD_WAIT_SLEEP, LD_TYPE_MUTEX);
}

/*
 * Destroying a held mutex is a bug (the kernel's DEBUG_MUTEXES warns):
 * report it instead of leaving pthread's EBUSY unnoticed.
 */
void mutex_destroy(struct mutex *lock)
{
	if (mutex_is_locked(lock)) {
		sync_report_misuse("mutex_destroy() of a locked mutex",
				   &lock->dep_map, LOCKDEP_SITE);
		return;
	}
	pthread_mutex_destroy(&lock->m);
}
