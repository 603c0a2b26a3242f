// SPDX-License-Identifier: MIT
/*
 * The documented lock order: the built-in lock-order.txt parses and is
 * consistent, malformed texts are rejected with file:line messages, and the
 * legacy and current variants differ exactly where the file says they do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lockdep/order.h"

#define BUILTIN "src/lockdep/lock-order.txt"

static int load_builtin(const char *variant)
{
	char err[2048];
	int ret = lockdep_order_load_text(ukvm_lock_order_text, BUILTIN, variant,
					  err, sizeof(err));

	if (ret)
		print_error("%s", err);
	return ret;
}

/* Run lockdep_order_check() and return its output (caller frees). */
static char *check_output(int *problems, bool keys)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	*problems = lockdep_order_check(f, keys);
	fclose(f);
	return buf;
}

static void test_builtin_parses_and_is_consistent(void **state)
{
	int problems;
	char *out;

	(void)state;
	assert_int_equal(load_builtin("current"), 0);
	out = check_output(&problems, false);
	if (problems)
		print_error("%s", out);
	assert_int_equal(problems, 0);
	free(out);
	assert_true(lockdep_order_nr_classes() >= 25);
	assert_true(lockdep_order_nr_rules() >= 40);
	assert_true(lockdep_order_has_class("&kvm->slots_lock"));
	assert_true(lockdep_order_has_class("cpu_hotplug_lock"));
	assert_false(lockdep_order_has_class("&kvm->no_such_lock"));
	/* "Everything else is a leaf." */
	assert_true(lockdep_order_is_leaf("&kvm->arch.tdp_mmu_pages_lock"));
	assert_false(lockdep_order_is_leaf("&kvm->slots_lock"));

	assert_int_equal(load_builtin("legacy"), 0);
	out = check_output(&problems, false);
	if (problems)
		print_error("%s", out);
	assert_int_equal(problems, 0);
	free(out);
}

struct bad_text {
	const char *text;
	const char *expect;	/* substring of the error output */
};

static void test_parse_errors_name_the_line(void **state)
{
	static const struct bad_text bad[] = {
		{ "class A mutex\nclass B frob\n", "t:2: unknown lock type 'frob'" },
		{ "class A mutex\n\norder A => A:q\n", "t:3: unknown mode suffix ':q'" },
		{ "# comment\norder A\n", "t:2: 'order' needs 'OUTER => INNER'" },
		{ "class A mutex\nclass A mutex\n", "t:2: class 'A' already declared at line 1" },
		{ "class A mutex protects=\"no end\n", "t:1: unterminated quoted value" },
		{ "frob A\n", "t:1: unknown statement 'frob'" },
		{ "class S srcu\nclass B mutex\norder S:sync => B\n", "t:3: 'S:sync' on the left" },
		{ "class A mutex\nclass B mutex\norder A => B when=never\n", "t:3: when=never" },
		{ "class A mutex scope=galaxy\n", "t:1: unknown scope 'galaxy'" },
		{ "class A mutex colour=\"red\"\n", "t:1: unknown class attribute 'colour'" },
		{ "class A mutex\nclass B mutex\norder A, => B\n", "t:3: list ends with ','" },
		{ "class A mutex\nclass B mutex\norder A,, B => B\n", "t:3: empty name in list" },
		{ "class A\n", "t:1: 'class' needs a name and a type" },
	};
	char err[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = lockdep_order_load_text(bad[i].text, "t", "current",
						  err, sizeof(err));

		if (ret == 0 || !strstr(err, bad[i].expect))
			print_error("text %zu: got '%s', want '%s'\n", i, err,
				    bad[i].expect);
		assert_int_not_equal(ret, 0);
		assert_non_null(strstr(err, bad[i].expect));
	}
	/* Every problem is reported, not only the first. */
	assert_int_not_equal(lockdep_order_load_text("frob\nclass X blah\nclass Y mutex\n",
						     "t", NULL, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "t:1:"));
	assert_non_null(strstr(err, "t:2:"));
	assert_null(strstr(err, "t:3:"));
	/* A failed load keeps the previous order. */
	assert_int_equal(load_builtin("current"), 0);
	assert_int_not_equal(lockdep_order_load_text("frob\n", "t", NULL, err,
						     sizeof(err)), 0);
	assert_true(lockdep_order_has_class("&kvm->slots_lock"));
	assert_int_not_equal(lockdep_order_load_text("", "t", "sideways", err,
						     sizeof(err)), 0);
}

static void test_check_finds_problems(void **state)
{
	int problems;
	char *out;
	char err[512];

	(void)state;
	/* Undeclared names load, and the check names the line. */
	assert_int_equal(lockdep_order_load_text("class A mutex\n\norder A => B\n",
						 "u", NULL, err, sizeof(err)), 0);
	out = check_output(&problems, false);
	assert_int_equal(problems, 1);
	assert_non_null(strstr(out, "u:3: rule names 'B'"));
	free(out);

	/* A plain two-lock cycle. */
	assert_int_equal(lockdep_order_load_text(
		"class A mutex\nclass B mutex\norder A => B\norder B => A\n",
		"c", NULL, err, sizeof(err)), 0);
	out = check_output(&problems, false);
	assert_int_equal(problems, 1);
	assert_non_null(strstr(out, "deadlock cycle"));
	free(out);

	/* Recursive readers in both directions: not a deadlock. */
	assert_int_equal(lockdep_order_load_text(
		"class S srcu\nclass T srcu\norder S:R => T:R\norder T:R => S:R\n",
		"r", NULL, err, sizeof(err)), 0);
	out = check_output(&problems, false);
	assert_int_equal(problems, 0);
	free(out);

	/* Fair rwsem readers are not recursive: r/r cycles deadlock. */
	assert_int_equal(lockdep_order_load_text(
		"class X rwsem\nclass M mutex\norder X:r => M\norder M => X:r\n",
		"w", NULL, err, sizeof(err)), 0);
	out = check_output(&problems, false);
	assert_int_equal(problems, 1);
	free(out);

	/* Leaf declared but given a rule; a mode that does not fit the type. */
	assert_int_equal(lockdep_order_load_text(
		"class L mutex leaf\nclass M mutex\norder L => M:r\n",
		"l", NULL, err, sizeof(err)), 0);
	out = check_output(&problems, false);
	assert_int_equal(problems, 2);
	assert_non_null(strstr(out, "'L' is declared leaf"));
	assert_non_null(strstr(out, "mode ':r' does not fit 'M'"));
	free(out);
	assert_int_equal(load_builtin("current"), 0);
}

/* Commit 44d17459: the variants differ in kvm_usage_lock vs cpu_hotplug_lock. */
static void test_variants_differ_as_documented(void **state)
{
	(void)state;
	assert_int_equal(load_builtin("current"), 0);
	assert_string_equal(lockdep_order_variant(), "current");
	assert_true(lockdep_order_has_rule("kvm_usage_lock", LOM_EXCL,
					   "cpu_hotplug_lock", LOM_READ));
	assert_false(lockdep_order_has_rule("cpu_hotplug_lock", LOM_READ,
					    "kvm_usage_lock", LOM_EXCL));
	assert_int_equal(lockdep_order_classify("kvm_usage_lock", LOM_EXCL,
				"cpu_hotplug_lock", LOM_READ), LOV_DOCUMENTED);
	assert_int_equal(lockdep_order_classify("cpu_hotplug_lock", LOM_READ,
				"kvm_usage_lock", LOM_EXCL), LOV_VIOLATION);

	assert_int_equal(lockdep_order_set_variant("legacy"), 0);
	assert_string_equal(lockdep_order_variant(), "legacy");
	assert_false(lockdep_order_has_rule("kvm_usage_lock", LOM_EXCL,
					    "cpu_hotplug_lock", LOM_READ));
	assert_true(lockdep_order_has_rule("cpu_hotplug_lock", LOM_READ,
					   "kvm_usage_lock", LOM_EXCL));
	assert_int_equal(lockdep_order_classify("cpu_hotplug_lock", LOM_READ,
				"kvm_usage_lock", LOM_EXCL), LOV_DOCUMENTED);
	/* In legacy, kvm_usage_lock has no rule out of it: a leaf. */
	assert_true(lockdep_order_is_leaf("kvm_usage_lock"));
	assert_int_equal(lockdep_order_classify("kvm_usage_lock", LOM_EXCL,
				"cpu_hotplug_lock", LOM_READ), LOV_VIOLATION);
	/* Legacy cpuhp callbacks take kvm_lock under the state mutex. */
	assert_int_equal(lockdep_order_classify("cpuhp_state_mutex", LOM_EXCL,
				"kvm_lock", LOM_EXCL), LOV_DOCUMENTED);
	assert_int_not_equal(lockdep_order_set_variant("future"), 0);
	assert_int_equal(lockdep_order_set_variant("current"), 0);
	/* In the current design no callback takes kvm_lock. */
	assert_int_equal(lockdep_order_classify("cpuhp_state_mutex", LOM_EXCL,
				"kvm_lock", LOM_EXCL), LOV_VIOLATION);
}

/* The locking.rst rules, as verdicts on observed dependencies. */
static void test_classify_locking_rst(void **state)
{
	(void)state;
	assert_int_equal(load_builtin("current"), 0);
	assert_int_equal(lockdep_order_classify("&vcpu->mutex", LOM_EXCL,
				"&kvm->srcu", LOM_RREAD), LOV_DOCUMENTED);
	/* Through kvm->srcu: vcpu->mutex => srcu:R => mmu_lock. */
	assert_int_equal(lockdep_order_classify("&vcpu->mutex", LOM_EXCL,
				"&kvm->mmu_lock", LOM_READ), LOV_DOCUMENTED);
	/* synchronize_srcu() under slots_lock: no slots_lock in a reader. */
	assert_int_equal(lockdep_order_classify("&kvm->srcu", LOM_RREAD,
				"&kvm->slots_lock", LOM_EXCL), LOV_VIOLATION);
	/* slots_arch_lock is dropped before synchronize_srcu(): legal. */
	assert_int_equal(lockdep_order_classify("&kvm->srcu", LOM_RREAD,
				"&kvm->slots_arch_lock", LOM_EXCL), LOV_DOCUMENTED);
	/* A chain never continues out of a :sync target. */
	assert_int_not_equal(lockdep_order_classify("&kvm->slots_lock", LOM_EXCL,
				"&mm->mmap_lock", LOM_READ), LOV_DOCUMENTED);
	/* kvm_lock is a leaf: the 44d17459 hazard of slots_lock under it. */
	assert_int_equal(lockdep_order_classify("kvm_lock", LOM_EXCL,
				"&kvm->slots_lock", LOM_EXCL), LOV_VIOLATION);
	assert_int_equal(lockdep_order_classify("&kvm->slots_lock", LOM_EXCL,
				"nobody", LOM_EXCL), LOV_UNKNOWN);
	/* MMU notifiers must not take slots_lock (waited for under it). */
	assert_int_equal(lockdep_order_classify("&kvm->mn_active_invalidate_count",
				LOM_RREAD, "&kvm->slots_lock", LOM_EXCL),
			 LOV_VIOLATION);
}

static void test_outputs(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(load_builtin("current"), 0);
	f = open_memstream(&buf, &len);
	lockdep_order_print_table(f);
	fclose(f);
	assert_non_null(strstr(buf, "1. Global KVM locks"));
	assert_non_null(strstr(buf, "&kvm->slots_lock => &kvm->srcu:sync"));
	free(buf);

	buf = NULL;
	f = open_memstream(&buf, &len);
	lockdep_order_write_dot(f);
	fclose(f);
	assert_non_null(strstr(buf, "digraph lock_order {"));
	assert_non_null(strstr(buf, "subgraph cluster_vm"));
	assert_non_null(strstr(buf, "\"&vcpu->mutex\" -> \"&kvm->srcu\""));
	assert_non_null(strstr(buf, "style=dashed"));
	free(buf);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/ukvm-order-XXXXXX", err[512];
	int fd = mkstemp(path);
	static const char text[] = "class A mutex\nclass B mutex\norder A => B\n";

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	assert_int_equal(lockdep_order_load_file(path, "current", err, sizeof(err)), 0);
	assert_string_equal(lockdep_order_origin(), path);
	assert_int_equal(lockdep_order_nr_classes(), 2);
	unlink(path);
	assert_int_not_equal(lockdep_order_load_file(path, "current", err,
						     sizeof(err)), 0);
	assert_non_null(strstr(err, path));
	assert_int_equal(load_builtin("current"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_parses_and_is_consistent),
		cmocka_unit_test(test_parse_errors_name_the_line),
		cmocka_unit_test(test_check_finds_problems),
		cmocka_unit_test(test_variants_differ_as_documented),
		cmocka_unit_test(test_classify_locking_rst),
		cmocka_unit_test(test_outputs),
		cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
