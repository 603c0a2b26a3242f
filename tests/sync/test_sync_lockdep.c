// SPDX-License-Identifier: MIT
/*
 * The primitives as the validator sees them: each reports its class (name,
 * wait types, type) and its acquisition mode, so that held-lock assertions
 * and the might-sleep / wait-context checks work.  Skipped when the
 * validator is compiled out (-Dlockdep=false).
 */
#include <stdlib.h>

#include "sync_test.h"

#if UKVM_LOCKDEP

static struct mutex m;
static spinlock_t sl;
static raw_spinlock_t rsl;
static rwlock_t rwl;
static struct rw_semaphore sem;
static struct srcu_struct ss;

static unsigned long errors(void)
{
	struct lockdep_stats st;

	lockdep_get_stats(&st);
	return st.errors;
}

static unsigned long reports_of(enum lockdep_report_kind kind)
{
	struct lockdep_stats st;

	lockdep_get_stats(&st);
	return st.by_kind[kind];
}

static int ld_setup(void **state)
{
	(void)state;
	lockdep_set_enabled(true);
	if (!getenv("SYNC_TEST_VERBOSE"))
		lockdep_set_report_mode(LOCKDEP_REPORT_QUIET);
	mutex_init(&m);
	spin_lock_init(&sl);
	raw_spin_lock_init(&rsl);
	rwlock_init(&rwl);
	init_rwsem(&sem);
	assert_int_equal(init_srcu_struct(&ss), 0);
	return 0;
}

static int ld_teardown(void **state)
{
	(void)state;
	assert_int_equal(cleanup_srcu_struct(&ss), 0);
	rwlock_destroy(&rwl);
	mutex_destroy(&m);
	lockdep_set_report_mode(LOCKDEP_REPORT_CONTINUE);
	return 0;
}

static void check_map(const struct lockdep_map *map, const char *name,
		      int inner, int outer, int type)
{
	assert_string_equal(map->name, name);
	assert_non_null(map->key);
	assert_string_equal(map->key->name, name);
	assert_int_equal(map->key->type, type);
	assert_int_equal(map->wait_inner, inner);
	assert_int_equal(map->wait_outer, outer);
	assert_int_equal(map->lock_type, type);
}

static void test_classes(void **state)
{
	(void)state;
	check_map(&m.dep_map, "&m", LD_WAIT_SLEEP, LD_WAIT_SLEEP, LD_TYPE_MUTEX);
	check_map(&sl.dep_map, "&sl", LD_WAIT_CONFIG, LD_WAIT_CONFIG,
		  LD_TYPE_SPINLOCK);
	check_map(&rsl.dep_map, "&rsl", LD_WAIT_SPIN, LD_WAIT_SPIN,
		  LD_TYPE_RAW_SPINLOCK);
	check_map(&rwl.dep_map, "&rwl", LD_WAIT_CONFIG, LD_WAIT_CONFIG,
		  LD_TYPE_RWLOCK);
	check_map(&sem.dep_map, "&sem", LD_WAIT_SLEEP, LD_WAIT_SLEEP,
		  LD_TYPE_RWSEM);
	check_map(&ss.dep_map, "&ss", LD_WAIT_SLEEP, LD_WAIT_FREE, LD_TYPE_SRCU);
	check_map(&cpu_hotplug_lock.dep_map, "cpu_hotplug_lock", LD_WAIT_SLEEP,
		  LD_WAIT_SLEEP, LD_TYPE_RWSEM);
	check_map(&rcu_lock_map, "rcu_read_lock", LD_WAIT_CONFIG, LD_WAIT_FREE,
		  LD_TYPE_RCU);
}

#define assert_held(map, type) \
	assert_int_equal(lock_is_held_type((map), (type)), LOCK_STATE_HELD)
#define assert_not_held(map, type) \
	assert_int_equal(lock_is_held_type((map), (type)), LOCK_STATE_NOT_HELD)

/* Exclusive holders: held for write, not for read. */
static void test_exclusive_modes(void **state)
{
	unsigned long e = errors();

	(void)state;
	mutex_lock(&m);
	lockdep_assert_held(&m);
	lockdep_assert_held_write(&m);
	assert_not_held(&m.dep_map, 1);
	spin_lock(&sl);
	raw_spin_lock(&rsl);
	assert_held(&sl.dep_map, 0);
	assert_held(&rsl.dep_map, 0);
	assert_int_equal(lockdep_depth(), 3);
	raw_spin_unlock(&rsl);
	spin_unlock(&sl);
	mutex_unlock(&m);
	lockdep_assert_not_held(&m);
	assert_not_held(&m.dep_map, -1);

	write_lock(&rwl);
	lockdep_assert_held_write(&rwl);
	write_unlock(&rwl);
	down_write(&sem);
	lockdep_assert_held_write(&sem);
	downgrade_write(&sem);
	lockdep_assert_held_read(&sem);
	assert_not_held(&sem.dep_map, 0);
	up_read(&sem);
	assert_int_equal(lockdep_depth(), 0);
	assert_int_equal(errors(), e);
}

/* Shared holders: held for read, not for write. */
static void test_shared_modes(void **state)
{
	unsigned long e = errors();
	int idx;

	(void)state;
	down_read(&sem);
	lockdep_assert_held_read(&sem);
	assert_not_held(&sem.dep_map, 0);
	up_read(&sem);
	cpus_read_lock();
	lockdep_assert_cpus_held();
	lockdep_assert_held_read(&cpu_hotplug_lock);
	cpus_read_unlock();
	read_lock(&rwl);
	lockdep_assert_held_read(&rwl);
	assert_false(cond_resched_rwlock_read(&rwl));
	read_unlock(&rwl);
	idx = srcu_read_lock(&ss);
	assert_true(srcu_read_lock_held(&ss));
	assert_held(&ss.dep_map, 1);
	srcu_read_unlock(&ss, idx);
	assert_false(srcu_read_lock_held(&ss));
	ukvm_rcu_read_lock();
	assert_true(ukvm_rcu_read_lock_held());
	ukvm_rcu_read_unlock();
	assert_false(ukvm_rcu_read_lock_held());
	assert_int_equal(lockdep_depth(), 0);
	assert_int_equal(errors(), e);
}

static void test_trylocks_are_held(void **state)
{
	unsigned long e = errors();

	(void)state;
	assert_true(mutex_trylock(&m));
	assert_true(spin_trylock(&sl));
	assert_true(read_trylock(&rwl));
	assert_true(down_read_trylock(&sem));
	assert_int_equal(lockdep_depth(), 4);
	lockdep_assert_held(&m);
	lockdep_assert_held(&sl);
	lockdep_assert_held_read(&rwl);
	lockdep_assert_held_read(&sem);
	up_read(&sem);
	read_unlock(&rwl);
	spin_unlock(&sl);
	mutex_unlock(&m);
	assert_true(down_write_trylock(&sem));
	assert_true(write_trylock(&rwl));
	lockdep_assert_held_write(&sem);
	lockdep_assert_held_write(&rwl);
	write_unlock(&rwl);
	up_write(&sem);
	assert_int_equal(errors(), e);
}

/* Grace periods are syncs: validated, never left on the held stack. */
static void test_sync_not_held(void **state)
{
	unsigned long e = errors();

	(void)state;
	mutex_lock(&m);
	synchronize_srcu(&ss);
	synchronize_srcu_expedited(&ss);
	assert_int_equal(lockdep_depth(), 1);
	mutex_unlock(&m);
	ukvm_synchronize_rcu();
	ukvm_rcu_barrier();
	assert_int_equal(lockdep_depth(), 0);
	assert_int_equal(errors(), e);
}

/* might_sleep() under a spinlock: exactly one LDR_MIGHT_SLEEP report. */
static void test_might_sleep_in_spinlock(void **state)
{
	unsigned long before = reports_of(LDR_MIGHT_SLEEP);

	(void)state;
	spin_lock(&sl);
	might_sleep();
	spin_unlock(&sl);
	assert_int_equal(reports_of(LDR_MIGHT_SLEEP), before + 1);
	/* And none outside of it. */
	might_sleep();
	assert_int_equal(reports_of(LDR_MIGHT_SLEEP), before + 1);
}

/* Sleeping primitives report inside atomic context (and under RCU). */
static void test_sleeping_in_atomic(void **state)
{
	unsigned long e = errors();
	int idx;

	(void)state;
	raw_spin_lock(&rsl);
	mutex_lock(&m);
	mutex_unlock(&m);
	raw_spin_unlock(&rsl);
	assert_true(errors() > e);

	e = errors();
	ukvm_rcu_read_lock();
	idx = srcu_read_lock(&ss);	/* wait-free to enter: legal */
	srcu_read_unlock(&ss, idx);
	ukvm_rcu_read_unlock();
	assert_int_equal(errors(), e);

	read_lock(&rwl);
	down_read(&sem);
	up_read(&sem);
	read_unlock(&rwl);
	assert_true(errors() > e);
	assert_int_equal(lockdep_depth(), 0);
}

#define LD_TEST(f) cmocka_unit_test(f)

#else /* !UKVM_LOCKDEP */

static void test_compiled_out(void **state)
{
	(void)state;
	skip();
}

#define ld_setup NULL
#define ld_teardown NULL

#endif /* UKVM_LOCKDEP */

int main(void)
{
	const struct CMUnitTest tests[] = {
#if UKVM_LOCKDEP
		LD_TEST(test_classes),
		LD_TEST(test_exclusive_modes),
		LD_TEST(test_shared_modes),
		LD_TEST(test_trylocks_are_held),
		LD_TEST(test_sync_not_held),
		LD_TEST(test_might_sleep_in_spinlock),
		LD_TEST(test_sleeping_in_atomic),
#else
		cmocka_unit_test(test_compiled_out),
#endif
	};
	int r;

	sync_test_group_setup(NULL);
	r = cmocka_run_group_tests_name("sync_lockdep", tests, ld_setup,
					ld_teardown);
	sync_test_group_teardown(NULL);
	return r;
}
