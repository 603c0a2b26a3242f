// SPDX-License-Identifier: MIT
/*
 * The chain-key cache: the set of held-lock sequences already validated.
 *
 * A chain key is a 64-bit hash folded over (class, read mode) of every held
 * lock plus the one being acquired, so a hit means this exact sequence went
 * through every check before and nothing can be learnt from it again.  The
 * table is open-addressed (linear probing) over atomics: a lookup is a few
 * relaxed loads and takes no lock; entries are only added, under
 * graph_mutex, and only lockdep_reset() removes them.  Like lockdep we
 * trust a 64-bit hash to be unique.
 */
#include <errno.h>

#include "lockdep/lockdep_internal.h"

_Atomic uint64_t lockdep_chainhash[CHAINHASH_SIZE];
static unsigned long nr_chains;		/* under graph_mutex */

/* Under graph_mutex.  The table stays at most half full: probes stay short. */
int lockdep_chain_insert(uint64_t key)
{
	unsigned int h = (unsigned int)key & (CHAINHASH_SIZE - 1);

	if (nr_chains >= MAX_LOCKDEP_CHAINS) {
		lockdep_off_broken("BUG: MAX_LOCKDEP_CHAINS too low!");
		return -ENOSPC;
	}
	for (;;) {
		uint64_t v = atomic_load_explicit(&lockdep_chainhash[h],
						  memory_order_relaxed);

		if (v == key)
			return 0;
		if (!v)
			break;
		h = (h + 1) & (CHAINHASH_SIZE - 1);
	}
	atomic_store_explicit(&lockdep_chainhash[h], key, memory_order_relaxed);
	nr_chains++;
	return 0;
}

/* Under graph_mutex; concurrent lookups just miss and re-validate. */
void lockdep_chains_reset(void)
{
	for (unsigned int i = 0; i < CHAINHASH_SIZE; i++)
		atomic_store_explicit(&lockdep_chainhash[i], 0, memory_order_relaxed);
	nr_chains = 0;
}

unsigned long lockdep_nr_chains(void)
{
	return nr_chains;
}
