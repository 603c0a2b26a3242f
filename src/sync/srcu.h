/* SPDX-License-Identifier: MIT */
/*
 * SRCU: sleepable read-copy-update with independent domains.
 *
 * Each struct srcu_struct is its own domain: a grace period of one domain
 * waits only for that domain's readers, so synchronize_srcu(&a) inside
 * srcu_read_lock(&b) is legal (liburcu has no domains, hence this code).
 *
 * Readers count themselves in one of two counter pairs (selected by the low
 * bit of srcu_idx) of their thread's shard; a grace period waits for the
 * inactive pair to drain, flips srcu_idx, then waits for the formerly active
 * pair (the classic two-phase SRCU scheme).  Readers may sleep.  A reader
 * that leaves while a grace period sleeps wakes it (futex), so writers do not
 * poll.
 *
 * Fast readers: most threads own a shard, which no other thread writes, and
 * count with a plain load and store -- no locked instruction, no fence.  The
 * full barrier that the scheme needs between a reader's count and its
 * critical section is executed on the readers' behalf by the grace period,
 * with membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) (the asymmetric scheme of
 * liburcu's memb flavor).  Threads beyond SRCU_NR_OWNED_SHARDS, or all of
 * them if membarrier() is unavailable, share the first shards and count with
 * full-barrier atomic RMWs.  Not async-signal-safe: a signal handler must
 * not enter a read section of a domain its thread may be counting in.
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

#define SRCU_NR_SHARED_SHARDS	4	/* counted with atomic RMWs */
#define SRCU_NR_OWNED_SHARDS	64	/* one thread each, plain counting */
#define SRCU_NR_SHARDS		(SRCU_NR_SHARED_SHARDS + SRCU_NR_OWNED_SHARDS)

struct srcu_shard {
	_Atomic unsigned long lock_count[2];
	_Atomic unsigned long unlock_count[2];
} __attribute__((aligned(64)));

struct srcu_struct {
	/* Read by every reader: kept apart from what grace periods write. */
	_Atomic unsigned long srcu_idx;	/* low bit: pair new readers use */
	_Atomic int gp_waiting;		/* 1 + index a grace period sleeps on */
	_Atomic uint32_t gp_wake;	/* futex word, bumped by readers */

	pthread_mutex_t gp_mutex __attribute__((aligned(64)));
	/*
	 * Grace-period sequence, written under gp_mutex, read locklessly for
	 * batching: odd while a grace period runs, +2 per grace period.
	 */
	_Atomic unsigned long gp_seq;
	_Atomic unsigned long nr_sync, nr_sync_expedited;	/* statistics */
	_Atomic unsigned long nr_gp_sleeps;			/* statistics */
	struct lockdep_map dep_map;

	struct srcu_shard shard[SRCU_NR_SHARDS];
};

int __init_srcu_struct(struct srcu_struct *ssp, const char *name,
		       const struct lock_class_key *key);
#define init_srcu_struct(ssp)                                                 \
	__init_srcu_struct((ssp), #ssp, LOCKDEP_STATIC_KEY(#ssp, LD_TYPE_SRCU))
/* Reports (LDR_ASSERT) and returns -EBUSY if readers are still inside. */
int cleanup_srcu_struct(struct srcu_struct *ssp);

/*
 * This thread's shard, the same in every domain: 0 until the first read
 * section, then (shard index + 1), with SRCU_SHARD_SHARED set if the shard
 * is shared with other threads.  __srcu_assign_shard() sets and returns it.
 */
#define SRCU_SHARD_SHARED 0x80000000u
extern __thread unsigned int __srcu_shard;
unsigned int __srcu_assign_shard(void);

static inline unsigned int srcu_this_shard(void)
{
	unsigned int s = __srcu_shard;

	return __builtin_expect(s != 0, 1) ? s : __srcu_assign_shard();
}

static inline _Atomic unsigned long *
__srcu_counter(struct srcu_struct *ssp, unsigned int shard, bool unlock,
	       unsigned int idx)
{
	struct srcu_shard *sh = &ssp->shard[(shard & ~SRCU_SHARD_SHARED) - 1];

	return unlock ? &sh->unlock_count[idx] : &sh->lock_count[idx];
}

void __srcu_wake_gp(struct srcu_struct *ssp, int idx);

static inline int __srcu_read_lock(struct srcu_struct *ssp,
				   const struct lockdep_site *site)
{
	unsigned int shard = srcu_this_shard();
	/*
	 * Acquire (a plain load on x86): if we see the index flipped by a
	 * grace period, we also see every store the updater made before that
	 * grace period, so we cannot find the old object although we count
	 * on the new index that this grace period does not wait for.
	 */
	unsigned int idx = atomic_load_explicit(&ssp->srcu_idx,
						memory_order_acquire) & 1;
	_Atomic unsigned long *c = __srcu_counter(ssp, shard, false, idx);

	if (__builtin_expect(!(shard & SRCU_SHARD_SHARED), 1)) {
		/*
		 * Only this thread writes *c: a plain increment.  The compiler
		 * barrier keeps the critical section after it; the CPU-level
		 * full barrier (the kernel's smp_mb() "B") is the grace
		 * period's membarrier() "A" (srcu.c).
		 */
		atomic_store_explicit(c, atomic_load_explicit(c,
				memory_order_relaxed) + 1, memory_order_relaxed);
		atomic_signal_fence(memory_order_seq_cst);
	} else {
		/* A locked RMW: a full barrier by itself ("B"). */
		atomic_fetch_add_explicit(c, 1, memory_order_seq_cst);
	}
	lock_acquire(&ssp->dep_map, 0, 0, 2, 1, NULL, site);
	return (int)idx;
}

static inline void __srcu_read_unlock(struct srcu_struct *ssp, int idx,
				      const struct lockdep_site *site)
{
	unsigned int shard = srcu_this_shard();
	_Atomic unsigned long *c = __srcu_counter(ssp, shard, true,
						  (unsigned int)idx & 1);

	lock_release(&ssp->dep_map, site);
	/*
	 * A release ("C"): every access of the critical section happens-before
	 * the grace-period scan that reads this count (an acquire load in
	 * srcu.c), hence before the updater's free().
	 */
	if (__builtin_expect(!(shard & SRCU_SHARD_SHARED), 1)) {
		atomic_store_explicit(c, atomic_load_explicit(c,
				memory_order_relaxed) + 1, memory_order_release);
		atomic_signal_fence(memory_order_seq_cst);
	} else {
		atomic_fetch_add_explicit(c, 1, memory_order_seq_cst);
	}
	/*
	 * Store-buffering pair with a sleeping grace period, which announces
	 * itself in gp_waiting, executes a full barrier on every thread
	 * (membarrier(), or the RMW above for shared shards) and re-scans:
	 * either it sees our count or we see the announcement and wake it.
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
