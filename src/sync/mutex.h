/* SPDX-License-Identifier: MIT */
/*
 * struct mutex: a sleeping lock (pthread mutex underneath), annotated for the
 * validator.  Kernel API: mutex_init(), DEFINE_MUTEX(), mutex_lock(),
 * mutex_lock_nested(), mutex_lock_nest_lock(), mutex_lock_killable(),
 * mutex_trylock(), mutex_unlock(), mutex_is_locked().
 *
 * The class of a mutex is its init call site; its name is the text of the
 * init argument, so mutex_init(&kvm->slots_lock) names the class
 * "&kvm->slots_lock" exactly as lockdep does.
 */
#ifndef UKVM_SYNC_MUTEX_H
#define UKVM_SYNC_MUTEX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "lockdep/lockdep.h"

struct mutex {
	pthread_mutex_t m;
	_Atomic int locked;		/* for mutex_is_locked() */
	struct lockdep_map dep_map;
};

void __mutex_init(struct mutex *lock, const char *name,
		  const struct lock_class_key *key);
void mutex_destroy(struct mutex *lock);

#define mutex_init(lock)                                                      \
	__mutex_init((lock), #lock, LOCKDEP_STATIC_KEY(#lock, LD_TYPE_MUTEX))

/* A statically defined mutex; its class is named after the variable. */
#define DEFINE_MUTEX(_var)                                                    \
	DEFINE_LOCKDEP_KEY(_var##__lockdep_key, #_var, LD_TYPE_MUTEX);        \
	struct mutex _var = {                                                 \
		.m = PTHREAD_MUTEX_INITIALIZER,                               \
		.dep_map = STATIC_LOCKDEP_MAP_INIT(#_var,                     \
			&_var##__lockdep_key, LD_WAIT_SLEEP, LD_WAIT_SLEEP,   \
			LD_TYPE_MUTEX),                                       \
	}

static inline void __mutex_lock(struct mutex *lock, unsigned int subclass,
				struct lockdep_map *nest,
				const struct lockdep_site *site)
{
	lockdep_might_sleep(site);
	lock_acquire(&lock->dep_map, subclass, 0, 0, 1, nest, site);
	pthread_mutex_lock(&lock->m);
	atomic_store_explicit(&lock->locked, 1, memory_order_relaxed);
}

static inline bool __mutex_trylock(struct mutex *lock,
				   const struct lockdep_site *site)
{
	if (pthread_mutex_trylock(&lock->m))
		return false;
	atomic_store_explicit(&lock->locked, 1, memory_order_relaxed);
	lock_acquire(&lock->dep_map, 0, 1, 0, 1, NULL, site);
	return true;
}

static inline void __mutex_unlock(struct mutex *lock,
				  const struct lockdep_site *site)
{
	lock_release(&lock->dep_map, site);
	atomic_store_explicit(&lock->locked, 0, memory_order_relaxed);
	pthread_mutex_unlock(&lock->m);
}

static inline bool mutex_is_locked(struct mutex *lock)
{
	return atomic_load_explicit(&lock->locked, memory_order_relaxed);
}

#define mutex_lock(l)		   __mutex_lock((l), 0, NULL, LOCKDEP_SITE)
#define mutex_lock_nested(l, sub)  __mutex_lock((l), (sub), NULL, LOCKDEP_SITE)
#define mutex_lock_nest_lock(l, n) __mutex_lock((l), 0, &(n)->dep_map, LOCKDEP_SITE)
/* Userspace threads are never killed while waiting: always 0. */
#define mutex_lock_killable(l)	   (__mutex_lock((l), 0, NULL, LOCKDEP_SITE), 0)
#define mutex_lock_killable_nest_lock(l, n)                                   \
	(__mutex_lock((l), 0, &(n)->dep_map, LOCKDEP_SITE), 0)
#define mutex_trylock(l)	   __mutex_trylock((l), LOCKDEP_SITE)
#define mutex_unlock(l)		   __mutex_unlock((l), LOCKDEP_SITE)

#endif /* UKVM_SYNC_MUTEX_H */
