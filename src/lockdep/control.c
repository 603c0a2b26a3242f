// SPDX-License-Identifier: MIT
/*
 * Global control of the validator: the on/off switch (an "epoch" number
 * that the entry points test with one load), giving up after a table
 * overflow, lockdep_reset() and the statistics.
 */
#include "lockdep/lockdep_internal.h"

_Atomic unsigned int lockdep_epoch = 1;
_Atomic int lockdep_order_on = 1;
_Atomic unsigned long lockdep_max_depth_seen;
pthread_mutex_t graph_mutex = PTHREAD_MUTEX_INITIALIZER;

static unsigned int epoch_counter = 1;	/* under graph_mutex */
static bool user_enabled = true, broken;

/* Under graph_mutex. */
static void update_epoch(void)
{
	bool was_on = atomic_load_explicit(&lockdep_epoch, memory_order_relaxed);

	if (user_enabled && !broken) {
		if (!was_on)
			atomic_store(&lockdep_epoch, ++epoch_counter);
	} else {
		atomic_store(&lockdep_epoch, 0);
	}
}

void lockdep_set_enabled(bool on)
{
	pthread_mutex_lock(&graph_mutex);
	user_enabled = on;
	update_epoch();
	pthread_mutex_unlock(&graph_mutex);
}

bool lockdep_enabled(void)
{
	return atomic_load_explicit(&lockdep_epoch, memory_order_relaxed) != 0;
}

/* Under graph_mutex: a table overflowed; like debug_locks_off(). */
void lockdep_off_broken(const char *why)
{
	FILE *f = lockdep_out();

	fprintf(f, "%s\nturning off the locking correctness validator.\n", why);
	fflush(f);
	broken = true;
	update_epoch();
}

void lockdep_order_set_enabled(bool on)
{
	atomic_store(&lockdep_order_on, on);
}

void lockdep_reset(void)
{
	pthread_mutex_lock(&graph_mutex);
	lockdep_graph_reset();
	lockdep_chains_reset();
	lockdep_classes_forget_graph();
	lockdep_report_reset();
	pthread_mutex_unlock(&graph_mutex);
}

void lockdep_get_stats(struct lockdep_stats *st)
{
	*st = (struct lockdep_stats){ 0 };
	lockdep_report_stats(st);
	lockdep_fold_task_stats(&st->chain_hits, &st->chain_misses);
	st->classes = atomic_load(&nr_lock_classes);
	st->max_depth = atomic_load(&lockdep_max_depth_seen);
	st->static_keys = lockdep_nr_static_keys();
	pthread_mutex_lock(&graph_mutex);
	st->dependencies = lockdep_nr_deps();
	st->chains = lockdep_nr_chains();
	pthread_mutex_unlock(&graph_mutex);
}

static void count_key(const struct lock_class_key *key, void *arg)
{
	(void)key;
	(*(unsigned long *)arg)++;
}

unsigned long lockdep_nr_static_keys(void)
{
	unsigned long n = 0;

	lockdep_for_each_static_key(count_key, &n);
	return n;
}
