/* SPDX-License-Identifier: MIT */
/*
 * SRCU: sleepable read-copy-update with independent domains.
 *
 * Each struct srcu_struct is its own domain: a grace period of one domain
 * waits only for that domain's readers, so synchronize_srcu(&a) inside
 * srcu_read_lock(&b) is legal (liburcu has no domains, hence this code).
 *
 * Readers increment one of two counter pairs (selected by the low bit of
 * srcu_idx) in a per-thread shard; a grace period waits for the inactive pair
 * to drain, flips srcu_idx, then waits for the formerly active pair (the
 * classic two-phase SRCU scheme).  Readers may sleep.  A reader that leaves
 * while a grace period sleeps wakes it (futex), so writers do not poll.
 *
 * For the validator a read-side section is a recursive read of the domain's
 * class and synchronize_srcu() is a sync (acquire + release) of it, exactly as
 * lockdep models SRCU since 2023.
 */
#ifndef UKVM_SYNC_SRCU_H
#define UKVM_SYNC_SRCU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lockdep/lockdep.h"

#define SRCU_NR_SHARDS 8

struct srcu_shard {
	_Atomic unsigned long lock_count[2];
	_Atomic unsigned long unlock_count[2];
} __attribute__((aligned(64)));

struct srcu_struct {
	_Atomic unsigned long srcu_idx;	/* low bit: pair new readers use */
	_Atomic int gp_waiting;		/* 1 + index a grace period sleeps on */
	_Atomic uint32_t gp_wake;	/* futex word, bumped by readers */
	pthread_mutex_t gp_mutex;	/* serialises grace periods */
	/*
	 * Grace-period sequence, written under gp_mutex, read locklessly for
	 * batching: odd while a grace period runs, +2 per grace period.
	 */
	_Atomic unsigned long gp_seq;
	_Atomic unsigned long nr_sync, nr_sync_expedited;	/* statistics */
	_Atomic unsigned long nr_gp_sleeps;			/* statistics */
	struct srcu_shard shard[SRCU_NR_SHARDS];
	struct lockdep_map dep_map;
};

int __init_srcu_struct(struct srcu_struct *ssp, const char *name,
		       const struct lock_class_key *key);
#define init_srcu_struct(ssp)                                                 \
	__init_srcu_struct((ssp), #ssp, LOCKDEP_STATIC_KEY(#ssp, LD_TYPE_SRCU))
/* Reports (LDR_ASSERT) and returns -EBUSY if readers are still inside. */
int cleanup_srcu_struct(struct srcu_struct *ssp);

/* This thread's shard (assigned round-robin on first use). */
extern __thread unsigned int __srcu_shard_plus1;
unsigned int __srcu_assign_shard(void);
static inline unsigned int srcu_this_shard(void)
{
	unsigned int s = __srcu_shard_plus1;

	return __builtin_expect(s != 0, 1) ? s - 1 : __srcu_assign_shard();
}

void __srcu_wake_gp(struct srcu_struct *ssp, int idx);

static inline int __srcu_read_lock(struct srcu_struct *ssp,
				   const struct lockdep_site *site)
{
	/*
	 * Acquire (a plain load on x86): if we see the index flipped by a
	 * grace period, we also see every store the updater made before that
	 * grace period, so we cannot find the old object although we count
	 * on the new index that this grace period does not wait for.
	 */
	unsigned int idx = atomic_load_explicit(&ssp->srcu_idx,
						memory_order_acquire) & 1;

	/*
	 * A locked RMW is a full barrier on x86 (the kernel's smp_mb() "B"):
	 * the increment is visible before any load of the critical section,
	 * pairing with the full barrier in the grace period between the
	 * updater's stores and its scan of lock_count (srcu.c).
	 */
	atomic_fetch_add_explicit(&ssp->shard[srcu_this_shard()].lock_count[idx],
				  1, memory_order_seq_cst);
	lock_acquire(&ssp->dep_map, 0, 0, 2, 1, NULL, site);
	return (int)idx;
}

static inline void __srcu_read_unlock(struct srcu_struct *ssp, int idx,
				      const struct lockdep_site *site)
{
	lock_release(&ssp->dep_map, site);
	/*
	 * Full barrier "C" and a release: every access of the critical
	 * section happens-before the grace-period scan that reads this count
	 * (an acquire load in srcu.c), hence before the updater's free().
	 */
	atomic_fetch_add_explicit(&ssp->shard[srcu_this_shard()].unlock_count[idx & 1],
				  1, memory_order_seq_cst);
	/*
	 * Store-buffering pair with the grace period, which sets gp_waiting
	 * and then re-scans the counts before sleeping: either it sees our
	 * unlock or we see gp_waiting and wake it.  seq_cst is a plain load
	 * on x86; the RMW above is the barrier between the two.
	 */
	if (__builtin_expect(atomic_load_explicit(&ssp->gp_waiting,
						  memory_order_seq_cst), 0))
		__srcu_wake_gp(ssp, idx & 1);
}

void __synchronize_srcu(struct srcu_struct *ssp, bool expedited,
			const struct lockdep_site *site);

#define srcu_read_lock(ssp)		__srcu_read_lock((ssp), LOCKDEP_SITE)
#define srcu_read_unlock(ssp, idx)	__srcu_read_unlock((ssp), (idx), LOCKDEP_SITE)
#define synchronize_srcu(ssp)		__synchronize_srcu((ssp), false, LOCKDEP_SITE)
#define synchronize_srcu_expedited(ssp)	__synchronize_srcu((ssp), true, LOCKDEP_SITE)

/* True when the caller is inside a read section (or the validator is off). */
static inline bool srcu_read_lock_held(const struct srcu_struct *ssp)
{
	return lock_is_held_type(&ssp->dep_map, 1) != LOCK_STATE_NOT_HELD;
}

/* Readers still inside either counter pair (diagnostics, cleanup). */
unsigned long srcu_readers_active(struct srcu_struct *ssp);

/*
 * srcu_dereference_check(p, ssp, c): load an SRCU-protected pointer; with the
 * validator on, report "suspicious RCU usage" unless inside a read section of
 * @ssp or @c holds (e.g. lockdep_is_held(&kvm->slots_lock)).
 */
#if UKVM_LOCKDEP
#define srcu_dereference_check(p, ssp, c)                                     \
	({                                                                    \
		if (!(srcu_read_lock_held(ssp) || (c)))                       \
			lockdep_rcu_suspicious("srcu_dereference_check() "    \
				"outside an SRCU read section of " #ssp,      \
				LOCKDEP_SITE);                                \
		__atomic_load_n(&(p), __ATOMIC_ACQUIRE);                      \
	})
#else
#define srcu_dereference_check(p, ssp, c) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#endif
#define srcu_dereference(p, ssp) srcu_dereference_check((p), (ssp), 0)

#endif /* UKVM_SYNC_SRCU_H */
