// SPDX-License-Identifier: MIT
/*
 * The validator's behaviour around its reports: counters and
 * de-duplication, report modes, the bailout hook (a longjmp out of an
 * acquisition leaves a consistent held stack), out-of-order release and
 * the chain keys behind it, locks held at thread exit, switching the
 * validator off and on, the observed-graph outputs, and concurrent
 * validation (run under TSan for data races).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lockdep/lockdep.h"
#include "lockdep/order.h"

#define NR_MAPS 8
static struct lock_class_key keys[NR_MAPS] = {
	{ .name = "A", .type = LD_TYPE_MUTEX }, { .name = "B", .type = LD_TYPE_MUTEX },
	{ .name = "C", .type = LD_TYPE_MUTEX }, { .name = "D", .type = LD_TYPE_MUTEX },
	{ .name = "E", .type = LD_TYPE_MUTEX }, { .name = "F", .type = LD_TYPE_MUTEX },
	{ .name = "G", .type = LD_TYPE_MUTEX }, { .name = "H", .type = LD_TYPE_MUTEX },
};
static struct lockdep_map m[NR_MAPS];
#define A (&m[0])
#define B (&m[1])
#define C (&m[2])
#define D (&m[3])
#define X (&m[4])

static const struct lockdep_site here = { "test", __FILE__, __LINE__ };
#define take(l)	lock_acquire((l), 0, 0, 0, 1, NULL, &here)
#define drop(l)	lock_release((l), &here)

static char *buf;
static size_t buflen;
static FILE *stream;

static int setup(void **state)
{
	(void)state;
	lockdep_set_enabled(true);
	lockdep_reset();
	lockdep_order_set_enabled(false);
	lockdep_set_report_mode(LOCKDEP_REPORT_CONTINUE);
	lockdep_set_undocumented_is_error(false);
	lockdep_set_thread_bailout(NULL, NULL);
	for (int i = 0; i < NR_MAPS; i++)
		lockdep_init_map_type(&m[i], keys[i].name, &keys[i], 0,
				      LD_WAIT_SLEEP, LD_WAIT_SLEEP, LD_TYPE_MUTEX);
	buf = NULL;
	stream = open_memstream(&buf, &buflen);
	lockdep_set_report_stream(stream);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lockdep_set_report_stream(NULL);
	fclose(stream);
	free(buf);
	assert_int_equal(lockdep_depth(), 0);
	return 0;
}

static const char *text(void)
{
	fflush(stream);
	return buf ? buf : "";
}

static void take_pair(struct lockdep_map *a, struct lockdep_map *b)
{
	take(a);
	take(b);
	drop(b);
	drop(a);
}

static void test_counters_and_dedupe(void **state)
{
	(void)state;
	take_pair(A, B);
	take(B);
	lock_acquire(A, 0, 0, 1, 1, NULL, &here);	/* A for read */
	drop(A);
	drop(B);
	assert_int_equal(lockdep_report_count(), 1);
	/* The same cycle closed by another edge kind: not reported again. */
	lock_acquire(B, 0, 0, 1, 1, NULL, &here);	/* B for read */
	take(A);
	drop(A);
	drop(B);
	assert_int_equal(lockdep_report_count(), 1);
	/* Same for a same-class report reached through another chain. */
	take(X);
	take(X);
	drop(X);
	drop(X);
	take(D);
	take(X);
	take(X);
	drop(X);
	drop(X);
	drop(D);
	assert_int_equal(lockdep_report_count(), 2);
	/* Quiet mode counts without printing. */
	lockdep_set_report_mode(LOCKDEP_REPORT_QUIET);
	take_pair(C, D);
	take_pair(D, C);
	lockdep_set_report_mode(LOCKDEP_REPORT_CONTINUE);
	assert_int_equal(lockdep_report_count(), 3);
	assert_null(strstr(text(), "(D)"));
	lockdep_reset();
	assert_int_equal(lockdep_report_count(), 0);
	take_pair(B, A);
	take_pair(A, B);
	assert_int_equal(lockdep_report_count(), 1);
}

static void test_undocumented_is_warning(void **state)
{
	static const char order[] = "class A mutex\nclass B mutex\nclass C mutex\n"
				    "class D mutex\nclass E mutex\nclass F mutex\n"
				    "class G mutex\nclass H mutex\n"
				    "order A => B\norder C => D\n";
	struct lockdep_stats st;
	char err[256];

	(void)state;
	assert_int_equal(lockdep_order_load_text(order, "t", NULL, err, sizeof(err)), 0);
	lockdep_order_set_enabled(true);
	take_pair(C, A);
	assert_int_equal(lockdep_report_count(), 0);
	assert_int_equal(lockdep_warning_count(), 1);
	lockdep_set_undocumented_is_error(true);
	take_pair(C, B);
	assert_int_equal(lockdep_report_count(), 1);
	lockdep_get_stats(&st);
	assert_int_equal(st.by_kind[LDR_UNDOCUMENTED], 2);
	assert_non_null(strstr(text(), "add a rule to lock-order.txt or fix the code"));
	lockdep_order_set_enabled(false);
	lockdep_order_load_text(ukvm_lock_order_text, "src/lockdep/lock-order.txt",
				"current", NULL, 0);
}

/*
 * A local class (a benchmark's or test's own lock) is outside the documented
 * order: no unknown-class or undocumented warning, but cycles still count.
 */
static DEFINE_LOCKDEP_LOCAL_KEY(local_key, "local", LD_TYPE_MUTEX);

static void test_local_class_skips_order_checks(void **state)
{
	static const char order[] = "class A mutex\nclass B mutex\norder A => B\n";
	struct lockdep_map lm;
	char err[256];

	(void)state;
	assert_int_equal(lockdep_order_load_text(order, "t", NULL, err, sizeof(err)), 0);
	lockdep_order_set_enabled(true);
	lockdep_init_map_type(&lm, "local", &local_key, 0, LD_WAIT_SLEEP,
			      LD_WAIT_SLEEP, LD_TYPE_MUTEX);
	take_pair(A, &lm);
	take_pair(&lm, B);
	assert_int_equal(lockdep_warning_count(), 0);
	assert_int_equal(lockdep_report_count(), 0);
	/* local -> B was seen above: B -> local closes a cycle. */
	take_pair(B, &lm);
	assert_int_equal(lockdep_report_count(), 1);
	assert_non_null(strstr(text(), "circular locking dependency"));
	lockdep_order_set_enabled(false);
	lockdep_order_load_text(ukvm_lock_order_text, "src/lockdep/lock-order.txt",
				"current", NULL, 0);
}

static jmp_buf bail_jmp;
static int bail_kind = -1;

static void bail(void *arg, enum lockdep_report_kind kind)
{
	(void)arg;
	bail_kind = (int)kind;
	longjmp(bail_jmp, 1);
}

static void test_bailout_longjmp(void **state)
{
	volatile int jumped = 0;

	(void)state;
	take_pair(A, B);
	lockdep_set_thread_bailout(bail, NULL);
	take(B);
	if (!setjmp(bail_jmp))
		take(A);	/* would deadlock: the hook stops us first */
	else
		jumped = 1;
	lockdep_set_thread_bailout(NULL, NULL);
	assert_int_equal(jumped, 1);
	assert_int_equal(bail_kind, LDR_CIRCULAR);
	/* The failed acquisition was not pushed; B still is. */
	assert_int_equal(lockdep_depth(), 1);
	assert_int_equal(lock_is_held_type(A, -1), LOCK_STATE_NOT_HELD);
	assert_int_equal(lock_is_held_type(B, -1), LOCK_STATE_HELD);
	drop(B);
	assert_int_equal(lockdep_depth(), 0);
	take_pair(C, D);
	assert_int_equal(lockdep_report_count(), 1);
	assert_null(strstr(text(), "bad unlock"));
}

static void test_out_of_order_release(void **state)
{
	struct lockdep_stats s1, s2;

	(void)state;
	take(A);
	take(B);
	take(C);
	drop(A);		/* the bottom one */
	assert_int_equal(lockdep_depth(), 2);
	drop(C);
	take(D);		/* held: B, D */
	drop(B);
	drop(D);
	/* Releasing B from A B C left A C: keys must match A then C. */
	take(A);
	take(B);
	take(C);
	drop(B);
	take(D);		/* validates the chain A C D */
	drop(D);
	drop(C);
	drop(A);
	lockdep_get_stats(&s1);
	take(A);
	take(C);		/* chain A C: never validated, a miss */
	take(D);		/* chain A C D: validated above, a hit */
	drop(D);
	drop(C);
	drop(A);
	lockdep_get_stats(&s2);
	assert_int_equal(s2.chain_misses - s1.chain_misses, 1);
	assert_int_equal(s2.chain_hits - s1.chain_hits, 2);
	assert_int_equal(lockdep_report_count(), 0);
	drop(A);		/* not held */
	assert_int_equal(lockdep_report_count(), 1);
	assert_non_null(strstr(text(), "WARNING: bad unlock balance detected!"));
}

static void *exit_holding(void *arg)
{
	(void)arg;
	lockdep_set_task_name("leaker");
	take(A);
	take(B);
	return NULL;
}

static void test_thread_exit_with_lock_held(void **state)
{
	struct lockdep_stats st;
	pthread_t th;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, exit_holding, NULL), 0);
	pthread_join(th, NULL);
	lockdep_get_stats(&st);
	assert_int_equal(st.by_kind[LDR_HELD_AT_EXIT], 1);
	assert_non_null(strstr(text(), "leaker/"));
	assert_non_null(strstr(text(), "2 locks held by leaker/"));
}

static void test_disable_enable(void **state)
{
	(void)state;
	take(A);
	lockdep_set_enabled(false);
	assert_false(lockdep_enabled());
	assert_int_equal(lock_is_held_type(A, -1), LOCK_STATE_UNKNOWN);
	take_pair(B, A);	/* not validated */
	lockdep_set_enabled(true);
	drop(A);		/* taken in an older epoch: no complaint */
	assert_int_equal(lockdep_depth(), 0);
	take_pair(B, A);
	assert_int_equal(lockdep_report_count(), 0);
	assert_int_equal(lock_is_held_type(A, -1), LOCK_STATE_NOT_HELD);
}

static void test_graph_outputs(void **state)
{
	char *g = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	take_pair(A, B);
	f = open_memstream(&g, &len);
	lockdep_graph_print(f);
	lockdep_graph_write_dot(f);
	fclose(f);
	assert_non_null(strstr(g, "  -> B [EN]"));
	assert_non_null(strstr(g, "digraph observed_locks"));
	assert_non_null(strstr(g, "\"A\" -> \"B\""));
	free(g);
}

/* Many threads validating overlapping chains at once (TSan food). */
static void *hammer(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg;

	for (int i = 0; i < 2000; i++) {
		int a = (int)(rand_r(&seed) % NR_MAPS);
		int b = (int)(rand_r(&seed) % NR_MAPS);

		if (a == b)
			continue;
		if (a > b) {
			int t = a;

			a = b;
			b = t;
		}
		take(&m[a]);
		take(&m[b]);
		if (lock_is_held_type(&m[a], 0) != LOCK_STATE_HELD)
			abort();
		drop(&m[b]);
		drop(&m[a]);
	}
	return NULL;
}

static void test_concurrent_validation(void **state)
{
	pthread_t th[4];
	struct lockdep_stats st;

	(void)state;
	for (uintptr_t i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, (void *)(i + 1)), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	lockdep_get_stats(&st);
	assert_int_equal(st.errors, 0);
	assert_true(st.chain_hits > 0);
	assert_true(st.dependencies > 0 && st.dependencies <= NR_MAPS * (NR_MAPS - 1) / 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_counters_and_dedupe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undocumented_is_warning, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_class_skips_order_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bailout_longjmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread_exit_with_lock_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disable_enable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_graph_outputs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_validation, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
