// SPDX-License-Identifier: MIT
/*
 * rcuwait: the waiter returns only once its condition holds and is always
 * woken when it does (a lost wake-up hangs the ping-pong test, which the
 * suite's timeout turns into a failure).
 */
#include "sync_test.h"

static void test_wake_without_waiter(void **state)
{
	struct rcuwait w = __RCUWAIT_INITIALIZER;
	int x = 1;

	(void)state;
	assert_false(rcuwait_wake_up(&w));
	/* A condition that is already true never sleeps. */
	rcuwait_wait_event(&w, x == 1);
	assert_false(rcuwait_wake_up(&w));
}

/* The memslot-update pattern: wait for a count to drop to zero. */
static struct {
	struct rcuwait wait;
	_Atomic long count;
	_Atomic long seen;
	struct flag waiting;
} dz;

static void *count_waiter(void *arg)
{
	(void)arg;
	flag_set(&dz.waiting);
	rcuwait_wait_event(&dz.wait, atomic_load(&dz.count) == 0);
	atomic_store(&dz.seen, atomic_load(&dz.count));
	return NULL;
}

static void test_wait_for_zero(void **state)
{
	const long n = 1000;
	pthread_t tid;

	(void)state;
	rcuwait_init(&dz.wait);
	atomic_store(&dz.count, n);
	atomic_store(&dz.seen, -1);
	tid = start_thread("waiter", count_waiter, NULL);
	flag_wait(&dz.waiting);
	for (long i = 0; i < n; i++) {
		atomic_fetch_sub(&dz.count, 1);
		rcuwait_wake_up(&dz.wait);
		/* The waiter cannot have returned while the count is positive. */
		if (i + 1 < n)
			assert_int_equal(atomic_load(&dz.seen), -1);
		if ((i & 31) == 0)
			sched_yield();
	}
	join_thread(tid);
	assert_int_equal(atomic_load(&dz.seen), 0);
}

/*
 * Ping-pong: the test thread publishes round i and waits for the echo; the
 * other thread waits for round i and echoes it.  Each side sleeps whenever
 * the other is slower, so every round exercises the ticket protocol.
 */
static struct {
	struct rcuwait to_echo, to_main;
	_Atomic long round, echo;
	long rounds;
} pp;

static void *echo_fn(void *arg)
{
	(void)arg;
	for (long i = 1; i <= pp.rounds; i++) {
		rcuwait_wait_event(&pp.to_echo, atomic_load(&pp.round) >= i);
		T_CHECK(atomic_load(&pp.round) == i);
		atomic_store(&pp.echo, i);
		rcuwait_wake_up(&pp.to_main);
	}
	return NULL;
}

static void test_ping_pong(void **state)
{
	pthread_t tid;

	(void)state;
	rcuwait_init(&pp.to_echo);
	rcuwait_init(&pp.to_main);
	atomic_store(&pp.round, 0);
	atomic_store(&pp.echo, 0);
	pp.rounds = 100000;
	tid = start_thread("echo", echo_fn, NULL);
	for (long i = 1; i <= pp.rounds; i++) {
		atomic_store(&pp.round, i);
		rcuwait_wake_up(&pp.to_echo);
		rcuwait_wait_event(&pp.to_main, atomic_load(&pp.echo) >= i);
		assert_int_equal(atomic_load(&pp.echo), i);
	}
	join_thread(tid);
	assert_no_thread_failures();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wake_without_waiter),
		cmocka_unit_test(test_wait_for_zero),
		cmocka_unit_test(test_ping_pong),
	};
	int r;

	sync_test_group_setup(NULL);
	r = cmocka_run_group_tests_name("sync_rcuwait", tests, NULL, NULL);
	sync_test_group_teardown(NULL);
	return r;
}
