/* SPDX-License-Identifier: MIT */
/*
 * rwlock_t: a non-sleeping (for the validator) reader-writer lock, the type
 * of kvm->mmu_lock.  It is writer-preferring: a new reader waits while a
 * writer waits, so readers are *non-recursive* for the validator (read=1),
 * as queued rwlocks are in the kernel's process context.
 *
 * rwlock_needbreak() tells a long walker that someone waits for the lock, so
 * it can yield (cond_resched_rwlock_read/write(), as the TDP MMU does).
 */
#ifndef UKVM_SYNC_RWLOCK_H
#define UKVM_SYNC_RWLOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "lockdep/lockdep.h"

typedef struct {
	pthread_rwlock_t rw;
	_Atomic int waiters;		/* threads blocked in read/write_lock */
	struct lockdep_map dep_map;
} rwlock_t;

void __rwlock_init(rwlock_t *lock, const char *name,
		   const struct lock_class_key *key);
void rwlock_destroy(rwlock_t *lock);

#define rwlock_init(l)                                                        \
	__rwlock_init((l), #l, LOCKDEP_STATIC_KEY(#l, LD_TYPE_RWLOCK))

static inline void __read_lock(rwlock_t *l, const struct lockdep_site *site)
{
	lock_acquire(&l->dep_map, 0, 0, 1, 1, NULL, site);
	if (__builtin_expect(pthread_rwlock_tryrdlock(&l->rw) != 0, 0)) {
		atomic_fetch_add_explicit(&l->waiters, 1, memory_order_relaxed);
		pthread_rwlock_rdlock(&l->rw);
		atomic_fetch_sub_explicit(&l->waiters, 1, memory_order_relaxed);
	}
}

static inline void __write_lock(rwlock_t *l, const struct lockdep_site *site)
{
	lock_acquire(&l->dep_map, 0, 0, 0, 1, NULL, site);
	if (__builtin_expect(pthread_rwlock_trywrlock(&l->rw) != 0, 0)) {
		atomic_fetch_add_explicit(&l->waiters, 1, memory_order_relaxed);
		pthread_rwlock_wrlock(&l->rw);
		atomic_fetch_sub_explicit(&l->waiters, 1, memory_order_relaxed);
	}
}

static inline bool __read_trylock(rwlock_t *l, const struct lockdep_site *site)
{
	if (pthread_rwlock_tryrdlock(&l->rw))
		return false;
	lock_acquire(&l->dep_map, 0, 1, 1, 1, NULL, site);
	return true;
}

static inline bool __write_trylock(rwlock_t *l, const struct lockdep_site *site)
{
	if (pthread_rwlock_trywrlock(&l->rw))
		return false;
	lock_acquire(&l->dep_map, 0, 1, 0, 1, NULL, site);
	return true;
}

static inline void __rw_unlock(rwlock_t *l, const struct lockdep_site *site)
{
	lock_release(&l->dep_map, site);
	pthread_rwlock_unlock(&l->rw);
}

/* Somebody is waiting for the lock: a holder should yield soon. */
static inline bool rwlock_needbreak(rwlock_t *l)
{
	return atomic_load_explicit(&l->waiters, memory_order_relaxed) > 0;
}

#define read_lock(l)	  __read_lock((l), LOCKDEP_SITE)
#define write_lock(l)	  __write_lock((l), LOCKDEP_SITE)
#define read_trylock(l)	  __read_trylock((l), LOCKDEP_SITE)
#define write_trylock(l)  __write_trylock((l), LOCKDEP_SITE)
#define read_unlock(l)	  __rw_unlock((l), LOCKDEP_SITE)
#define write_unlock(l)	  __rw_unlock((l), LOCKDEP_SITE)

/* Drop and re-take the lock if somebody waits; true if it was dropped. */
bool __cond_resched_rwlock_read(rwlock_t *l, const struct lockdep_site *site);
bool __cond_resched_rwlock_write(rwlock_t *l, const struct lockdep_site *site);
#define cond_resched_rwlock_read(l)  __cond_resched_rwlock_read((l), LOCKDEP_SITE)
#define cond_resched_rwlock_write(l) __cond_resched_rwlock_write((l), LOCKDEP_SITE)

#endif /* UKVM_SYNC_RWLOCK_H */
