// SPDX-License-Identifier: MIT
/*
 * The validator's entry points: lock_acquire(), lock_release(), lock_sync()
 * and the per-thread held-lock stack behind them.
 *
 * The common acquisition costs a class-cache load, an O(1) wait-context
 * check (each held entry carries the strictest inner wait type below and
 * including it), one chain-key mix and one lock-free chain-cache probe.
 * Only a held-lock sequence never seen before goes to graph.c, under the
 * graph mutex.
 *
 * Switching the validator off and on again starts a new "epoch": a thread
 * whose stack belongs to an older epoch drops it silently the next time it
 * enters the validator (its locks were taken while nobody was watching).
 */
#include <execinfo.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lockdep/lockdep_internal.h"

__thread struct lockdep_task lockdep_curr;

/* Threads that entered the validator: for statistics and exit checks. */
static pthread_mutex_t tasks_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct lockdep_task *tasks;
static unsigned long retired_hits, retired_misses;
static pthread_key_t task_key;
static pthread_once_t task_once = PTHREAD_ONCE_INIT;

static void task_exit(void *arg)
{
	struct lockdep_task *t = arg;

	if (t->depth && !t->lenient &&
	    atomic_load_explicit(&lockdep_epoch, memory_order_relaxed) == t->epoch)
		lockdep_report_held_at_exit(t);
	t->depth = 0;
	pthread_mutex_lock(&tasks_mutex);
	if (t->prev_task)
		t->prev_task->next_task = t->next_task;
	else
		tasks = t->next_task;
	if (t->next_task)
		t->next_task->prev_task = t->prev_task;
	retired_hits += atomic_load_explicit(&t->hits, memory_order_relaxed);
	retired_misses += atomic_load_explicit(&t->misses, memory_order_relaxed);
	t->registered = false;
	pthread_mutex_unlock(&tasks_mutex);
}

static void task_key_init(void)
{
	void *frame[2];

	pthread_key_create(&task_key, task_exit);
	/*
	 * backtrace() loads libgcc_s on first use, under the dynamic loader's
	 * lock; do that now, outside graph_mutex, so the two never nest.
	 */
	backtrace(frame, 2);
}

void lockdep_task_attach(struct lockdep_task *t)
{
	if (t->registered)
		return;
	pthread_once(&task_once, task_key_init);
	t->tid = gettid();
	if (!t->name[0])
		snprintf(t->name, sizeof(t->name), "thread-%d", (int)t->tid);
	t->curr_chain_key = LOCKDEP_INITIAL_CHAIN_KEY;
	pthread_mutex_lock(&tasks_mutex);
	t->prev_task = NULL;
	t->next_task = tasks;
	if (tasks)
		tasks->prev_task = t;
	tasks = t;
	t->registered = true;
	pthread_mutex_unlock(&tasks_mutex);
	pthread_setspecific(task_key, t);
}

void lockdep_fold_task_stats(unsigned long *hits, unsigned long *misses)
{
	pthread_mutex_lock(&tasks_mutex);
	*hits = retired_hits;
	*misses = retired_misses;
	for (struct lockdep_task *t = tasks; t; t = t->next_task) {
		*hits += atomic_load_explicit(&t->hits, memory_order_relaxed);
		*misses += atomic_load_explicit(&t->misses, memory_order_relaxed);
	}
	pthread_mutex_unlock(&tasks_mutex);
}

/* First use in this thread, or first use since the validator was re-enabled. */
static __attribute__((noinline)) void task_resync(struct lockdep_task *t,
						  unsigned int epoch)
{
	lockdep_task_attach(t);
	if (t->depth)
		t->lenient = true;
	t->depth = 0;
	t->curr_chain_key = LOCKDEP_INITIAL_CHAIN_KEY;
	t->epoch = epoch;
}

/* The thread's state if the validator is on and not re-entered, else NULL. */
static inline struct lockdep_task *task_enter(void)
{
	struct lockdep_task *t = &lockdep_curr;
	unsigned int e = atomic_load_explicit(&lockdep_epoch,
					      memory_order_relaxed);

	if (__builtin_expect(!e, 0))
		return NULL;
	if (__builtin_expect(t->epoch != e, 0))
		task_resync(t, e);
	if (__builtin_expect(t->recursion != 0, 0))
		return NULL;
	return t;
}

static inline void bump(_Atomic unsigned long *c)
{
	/* Single writer: a plain load/store pair, no locked instruction. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static bool held_instance(struct lockdep_task *t, const struct lockdep_map *m)
{
	for (int i = t->depth - 1; i >= 0; i--)
		if (t->held[i].instance == m)
			return true;
	return false;
}

/* The acquisition reported a problem: let the thread stop before it blocks. */
static void acquire_bailout(struct lockdep_task *t)
{
	int kind = t->pending - 1;

	t->pending = 0;
	if (t->bailout)
		t->bailout(t->bailout_arg, (enum lockdep_report_kind)kind);
}

static void push(struct lockdep_task *t, const struct held_lock *hl,
		 uint64_t key)
{
	int depth = t->depth;

	t->held[depth] = *hl;
	t->depth = ++depth;
	t->curr_chain_key = key;
	if (depth > (int)atomic_load_explicit(&lockdep_max_depth_seen, memory_order_relaxed))
		atomic_store_explicit(&lockdep_max_depth_seen, (unsigned long)depth,
				      memory_order_relaxed);
}

/*
 * Everything but the common case: the first acquisition of a map (class
 * lookup), a nest lock, a wait-context violation, a held-stack overflow or
 * a chain-cache miss.  The caller stored in t->cur_ip the return address of
 * the entry point: where the user's stack starts in backtraces.  Few,
 * register-sized arguments so that the fast path reaches it by a tail call
 * and needs no stack frame of its own.
 */
#define ACQ_TRYLOCK	1u
#define ACQ_CHECK	2u
#define ACQ_SYNC	4u
#define ACQ_READ_SHIFT	4

static inline unsigned int acq_flags(int trylock, int read, int check,
				     bool sync)
{
	return (trylock ? ACQ_TRYLOCK : 0) | (check ? ACQ_CHECK : 0) |
	       (sync ? ACQ_SYNC : 0) | (unsigned int)read << ACQ_READ_SHIFT;
}

static __attribute__((noinline)) void
acquire_slow(struct lockdep_map *lock, unsigned int subclass,
	     unsigned int flags, struct lockdep_map *nest_lock,
	     const struct lockdep_site *site)
{
	struct lockdep_task *t = &lockdep_curr;
	int trylock = !!(flags & ACQ_TRYLOCK), check = !!(flags & ACQ_CHECK);
	int read = (int)(flags >> ACQ_READ_SHIFT);
	bool sync = flags & ACQ_SYNC;
	unsigned int bound, inner, outer;
	struct lock_class *c;
	struct held_lock hl;
	int depth = t->depth;
	uint64_t key;

	t->cur_site = site;
	t->acquiring = true;
	c = lockdep_map_class(lock, subclass);
	if (!c) {
		t->acquiring = false;
		return;
	}
	bound = depth ? t->held[depth - 1].wait_bound : LD_WAIT_MAX;
	inner = c->wait_inner;
	outer = sync ? LD_WAIT_SLEEP : c->wait_outer;
	hl = (struct held_lock){
		.prev_chain_key = t->curr_chain_key, .instance = lock,
		.nest_lock = nest_lock, .site = site, .class_idx = (uint16_t)c->idx,
		.read = (uint8_t)read, .trylock = (uint8_t)!!trylock,
		.check = (uint8_t)!!check,
		.wait_bound = (uint8_t)(inner && inner < bound ? inner : bound),
	};
	if (depth >= MAX_LOCK_DEPTH && !sync)
		lockdep_report_depth_overflow(t, &hl);	/* does not return */
	if (!trylock && outer > bound)
		lockdep_report_wait_context(t, &hl, sync, (int)outer);
	if (nest_lock && !held_instance(t, nest_lock))
		lockdep_report_nest_not_held(t, &hl);
	key = lockdep_chain_mix(t->curr_chain_key, hlock_id(c->idx, read, sync));
	if (check && !trylock) {
		if (lockdep_chain_lookup(key)) {
			bump(&t->hits);
		} else {
			bump(&t->misses);
			lockdep_validate_chain(t, &hl, key, sync);
		}
	}
	t->acquiring = false;
	if (t->pending)
		acquire_bailout(t);
	if (!sync)
		push(t, &hl, key);
}

/*
 * The common case, inline in lock_acquire()/lock_sync(): a cached class,
 * nothing to report, a chain-cache hit (or a trylock / check == 0, which
 * are never validated).
 */
static inline __attribute__((always_inline))
void __acquire(struct lockdep_task *t, struct lockdep_map *lock,
	       unsigned int subclass, int trylock, int read, int check,
	       struct lockdep_map *nest_lock, const struct lockdep_site *site,
	       bool sync, void *ip)
{
	struct lock_class *c = NULL;
	int depth = t->depth;
	unsigned int bound, inner;
	struct held_lock *hl;
	uint64_t key;

	if (__builtin_expect(subclass < 2, 1))
		c = atomic_load_explicit(&lock->class_cache[subclass],
					 memory_order_acquire);
	if (__builtin_expect(!c || nest_lock || depth >= MAX_LOCK_DEPTH, 0))
		goto slow;
	bound = depth ? t->held[depth - 1].wait_bound : LD_WAIT_MAX;
	if (__builtin_expect(!trylock && (sync ? LD_WAIT_SLEEP : c->wait_outer) > bound, 0))
		goto slow;
	key = lockdep_chain_mix(t->curr_chain_key, hlock_id(c->idx, read, sync));
	if (check && !trylock) {
		if (__builtin_expect(!lockdep_chain_lookup(key), 0))
			goto slow;
		bump(&t->hits);
	}
	if (sync)
		return;
	inner = c->wait_inner;
	hl = &t->held[depth];
	hl->prev_chain_key = t->curr_chain_key;
	hl->instance = lock;
	hl->nest_lock = NULL;
	hl->site = site;
	hl->class_idx = (uint16_t)c->idx;
	hl->read = (uint8_t)read;
	hl->trylock = (uint8_t)!!trylock;
	hl->check = (uint8_t)!!check;
	hl->wait_bound = (uint8_t)(inner && inner < bound ? inner : bound);
	t->depth = ++depth;
	t->curr_chain_key = key;
	if (__builtin_expect(depth > (int)atomic_load_explicit(&lockdep_max_depth_seen,
						memory_order_relaxed), 0))
		atomic_store_explicit(&lockdep_max_depth_seen, (unsigned long)depth,
				      memory_order_relaxed);
	return;
slow:
	t->cur_ip = ip;
	acquire_slow(lock, subclass, acq_flags(trylock, read, check, sync),
		     nest_lock, site);
}

/* First entry of the thread or of a new epoch, or a re-entry: rare. */
static __attribute__((noinline)) void
acquire_cold(struct lockdep_map *lock, unsigned int subclass,
	     unsigned int flags, struct lockdep_map *nest_lock,
	     const struct lockdep_site *site)
{
	if (task_enter())
		acquire_slow(lock, subclass, flags, nest_lock, site);
}

static inline __attribute__((always_inline))
void acquire_on(struct lockdep_map *lock, unsigned int subclass, int trylock,
		int read, int check, struct lockdep_map *nest_lock,
		const struct lockdep_site *site, bool sync, void *ip)
{
	struct lockdep_task *t = &lockdep_curr;
	unsigned int e = atomic_load_explicit(&lockdep_epoch,
					      memory_order_relaxed);

	if (__builtin_expect(t->epoch != e || t->recursion, 0)) {
		t->cur_ip = ip;
		acquire_cold(lock, subclass, acq_flags(trylock, read, check, sync),
			     nest_lock, site);
		return;
	}
	__acquire(t, lock, subclass, trylock, read, check, nest_lock, site,
		  sync, ip);
}

/*
 * Reached by a tail call from lock_acquire(), so our return address is the
 * user's: where backtraces start.
 */
static __attribute__((noinline)) void
lock_acquire_on(struct lockdep_map *lock, unsigned int subclass, int trylock,
		int read, int check, struct lockdep_map *nest_lock,
		const struct lockdep_site *site)
{
	acquire_on(lock, subclass, trylock, read, check, nest_lock, site, false,
		   __builtin_return_address(0));
}

static __attribute__((noinline)) void
lock_sync_on(struct lockdep_map *lock, unsigned int subclass, int read,
	     int check, struct lockdep_map *nest_lock,
	     const struct lockdep_site *site)
{
	acquire_on(lock, subclass, 0, read, check, nest_lock, site, true,
		   __builtin_return_address(0));
}

/*
 * The entry points only test the on/off switch, then tail-call the
 * validator: with the validator off, an acquisition costs a load and a
 * branch.
 */
void lock_acquire(struct lockdep_map *lock, unsigned int subclass, int trylock,
		  int read, int check, struct lockdep_map *nest_lock,
		  const struct lockdep_site *site)
{
	if (__builtin_expect(!atomic_load_explicit(&lockdep_epoch,
						   memory_order_relaxed), 0))
		return;
	lock_acquire_on(lock, subclass, trylock, read, check, nest_lock, site);
}

void lock_sync(struct lockdep_map *lock, unsigned int subclass, int read,
	       int check, struct lockdep_map *nest_lock,
	       const struct lockdep_site *site)
{
	if (__builtin_expect(!atomic_load_explicit(&lockdep_epoch,
						   memory_order_relaxed), 0))
		return;
	lock_sync_on(lock, subclass, read, check, nest_lock, site);
}

/* Re-fold chain keys and wait bounds from entry @from up (after a removal). */
static void restack(struct lockdep_task *t, int from)
{
	uint64_t key = from ? lockdep_chain_mix(t->held[from - 1].prev_chain_key,
			hlock_id(t->held[from - 1].class_idx, t->held[from - 1].read, false))
			: LOCKDEP_INITIAL_CHAIN_KEY;

	for (int i = from; i < t->depth; i++) {
		struct held_lock *hl = &t->held[i];
		unsigned int bound = i ? t->held[i - 1].wait_bound : LD_WAIT_MAX;
		unsigned int inner = hlock_class(hl)->wait_inner;

		hl->prev_chain_key = key;
		hl->wait_bound = (uint8_t)(inner && inner < bound ? inner : bound);
		key = lockdep_chain_mix(key, hlock_id(hl->class_idx, hl->read, false));
	}
	t->curr_chain_key = key;
}

static __attribute__((noinline)) void
release_slow(struct lockdep_task *t, struct lockdep_map *lock,
	     const struct lockdep_site *site)
{
	int i;

	for (i = t->depth - 1; i >= 0; i--)
		if (t->held[i].instance == lock)
			break;
	if (i < 0) {
		if (!t->lenient)
			lockdep_report_bad_unlock(t, lock, site);
		return;
	}
	memmove(&t->held[i], &t->held[i + 1],
		(size_t)(t->depth - i - 1) * sizeof(t->held[0]));
	t->depth--;
	restack(t, i);
	if (!t->depth)
		t->lenient = false;
}

static __attribute__((noinline)) void
release_cold(struct lockdep_map *lock, const struct lockdep_site *site)
{
	struct lockdep_task *t = task_enter();

	if (t)
		release_slow(t, lock, site);
}

void lock_release(struct lockdep_map *lock, const struct lockdep_site *site)
{
	struct lockdep_task *t = &lockdep_curr;
	unsigned int e = atomic_load_explicit(&lockdep_epoch,
					      memory_order_relaxed);
	int depth;

	if (__builtin_expect(!e, 0))
		return;
	depth = t->depth;
	if (__builtin_expect(t->epoch == e && !t->recursion && depth &&
			     t->held[depth - 1].instance == lock, 1)) {
		t->depth = depth - 1;
		t->curr_chain_key = t->held[depth - 1].prev_chain_key;
		if (depth == 1)
			t->lenient = false;
		return;
	}
	t->cur_ip = __builtin_return_address(0);
	release_cold(lock, site);
}

int lock_is_held_type(const struct lockdep_map *lock, int read)
{
	struct lockdep_task *t = task_enter();

	if (!t)
		return LOCK_STATE_UNKNOWN;
	for (int i = t->depth - 1; i >= 0; i--) {
		const struct held_lock *hl = &t->held[i];

		if (hl->instance != lock)
			continue;
		if (read == -1 || !!hl->read == !!read)
			return LOCK_STATE_HELD;
		return LOCK_STATE_NOT_HELD;
	}
	return LOCK_STATE_NOT_HELD;
}

void lockdep_might_sleep(const struct lockdep_site *site)
{
	struct lockdep_task *t = task_enter();

	if (t && t->depth && t->held[t->depth - 1].wait_bound < LD_WAIT_SLEEP) {
		t->cur_ip = __builtin_return_address(0);
		lockdep_report_might_sleep(t, site);
	}
}

void lockdep_assert_failed(const char *what, const struct lockdep_map *lock,
			   const struct lockdep_site *site)
{
	struct lockdep_task *t = task_enter();

	if (t) {
		t->cur_ip = __builtin_return_address(0);
		lockdep_report_assert(t, what, lock, site);
	}
}

void lockdep_rcu_suspicious(const char *what, const struct lockdep_site *site)
{
	struct lockdep_task *t = task_enter();

	if (t) {
		t->cur_ip = __builtin_return_address(0);
		lockdep_report_rcu(t, what, site);
	}
}

void lockdep_set_task_name(const char *name)
{
	snprintf(lockdep_curr.name, sizeof(lockdep_curr.name), "%s", name);
}

const char *lockdep_task_name(void)
{
	struct lockdep_task *t = &lockdep_curr;

	if (!t->name[0])
		snprintf(t->name, sizeof(t->name), "thread-%d", (int)gettid());
	return t->name;
}

int lockdep_depth(void)
{
	struct lockdep_task *t = task_enter();

	return t ? t->depth : 0;
}

void lockdep_print_held_locks(FILE *f)
{
	struct lockdep_task *t = task_enter();

	if (t)
		lockdep_print_held_locks_of(f, t, true);
}

void lockdep_set_thread_bailout(lockdep_bailout_fn fn, void *arg)
{
	lockdep_curr.bailout = fn;
	lockdep_curr.bailout_arg = arg;
}
