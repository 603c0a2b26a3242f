// SPDX-License-Identifier: MIT
/*
 * Every lock class compiled into the library is declared in the documented
 * order, with the type it is compiled as.  This test links the whole
 * library, so its "ukvm_lockdep_keys" section holds every init site of
 * every layer: a new lock class that lock-order.txt does not know fails
 * here, which is what keeps the document and the code in step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lockdep/lockdep.h"
#include "lockdep/order.h"

static void count(const struct lock_class_key *key, void *arg)
{
	(void)key;
	(*(int *)arg)++;
}

static void test_static_keys_are_enumerated(void **state)
{
	int n = 0;

	(void)state;
	lockdep_for_each_static_key(count, &n);
	/* cpu_hotplug_lock at least is defined by src/sync. */
	assert_true(n >= 1);
}

static void test_every_class_is_documented(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int problems;

	(void)state;
	assert_int_equal(lockdep_order_load_builtin(), 0);
	problems = lockdep_order_check(f, true);
	fclose(f);
	if (problems)
		print_error("lock-order.txt is out of date:\n%s", buf);
	assert_int_equal(problems, 0);
	free(buf);
}

static void test_legacy_variant_too(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int problems;

	(void)state;
	assert_int_equal(lockdep_order_set_variant("legacy"), 0);
	f = open_memstream(&buf, &len);
	problems = lockdep_order_check(f, true);
	fclose(f);
	if (problems)
		print_error("%s", buf);
	assert_int_equal(problems, 0);
	free(buf);
	assert_int_equal(lockdep_order_set_variant("current"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_static_keys_are_enumerated),
		cmocka_unit_test(test_every_class_is_documented),
		cmocka_unit_test(test_legacy_variant_too),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
