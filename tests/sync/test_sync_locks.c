// SPDX-License-Identifier: MIT
/*
 * Exclusive locks: mutex, spinlock_t, raw_spinlock_t.  Mutual exclusion is
 * checked with a plain (non-atomic) counter that must come out exact, and
 * with an "inside" counter that must never exceed one; trylock semantics
 * from a second thread.
 */
#include "sync_test.h"

#define NR_THREADS	4
#define NR_CROWD	12	/* more threads than CPUs: the futex path */

enum lock_kind { K_MUTEX, K_SPIN, K_RAW_SPIN };

static struct mutex t_mutex;
static spinlock_t t_spin;
static raw_spinlock_t t_raw;

static struct excl_ctx {
	enum lock_kind kind;
	long iters;
	unsigned long counter;		/* protected by the lock: plain */
	_Atomic int inside;
} ctx;

static void kind_lock(enum lock_kind k)
{
	switch (k) {
	case K_MUTEX:
		mutex_lock(&t_mutex);
		break;
	case K_SPIN:
		spin_lock(&t_spin);
		break;
	case K_RAW_SPIN:
		raw_spin_lock(&t_raw);
		break;
	}
}

static void kind_unlock(enum lock_kind k)
{
	switch (k) {
	case K_MUTEX:
		mutex_unlock(&t_mutex);
		break;
	case K_SPIN:
		spin_unlock(&t_spin);
		break;
	case K_RAW_SPIN:
		raw_spin_unlock(&t_raw);
		break;
	}
}

static bool kind_trylock(enum lock_kind k)
{
	switch (k) {
	case K_MUTEX:
		return mutex_trylock(&t_mutex);
	case K_SPIN:
		return spin_trylock(&t_spin);
	case K_RAW_SPIN:
		return raw_spin_trylock(&t_raw);
	}
	return false;
}

static bool kind_is_locked(enum lock_kind k)
{
	switch (k) {
	case K_MUTEX:
		return mutex_is_locked(&t_mutex);
	case K_SPIN:
		return spin_is_locked(&t_spin);
	case K_RAW_SPIN:
		return raw_spin_is_locked(&t_raw);
	}
	return false;
}

static void *excl_worker(void *arg)
{
	(void)arg;
	for (long i = 0; i < ctx.iters; i++) {
		kind_lock(ctx.kind);
		T_CHECK(atomic_fetch_add(&ctx.inside, 1) == 0);
		ctx.counter++;
		/* Widen the window a little so that contention really happens. */
		if ((i & 63) == 0)
			sched_yield();
		atomic_fetch_sub(&ctx.inside, 1);
		kind_unlock(ctx.kind);
	}
	return NULL;
}

static int locks_setup(void **state)
{
	(void)state;
	mutex_init(&t_mutex);
	spin_lock_init(&t_spin);
	raw_spin_lock_init(&t_raw);
	return 0;
}

static int locks_teardown(void **state)
{
	(void)state;
	mutex_destroy(&t_mutex);
	return 0;
}

static void run_exclusion(enum lock_kind k, int nthreads, long iters)
{
	pthread_t tids[NR_CROWD];

	ctx.kind = k;
	ctx.iters = iters;
	ctx.counter = 0;
	start_threads(tids, nthreads, "excl", excl_worker, NULL, 0);
	join_threads(tids, nthreads);
	assert_no_thread_failures();
	assert_int_equal(ctx.counter, (unsigned long)nthreads * iters);
	assert_false(kind_is_locked(k));
}

static void test_mutex_exclusion(void **state)
{
	(void)state;
	run_exclusion(K_MUTEX, NR_THREADS, SCALE(100000));
}

static void test_spin_exclusion(void **state)
{
	(void)state;
	run_exclusion(K_SPIN, NR_THREADS, SCALE(200000));
}

static void test_raw_spin_exclusion(void **state)
{
	(void)state;
	run_exclusion(K_RAW_SPIN, NR_THREADS, SCALE(200000));
}

/* 12 threads on 2 CPUs: owners get preempted, waiters must sleep and wake. */
static void test_spin_crowd(void **state)
{
	(void)state;
	run_exclusion(K_SPIN, NR_CROWD, SCALE(50000));
	run_exclusion(K_RAW_SPIN, NR_CROWD, SCALE(50000));
}

static void test_mutex_crowd(void **state)
{
	(void)state;
	run_exclusion(K_MUTEX, NR_CROWD, SCALE(30000));
}

/* A second thread tries the lock the test thread holds, then a free one. */
static struct {
	enum lock_kind kind;
	struct flag held, tried, released, done;
	_Atomic int try_held, try_free;
} tl;

static void *trylock_worker(void *arg)
{
	(void)arg;
	flag_wait(&tl.held);
	atomic_store(&tl.try_held, kind_trylock(tl.kind));
	flag_set(&tl.tried);
	flag_wait(&tl.released);
	bool ok = kind_trylock(tl.kind);

	atomic_store(&tl.try_free, ok);
	if (ok)
		kind_unlock(tl.kind);
	flag_set(&tl.done);
	return NULL;
}

static void run_trylock(enum lock_kind k)
{
	pthread_t tid;

	memset(&tl, 0, sizeof(tl));
	tl.kind = k;
	tid = start_thread("trylock", trylock_worker, NULL);
	assert_false(kind_is_locked(k));
	kind_lock(k);
	assert_true(kind_is_locked(k));
	flag_set(&tl.held);
	flag_wait(&tl.tried);
	assert_false(atomic_load(&tl.try_held));
	kind_unlock(k);
	flag_set(&tl.released);
	flag_wait(&tl.done);
	assert_true(atomic_load(&tl.try_free));
	join_thread(tid);
	assert_false(kind_is_locked(k));

	/* Uncontended trylock in the same thread succeeds and holds. */
	assert_true(kind_trylock(k));
	assert_true(kind_is_locked(k));
	kind_unlock(k);
}

static void test_trylock(void **state)
{
	(void)state;
	run_trylock(K_MUTEX);
	run_trylock(K_SPIN);
	run_trylock(K_RAW_SPIN);
}

/* Statically defined locks work without an init call. */
DEFINE_MUTEX(static_mutex);
DEFINE_SPINLOCK(static_spin);
DEFINE_RAW_SPINLOCK(static_raw);

static void test_static_locks(void **state)
{
	(void)state;
	mutex_lock(&static_mutex);
	assert_true(mutex_is_locked(&static_mutex));
	assert_false(mutex_trylock(&static_mutex));
	mutex_unlock(&static_mutex);
	spin_lock(&static_spin);
	assert_false(spin_trylock(&static_spin));
	spin_unlock(&static_spin);
	raw_spin_lock(&static_raw);
	assert_false(raw_spin_trylock(&static_raw));
	raw_spin_unlock(&static_raw);
	assert_false(raw_spin_is_locked(&static_raw));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mutex_exclusion),
		cmocka_unit_test(test_spin_exclusion),
		cmocka_unit_test(test_raw_spin_exclusion),
		cmocka_unit_test(test_spin_crowd),
		cmocka_unit_test(test_mutex_crowd),
		cmocka_unit_test(test_trylock),
		cmocka_unit_test(test_static_locks),
	};
	int r;

	sync_test_group_setup(NULL);
	locks_setup(NULL);
	r = cmocka_run_group_tests_name("sync_locks", tests, NULL, NULL);
	locks_teardown(NULL);
	sync_test_group_teardown(NULL);
	return r;
}
