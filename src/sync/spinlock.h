/* SPDX-License-Identifier: MIT */
/*
 * spinlock_t and raw_spinlock_t: non-sleeping locks for the validator.
 *
 * The distinction matters for the wait-context check only: a raw spinlock is
 * LD_WAIT_SPIN (never sleeps, even on PREEMPT_RT), a spinlock_t is
 * LD_WAIT_CONFIG (sleeps on RT); so a spinlock_t inside a raw_spinlock_t, or
 * any sleeping primitive inside either, is an "Invalid wait context".
 *
 * The implementation is the same for both: a three-state lock word
 * (0 free, 1 locked, 2 locked with sleepers) that spins briefly and then
 * sleeps on a futex, so that the lock stays usable when there are more
 * threads than CPUs (8 vCPU threads on 2 cores).
 */
#ifndef UKVM_SYNC_SPINLOCK_H
#define UKVM_SYNC_SPINLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lockdep/lockdep.h"

/* The lock word is also the futex word, hence 32 bits. */
typedef struct {
	_Atomic uint32_t val;
} arch_spinlock_t;

void arch_spin_lock_slow(arch_spinlock_t *l);
void arch_spin_unlock_wake(arch_spinlock_t *l);

/*
 * Acquire: the successful CAS is an acquire that pairs with the release
 * exchange in arch_spin_unlock(), so the previous critical section
 * happens-before ours.
 */
static inline void arch_spin_lock(arch_spinlock_t *l)
{
	uint32_t expected = 0;

	if (__builtin_expect(atomic_compare_exchange_strong_explicit(&l->val,
			&expected, 1, memory_order_acquire,
			memory_order_relaxed), 1))
		return;
	arch_spin_lock_slow(l);
}

static inline bool arch_spin_trylock(arch_spinlock_t *l)
{
	uint32_t expected = 0;

	return atomic_compare_exchange_strong_explicit(&l->val, &expected, 1,
			memory_order_acquire, memory_order_relaxed);
}

/*
 * Release: pairs with the acquire CAS/exchange of the next owner.  Seeing 2
 * means a thread may sleep on the futex (it set 2 before sleeping): wake one.
 */
static inline void arch_spin_unlock(arch_spinlock_t *l)
{
	if (__builtin_expect(atomic_exchange_explicit(&l->val, 0,
				memory_order_release) == 2, 0))
		arch_spin_unlock_wake(l);
}

static inline bool arch_spin_is_locked(arch_spinlock_t *l)
{
	return atomic_load_explicit(&l->val, memory_order_relaxed) != 0;
}

typedef struct {
	arch_spinlock_t raw_lock;
	struct lockdep_map dep_map;
} raw_spinlock_t;

typedef struct {
	arch_spinlock_t raw_lock;
	struct lockdep_map dep_map;
} spinlock_t;

void __raw_spin_lock_init(raw_spinlock_t *lock, const char *name,
			  const struct lock_class_key *key);
void __spin_lock_init(spinlock_t *lock, const char *name,
		      const struct lock_class_key *key);

#define raw_spin_lock_init(l)                                                 \
	__raw_spin_lock_init((l), #l,                                         \
			     LOCKDEP_STATIC_KEY(#l, LD_TYPE_RAW_SPINLOCK))
#define spin_lock_init(l)                                                     \
	__spin_lock_init((l), #l, LOCKDEP_STATIC_KEY(#l, LD_TYPE_SPINLOCK))

#define DEFINE_RAW_SPINLOCK(_var)                                             \
	DEFINE_LOCKDEP_KEY(_var##__lockdep_key, #_var, LD_TYPE_RAW_SPINLOCK); \
	raw_spinlock_t _var = {                                               \
		.dep_map = STATIC_LOCKDEP_MAP_INIT(#_var,                     \
			&_var##__lockdep_key, LD_WAIT_SPIN, LD_WAIT_SPIN,     \
			LD_TYPE_RAW_SPINLOCK),                                \
	}
#define DEFINE_SPINLOCK(_var)                                                 \
	DEFINE_LOCKDEP_KEY(_var##__lockdep_key, #_var, LD_TYPE_SPINLOCK);     \
	spinlock_t _var = {                                                   \
		.dep_map = STATIC_LOCKDEP_MAP_INIT(#_var,                     \
			&_var##__lockdep_key, LD_WAIT_CONFIG, LD_WAIT_CONFIG, \
			LD_TYPE_SPINLOCK),                                    \
	}

#define __DEFINE_SPIN_OPS(prefix, type)                                       \
static inline void __##prefix##_lock(type *l, unsigned int subclass,          \
				     const struct lockdep_site *site)         \
{                                                                             \
	lock_acquire(&l->dep_map, subclass, 0, 0, 1, NULL, site);             \
	arch_spin_lock(&l->raw_lock);                                         \
}                                                                             \
static inline bool __##prefix##_trylock(type *l,                              \
					const struct lockdep_site *site)      \
{                                                                             \
	if (!arch_spin_trylock(&l->raw_lock))                                 \
		return false;                                                 \
	lock_acquire(&l->dep_map, 0, 1, 0, 1, NULL, site);                    \
	return true;                                                          \
}                                                                             \
static inline void __##prefix##_unlock(type *l,                               \
				       const struct lockdep_site *site)       \
{                                                                             \
	lock_release(&l->dep_map, site);                                      \
	arch_spin_unlock(&l->raw_lock);                                       \
}                                                                             \
static inline bool prefix##_is_locked(type *l)                                \
{                                                                             \
	return arch_spin_is_locked(&l->raw_lock);                             \
}

__DEFINE_SPIN_OPS(spin, spinlock_t)
__DEFINE_SPIN_OPS(raw_spin, raw_spinlock_t)

#define spin_lock(l)		  __spin_lock((l), 0, LOCKDEP_SITE)
#define spin_lock_nested(l, s)	  __spin_lock((l), (s), LOCKDEP_SITE)
#define spin_trylock(l)		  __spin_trylock((l), LOCKDEP_SITE)
#define spin_unlock(l)		  __spin_unlock((l), LOCKDEP_SITE)
#define raw_spin_lock(l)	  __raw_spin_lock((l), 0, LOCKDEP_SITE)
#define raw_spin_lock_nested(l, s) __raw_spin_lock((l), (s), LOCKDEP_SITE)
#define raw_spin_trylock(l)	  __raw_spin_trylock((l), LOCKDEP_SITE)
#define raw_spin_unlock(l)	  __raw_spin_unlock((l), LOCKDEP_SITE)

#endif /* UKVM_SYNC_SPINLOCK_H */
