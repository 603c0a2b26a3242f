// SPDX-License-Identifier: MIT
/*
 * SRCU shards: which counters a thread counts its read sections in, and the
 * barrier that lets owned shards count without one.
 *
 * Layout of srcu_struct.shard[] (the same for every domain):
 *   [0, SRCU_NR_SHARED_SHARDS)       shared: any number of threads, RMWs
 *   [SRCU_NR_SHARED_SHARDS, ...)     owned: one thread at a time, plain
 *                                    load + store, handed out lowest first
 * so that a grace period scans only a prefix: the shared shards plus the
 * owned ones ever handed out (srcu_owned_hwm).
 *
 * Owned shards need membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): a reader
 * executes no barrier between counting itself and its critical section, so
 * the grace period makes every running thread execute one (barrier "A",
 * srcu_mb_readers()).  Without membarrier() (old kernel, seccomp, or
 * UKVM_SRCU_NO_MEMBARRIER=1 in the environment, which tests use to cover
 * this path) every thread uses a shared shard.
 */
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sync/srcu.h"
#include "sync/srcu_internal.h"
#include "sync/sync_internal.h"

_Static_assert(SRCU_NR_OWNED_SHARDS <= 64, "owned shards are a 64-bit map");

__thread unsigned int __srcu_shard;

static pthread_once_t srcu_once = PTHREAD_ONCE_INIT;
static bool srcu_use_membarrier;	/* written once, under srcu_once */
static pthread_key_t srcu_key;		/* its destructor frees the shard */
static _Atomic uint64_t srcu_owned_map;	/* bit i: owned shard i is taken */
static _Atomic unsigned int srcu_owned_hwm;	/* owned shards ever taken */
static _Atomic unsigned int srcu_shared_next;

static long sys_membarrier(int cmd)
{
	return syscall(SYS_membarrier, cmd, 0, 0);
}

/* Thread exit: the shard goes back to the pool, its counts stay valid. */
static void srcu_shard_release(void *p)
{
	unsigned int bit = (unsigned int)(uintptr_t)p - 1;

	__srcu_shard = 0;
	/*
	 * Release: our last plain counts happen-before the next owner's, whose
	 * claiming CAS is an acquire (srcu_claim_owned()).
	 */
	atomic_fetch_and_explicit(&srcu_owned_map, ~(1ull << bit),
				  memory_order_release);
}

static void srcu_global_init_once(void)
{
	const char *off = getenv("UKVM_SRCU_NO_MEMBARRIER");
	long cmds = sys_membarrier(MEMBARRIER_CMD_QUERY);

	if (off && *off && *off != '0')
		return;
	if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED))
		return;
	if (sys_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED))
		return;
	if (pthread_key_create(&srcu_key, srcu_shard_release))
		return;
	srcu_use_membarrier = true;
}

void srcu_global_init(void)
{
	pthread_once(&srcu_once, srcu_global_init_once);
}

/* Raise the high-water mark of owned shards to @n (monotonic). */
static void srcu_raise_hwm(unsigned int n)
{
	unsigned int old = atomic_load_explicit(&srcu_owned_hwm,
						memory_order_relaxed);

	/*
	 * seq_cst: the mark is published before this thread's first count;
	 * a grace period reads it after barrier A, so it either sees the mark
	 * or this reader started after A and sees the updater's stores.
	 */
	while (old < n && !atomic_compare_exchange_weak_explicit(&srcu_owned_hwm,
			&old, n, memory_order_seq_cst, memory_order_relaxed))
		;
}

/* Take the lowest free owned shard; -1 if all are taken. */
static int srcu_claim_owned(void)
{
	uint64_t map = atomic_load_explicit(&srcu_owned_map,
					    memory_order_relaxed);

	while (~map) {
		unsigned int bit = (unsigned int)__builtin_ctzll(~map);

		/* Acquire: pairs with the release of the previous owner. */
		if (atomic_compare_exchange_weak_explicit(&srcu_owned_map, &map,
				map | (1ull << bit), memory_order_acquire,
				memory_order_relaxed)) {
			srcu_raise_hwm(bit + 1);
			pthread_setspecific(srcu_key, (void *)(uintptr_t)(bit + 1));
			return (int)bit;
		}
	}
	return -1;
}

unsigned int __srcu_assign_shard(void)
{
	unsigned int s;
	int bit;

	srcu_global_init();
	if (srcu_use_membarrier) {
		bit = srcu_claim_owned();
		if (bit >= 0)
			return __srcu_shard = SRCU_NR_SHARED_SHARDS +
					      (unsigned int)bit + 1;
	}
	s = atomic_fetch_add_explicit(&srcu_shared_next, 1,
				      memory_order_relaxed);
	return __srcu_shard = (s % SRCU_NR_SHARED_SHARDS + 1) | SRCU_SHARD_SHARED;
}

unsigned int srcu_nr_scanned_shards(void)
{
	return SRCU_NR_SHARED_SHARDS +
	       atomic_load_explicit(&srcu_owned_hwm, memory_order_seq_cst);
}

void srcu_mb_readers(void)
{
	srcu_global_init();
	if (srcu_use_membarrier) {
		/*
		 * Every thread running now executes a full barrier before the
		 * call returns; a thread not running will, when it is switched
		 * in.  The call is also a full barrier for this thread.
		 */
		if (sys_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)) {
			perror("ukvm: membarrier(PRIVATE_EXPEDITED)");
			abort();	/* registered, so this cannot fail */
		}
		return;
	}
	/* Readers use full-barrier RMWs themselves: our own barrier suffices. */
	atomic_thread_fence(memory_order_seq_cst);
}
