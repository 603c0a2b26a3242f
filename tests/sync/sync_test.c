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

/* ---- use-after-free torture -------------------------------------------- */

#define UAF_MAX_THREADS 8

static struct {
	const struct uaf_ops *ops;
	long iters;
	struct uaf_obj *ptr;		/* protected by the primitive under test */
	_Atomic int stop;
	_Atomic unsigned long reads, replaced;
} uaf;

void uaf_obj_poison_free(struct uaf_obj *o)
{
	o->a = UAF_POISON;
	o->b = UAF_POISON;
	free(o);
}

static void *uaf_reader(void *arg)
{
	unsigned long n = 0;

	(void)arg;
	while (!atomic_load_explicit(&uaf.stop, memory_order_relaxed)) {
		int idx = uaf.ops->enter();
		struct uaf_obj *p = uaf.ops->deref(&uaf.ptr);
		unsigned long a = p->a;

		T_CHECK(a != UAF_POISON);
		if ((n & 15) == 0)
			sched_yield();	/* get preempted inside, sometimes */
		T_CHECK(p->b == a);
		T_CHECK(p->b != UAF_POISON);
		uaf.ops->leave(idx);
		n++;
	}
	atomic_fetch_add(&uaf.reads, n);
	return NULL;
}

static void *uaf_writer(void *arg)
{
	long id = (long)(intptr_t)arg;

	for (long i = 0; i < uaf.iters; i++) {
		struct uaf_obj *n = malloc(sizeof(*n)), *old;

		T_CHECK(n != NULL);
		if (!n)
			break;
		n->a = n->b = (unsigned long)(id << 32 | i);
		old = __atomic_exchange_n(&uaf.ptr, n, __ATOMIC_ACQ_REL);
		uaf.ops->retire(old, id, i);
		atomic_fetch_add(&uaf.replaced, 1);
	}
	return NULL;
}

void uaf_torture(const struct uaf_ops *ops, int nr_readers, int nr_writers,
		 long iters, struct uaf_result *res)
{
	pthread_t readers[UAF_MAX_THREADS], writers[UAF_MAX_THREADS];
	struct uaf_obj *first = malloc(sizeof(*first));

	assert_true(nr_readers <= UAF_MAX_THREADS && nr_writers <= UAF_MAX_THREADS);
	assert_non_null(first);
	first->a = first->b = 1;
	uaf.ops = ops;
	uaf.iters = iters;
	uaf.ptr = first;
	atomic_store(&uaf.stop, 0);
	atomic_store(&uaf.reads, 0);
	atomic_store(&uaf.replaced, 0);
	start_threads(readers, nr_readers, "uaf-reader", uaf_reader, NULL, 0);
	for (long i = 0; i < nr_writers; i++)
		writers[i] = start_thread("uaf-writer", uaf_writer, (void *)(intptr_t)i);
	join_threads(writers, nr_writers);
	atomic_store(&uaf.stop, 1);
	join_threads(readers, nr_readers);
	res->reads = atomic_load(&uaf.reads);
	res->replaced = atomic_load(&uaf.replaced);
	free(uaf.ptr);
	uaf.ptr = NULL;
	assert_no_thread_failures();
	assert_true(res->reads > 0);
}
