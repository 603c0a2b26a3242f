// SPDX-License-Identifier: MIT
/* Helpers shared by the src/sync unit tests (see sync_test.h). */
#include <stdlib.h>

#include "sync_test.h"

_Atomic unsigned long sync_test_failures;

pthread_t start_thread(const char *name, void *(*fn)(void *), void *arg)
{
	pthread_t tid;

	assert_int_equal(ukvm_thread_create(&tid, name, fn, arg), 0);
	return tid;
}

void join_thread(pthread_t tid)
{
	assert_int_equal(pthread_join(tid, NULL), 0);
}

void start_threads(pthread_t *tids, int n, const char *name,
		   void *(*fn)(void *), void *args, size_t size)
{
	for (int i = 0; i < n; i++)
		tids[i] = start_thread(name, fn,
				       args ? (char *)args + i * size : NULL);
}

void join_threads(pthread_t *tids, int n)
{
	for (int i = 0; i < n; i++)
		join_thread(tids[i]);
}

int sync_test_group_setup(void **state)
{
	const char *filter = getenv("SYNC_TEST_FILTER");

	(void)state;
	/* Run only the tests matching a pattern (debugging; '*' wildcards). */
	if (filter)
		cmocka_set_test_filter(filter);
	/* Our ad-hoc lock classes are not part of the documented order. */
	lockdep_order_set_enabled(false);
	ukvm_thread_register_current("test-main");
	return 0;
}

int sync_test_group_teardown(void **state)
{
	(void)state;
	ukvm_thread_unregister_current();
	return 0;
}
