// SPDX-License-Identifier: MIT
/*
 * SRCU with independent domains: grace periods, domain setup and teardown.
 * The read side is inline in srcu.h.
 *
 * Counters.  A reader increments lock_count[idx] of its thread's shard,
 * where idx is the low bit of srcu_idx it loaded, and later increments
 * unlock_count[idx] (same idx, returned by srcu_read_lock()).  Owned shards
 * count with a plain load and store, shared ones with RMWs (srcu_shard.c).
 * Counters only grow; sums are compared modulo 2^BITS_PER_LONG, which is
 * exact because fewer than 2^64 readers can be inside at once.
 *
 * Drain check of one index (srcu_readers_drained()): sum the unlock counts
 * of every shard, then sum the lock counts.  Let L be the set of lock
 * increments the second scan sees and U the set of unlock increments the
 * first scan sees.  U is a subset of the unlocks of L: if the first scan read
 * a reader's unlock (a release store or RMW, read by an acquire load), the
 * reader's earlier lock increment happens-before the second scan, which
 * therefore reads it or a later value.  So equal sums mean |U| == |L|: every
 * reader counted by the second scan has left, and its unlock happens-before
 * everything the grace period does next (in particular the updater's free).
 *
 * Why that suffices.  Take a reader R that can still see what the updater
 * removed before calling synchronize_srcu().  R counts itself and then loads
 * the pointer; the updater stores the pointer, and the grace period executes
 * barrier A -- membarrier(), a full barrier in every thread -- before its
 * first scan.  If R's count came before R's part of that barrier, the count
 * is visible to both scans; if after, R's load of the pointer is after the
 * barrier too and finds the new pointer.  (With shared shards the reader's
 * locked RMW is the barrier and A is an ordinary fence: store buffering.)
 * Both scans of a grace period come after A, one for each index, so a reader
 * that can see the old object is in L of the scan of whichever index it
 * used, and the grace period waits for it.
 *
 * Why two phases.  Only liveness needs them: the scan of an index can keep
 * failing while new readers keep entering that index.  New readers use the
 * active index, so the grace period first drains the inactive one (only
 * readers that loaded srcu_idx before an earlier flip can still enter it),
 * flips srcu_idx so that new readers use the other index, and then drains
 * the formerly active one.  Each scan is bounded by the readers that were
 * already inside or had already loaded the index.
 *
 * Waiting.  Poll briefly (expedited: longer), then sleep on the gp_wake
 * futex after announcing the awaited index in gp_waiting; an unlocker of
 * that index that sees the announcement clears it and wakes us
 * (__srcu_wake_gp()), so readers make at most one futex call per sleep.
 */
#include <errno.h>
#include <sched.h>

#include "sync/srcu.h"
#include "sync/srcu_internal.h"
#include "sync/sync_internal.h"

/* Polling budgets (drain checks) before sleeping on the futex. */
#define SRCU_SPINS		2	/* normal: poll, then yield a little */
#define SRCU_YIELDS		4
#define SRCU_EXP_SPINS		200	/* expedited: a few microseconds */
#define SRCU_EXP_YIELDS		20
/* The futex sleep is woken by readers; the timeout is only a safety net. */
#define SRCU_SLEEP_TIMEOUT_NS	(100 * 1000 * 1000)

int __init_srcu_struct(struct srcu_struct *ssp, const char *name,
		       const struct lock_class_key *key)
{
	atomic_init(&ssp->srcu_idx, 0);
	atomic_init(&ssp->gp_waiting, 0);
	atomic_init(&ssp->gp_wake, 0);
	atomic_init(&ssp->gp_seq, 0);
	atomic_init(&ssp->nr_sync, 0);
	atomic_init(&ssp->nr_sync_expedited, 0);
	atomic_init(&ssp->nr_gp_sleeps, 0);
	for (int i = 0; i < SRCU_NR_SHARDS; i++) {
		for (int j = 0; j < 2; j++) {
			atomic_init(&ssp->shard[i].lock_count[j], 0);
			atomic_init(&ssp->shard[i].unlock_count[j], 0);
		}
	}
	if (pthread_mutex_init(&ssp->gp_mutex, NULL))
		return -ENOMEM;
	srcu_global_init();
	lockdep_init_map_type(&ssp->dep_map, name, key, 0, LD_WAIT_SLEEP,
			      LD_WAIT_FREE, LD_TYPE_SRCU);
	return 0;
}

/*
 * Sum one counter array over the shards in use.  seq_cst loads (plain loads
 * on x86): acquire, pairing with the readers' release stores and RMWs, and
 * part of the single total order the shared-shard argument relies on.
 */
static unsigned long srcu_sum(struct srcu_struct *ssp, bool unlocks,
			      unsigned int idx)
{
	unsigned int n = srcu_nr_scanned_shards();
	unsigned long sum = 0;

	for (unsigned int i = 0; i < n; i++) {
		struct srcu_shard *sh = &ssp->shard[i];

		sum += atomic_load_explicit(unlocks ? &sh->unlock_count[idx] :
						      &sh->lock_count[idx],
					    memory_order_seq_cst);
	}
	return sum;
}

/* True if every reader counted on @idx has left (see the file comment). */
static bool srcu_readers_drained(struct srcu_struct *ssp, unsigned int idx)
{
	/* Unlocks first: the acquire loads order the two scans. */
	unsigned long unlocks = srcu_sum(ssp, true, idx);

	return srcu_sum(ssp, false, idx) == unlocks;
}

unsigned long srcu_readers_active(struct srcu_struct *ssp)
{
	unsigned long unlocks = srcu_sum(ssp, true, 0) + srcu_sum(ssp, true, 1);

	return srcu_sum(ssp, false, 0) + srcu_sum(ssp, false, 1) - unlocks;
}

/*
 * An unlocker of @idx saw gp_waiting set.  Only an unlock of the awaited
 * index can end the wait, and only one such unlocker needs to wake the grace
 * period per sleep: the one whose CAS clears the announcement.  An unlocker
 * that loses the CAS to another is covered by that one's wake-up: the grace
 * period re-announces (a store later than both CASes in gp_waiting's
 * modification order) before re-scanning, so its next scan sees our unlock.
 */
void __srcu_wake_gp(struct srcu_struct *ssp, int idx)
{
	int expected = idx + 1;

	if (!atomic_compare_exchange_strong_explicit(&ssp->gp_waiting,
			&expected, 0, memory_order_seq_cst,
			memory_order_relaxed))
		return;
	/*
	 * Bump the futex word after our unlock: if the grace period took its
	 * ticket before this, futex_wait() returns at once or we wake it; if
	 * after, its ticket load (acquire) reads our release and its re-scan
	 * sees our unlock.
	 */
	atomic_fetch_add_explicit(&ssp->gp_wake, 1, memory_order_release);
	futex_wake(&ssp->gp_wake, 1);
}

/* Sleep until an unlocker of @idx wakes us (or the safety timeout). */
static void srcu_sleep(struct srcu_struct *ssp, unsigned int idx)
{
	const struct timespec timeout = { 0, SRCU_SLEEP_TIMEOUT_NS };
	uint32_t ticket;

	/* The ticket first: a wake-up after this point cannot be lost. */
	ticket = atomic_load_explicit(&ssp->gp_wake, memory_order_acquire);
	/*
	 * Announce, barrier on every thread, re-scan.  Pairs with the
	 * unlocker's count followed by its load of gp_waiting: an unlocker
	 * whose count our re-scan misses counted after its part of the
	 * barrier, so its later load sees the announcement and it wakes us.
	 */
	atomic_store_explicit(&ssp->gp_waiting, (int)idx + 1,
			      memory_order_seq_cst);
	srcu_mb_readers();
	if (!srcu_readers_drained(ssp, idx)) {
		atomic_fetch_add_explicit(&ssp->nr_gp_sleeps, 1,
					  memory_order_relaxed);
		futex_wait(&ssp->gp_wake, ticket, &timeout);
	}
	/* Only this grace period (under gp_mutex) announces: withdraw it. */
	atomic_store_explicit(&ssp->gp_waiting, 0, memory_order_relaxed);
}

static void srcu_wait_readers(struct srcu_struct *ssp, unsigned int idx,
			      bool expedited)
{
	unsigned int spins = expedited ? SRCU_EXP_SPINS : SRCU_SPINS;
	unsigned int yields = spins + (expedited ? SRCU_EXP_YIELDS : SRCU_YIELDS);

	for (unsigned int i = 0; !srcu_readers_drained(ssp, idx); i++) {
		if (i < spins)
			cpu_relax();
		else if (i < yields)
			sched_yield();	/* the readers may need our CPU */
		else
			srcu_sleep(ssp, idx);
	}
}

/* Wrap-safe "a is at or after b" for grace-period sequence numbers. */
static inline bool srcu_seq_done(unsigned long a, unsigned long b)
{
	return (long)(a - b) >= 0;
}

void __synchronize_srcu(struct srcu_struct *ssp, bool expedited,
			const struct lockdep_site *site)
{
	unsigned long snap, seq;
	unsigned int idx;

	lockdep_might_sleep(site);
	/* A write-side critical section that is empty (lockdep's SRCU model). */
	lock_sync(&ssp->dep_map, 0, 0, 1, NULL, site);
	atomic_fetch_add_explicit(expedited ? &ssp->nr_sync_expedited :
				  &ssp->nr_sync, 1, memory_order_relaxed);

	/*
	 * Batching.  Full barrier (E): the caller's updates are ordered before
	 * the snapshot of gp_seq.  A grace period whose start (gp_seq made odd,
	 * seq_cst, then barrier A) comes after our snapshot in gp_seq's order
	 * therefore scans after our updates were visible, and its completion
	 * serves us.  If the snapshot is even, the next grace period to start
	 * qualifies and ends at snap + 2; if odd, the running one started too
	 * early and the one after it ends at snap + 3.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	snap = atomic_load_explicit(&ssp->gp_seq, memory_order_seq_cst);
	snap = (snap + 3) & ~1UL;

	pthread_mutex_lock(&ssp->gp_mutex);
	/*
	 * gp_seq is written under gp_mutex: reading it here, the mutex orders
	 * the finished grace period's scans (which acquired every counted
	 * reader's unlock) before our return, as if we had scanned ourselves.
	 */
	seq = atomic_load_explicit(&ssp->gp_seq, memory_order_relaxed);
	if (srcu_seq_done(seq, snap))
		goto out;

	atomic_store_explicit(&ssp->gp_seq, seq + 1, memory_order_seq_cst);
	/*
	 * Barrier A: the updates before synchronize_srcu() and the gp_seq
	 * start are ordered before the scans, and every reader executes a
	 * full barrier between counting itself and its critical section
	 * (pairs with "B" in srcu_read_lock()).
	 */
	srcu_mb_readers();

	/* Only grace periods write srcu_idx, and they hold gp_mutex. */
	idx = atomic_load_explicit(&ssp->srcu_idx, memory_order_relaxed) & 1;
	srcu_wait_readers(ssp, idx ^ 1, expedited);
	/*
	 * Flip: new readers use the drained index from now on.  seq_cst RMW:
	 * the scan above is complete before it, the scan below starts after
	 * it; a reader's acquire load that sees the flip also sees everything
	 * before it (srcu_read_lock()).
	 */
	atomic_fetch_add_explicit(&ssp->srcu_idx, 1, memory_order_seq_cst);
	srcu_wait_readers(ssp, idx, expedited);

	/* Release: a batched caller that reads this also sees our scans. */
	atomic_store_explicit(&ssp->gp_seq, seq + 2, memory_order_release);
out:
	pthread_mutex_unlock(&ssp->gp_mutex);
}

int cleanup_srcu_struct(struct srcu_struct *ssp)
{
	if (srcu_readers_active(ssp)) {
		sync_report_misuse("cleanup_srcu_struct() with SRCU readers still inside",
				   &ssp->dep_map, LOCKDEP_SITE);
		return -EBUSY;
	}
	pthread_mutex_destroy(&ssp->gp_mutex);
	return 0;
}
