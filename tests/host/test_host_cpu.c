// SPDX-License-Identifier: MIT
/*
 * Simulated host CPUs: cpuhp states (setup, unwinding on failure, removal),
 * CPU down/up under cpu_hotplug_lock, the last CPU, syscore suspend/resume
 * order, the cpufreq transition chain on CPU online, and static keys.
 */
#include "host_test.h"

static _Atomic unsigned int started[HOST_MAX_CPUS], stopped[HOST_MAX_CPUS];
static _Atomic int fail_on_cpu = -1;
static _Atomic int order_log[16];
static _Atomic int order_len;

static void reset_counts(void)
{
	for (int i = 0; i < HOST_MAX_CPUS; i++) {
		atomic_store(&started[i], 0);
		atomic_store(&stopped[i], 0);
	}
	atomic_store(&fail_on_cpu, -1);
	atomic_store(&order_len, 0);
}

static void log_order(int what)
{
	int i = atomic_fetch_add(&order_len, 1);

	if (i < 16)
		atomic_store(&order_log[i], what);
}

static int startup_a(unsigned int cpu)
{
	lockdep_assert_cpus_held();
	if ((int)cpu == atomic_load(&fail_on_cpu))
		return -EIO;
	atomic_fetch_add(&started[cpu], 1);
	log_order(100 + (int)cpu);
	return 0;
}

static int teardown_a(unsigned int cpu)
{
	lockdep_assert_cpus_held();
	atomic_fetch_add(&stopped[cpu], 1);
	log_order(200 + (int)cpu);
	return 0;
}

static int startup_b(unsigned int cpu)
{
	lockdep_assert_cpus_held();
	log_order(300 + (int)cpu);
	return 0;
}

static int teardown_b(unsigned int cpu)
{
	lockdep_assert_cpus_held();
	log_order(400 + (int)cpu);
	return 0;
}

static void test_cpuhp_setup_remove(void **state)
{
	int st;

	(void)state;
	reset_counts();
	st = cpuhp_setup_state("test/a:online", startup_a, teardown_a);
	assert_true(st >= 0);
	for (unsigned int c = 0; c < TEST_CPUS; c++)
		assert_int_equal(atomic_load(&started[c]), 1);
	cpuhp_remove_state(st);
	for (unsigned int c = 0; c < TEST_CPUS; c++)
		assert_int_equal(atomic_load(&stopped[c]), 1);

	/* A startup failing on CPU 2 tears down CPUs 0 and 1 and fails. */
	reset_counts();
	atomic_store(&fail_on_cpu, 2);
	assert_int_equal(cpuhp_setup_state("test/a:online", startup_a, teardown_a), -EIO);
	assert_int_equal(atomic_load(&started[0]), 1);
	assert_int_equal(atomic_load(&started[1]), 1);
	assert_int_equal(atomic_load(&started[3]), 0);
	assert_int_equal(atomic_load(&stopped[0]), 1);
	assert_int_equal(atomic_load(&stopped[1]), 1);
	assert_int_equal(atomic_load(&stopped[2]), 0);
	/* Nothing stays registered: a CPU going down calls nothing. */
	reset_counts();
	assert_int_equal(host_cpu_down(3), 0);
	assert_int_equal(atomic_load(&stopped[3]), 0);
	assert_int_equal(host_cpu_up(3), 0);
	assert_int_equal(atomic_load(&started[3]), 0);
}

static void test_cpu_down_up(void **state)
{
	int a, b;

	(void)state;
	reset_counts();
	a = cpuhp_setup_state("test/a", startup_a, teardown_a);
	b = cpuhp_setup_state("test/b", startup_b, teardown_b);
	assert_true(a >= 0 && b >= 0 && a != b);

	/* Down: teardown in reverse state order, under cpus_write_lock. */
	atomic_store(&order_len, 0);
	assert_int_equal(host_cpu_down(1), 0);
	assert_false(host_cpu_online(1));
	assert_int_equal(host_num_online_cpus(), TEST_CPUS - 1);
	assert_int_equal(atomic_load(&order_len), 2);
	assert_int_equal(atomic_load(&order_log[0]), 401);
	assert_int_equal(atomic_load(&order_log[1]), 201);
	assert_int_equal(host_cpu_down(1), -EINVAL);

	/* Up: startup in state order. */
	atomic_store(&order_len, 0);
	assert_int_equal(host_cpu_up(1), 0);
	assert_true(host_cpu_online(1));
	assert_int_equal(atomic_load(&order_len), 2);
	assert_int_equal(atomic_load(&order_log[0]), 101);
	assert_int_equal(atomic_load(&order_log[1]), 301);
	assert_int_equal(host_cpu_up(1), -EINVAL);
	assert_int_equal(host_cpu_up(TEST_CPUS), -EINVAL);

	/* A failing startup aborts the online and unwinds the states done. */
	assert_int_equal(host_cpu_down(2), 0);
	atomic_store(&fail_on_cpu, 2);
	atomic_store(&order_len, 0);
	assert_int_equal(host_cpu_up(2), -EIO);
	assert_false(host_cpu_online(2));
	assert_int_equal(atomic_load(&order_len), 0);	/* a was first: nothing to undo */
	atomic_store(&fail_on_cpu, -1);
	assert_int_equal(host_cpu_up(2), 0);

	/* The last online CPU cannot go. */
	for (unsigned int c = 1; c < TEST_CPUS; c++)
		assert_int_equal(host_cpu_down(c), 0);
	assert_int_equal(host_num_online_cpus(), 1);
	assert_int_equal(host_cpu_down(0), -EBUSY);
	assert_true(host_cpu_online(0));
	for (unsigned int c = 1; c < TEST_CPUS; c++)
		assert_int_equal(host_cpu_up(c), 0);

	/* Removal tears down on the online CPUs only. */
	assert_int_equal(host_cpu_down(3), 0);
	reset_counts();
	cpuhp_remove_state(a);
	cpuhp_remove_state(b);
	assert_int_equal(atomic_load(&stopped[0]), 1);
	assert_int_equal(atomic_load(&stopped[3]), 0);
	assert_int_equal(host_cpu_up(3), 0);
}

static int suspend_a(void) { log_order(1); return 0; }
static void resume_a(void) { log_order(2); }
static int suspend_b(void) { log_order(3); return 0; }
static void resume_b(void) { log_order(4); }
static int suspend_fail(void) { log_order(5); return -EBUSY; }

static void test_syscore(void **state)
{
	struct syscore_ops a = { .suspend = suspend_a, .resume = resume_a };
	struct syscore_ops b = { .suspend = suspend_b, .resume = resume_b };
	struct syscore_ops f = { .suspend = suspend_fail };

	(void)state;
	reset_counts();
	register_syscore_ops(&a);
	register_syscore_ops(&b);
	assert_int_equal(host_suspend_resume(), 0);
	/* Suspend in reverse registration order, resume in order. */
	assert_int_equal(atomic_load(&order_len), 4);
	assert_int_equal(atomic_load(&order_log[0]), 3);
	assert_int_equal(atomic_load(&order_log[1]), 1);
	assert_int_equal(atomic_load(&order_log[2]), 2);
	assert_int_equal(atomic_load(&order_log[3]), 4);

	/* A failing suspend resumes those already suspended. */
	unregister_syscore_ops(&b);
	register_syscore_ops(&f);
	register_syscore_ops(&b);
	atomic_store(&order_len, 0);
	assert_int_equal(host_suspend_resume(), -EBUSY);
	assert_int_equal(atomic_load(&order_len), 3);
	assert_int_equal(atomic_load(&order_log[0]), 3);
	assert_int_equal(atomic_load(&order_log[1]), 5);
	assert_int_equal(atomic_load(&order_log[2]), 4);
	unregister_syscore_ops(&a);
	unregister_syscore_ops(&b);
	unregister_syscore_ops(&f);
}

static _Atomic int freq_calls, freq_post, freq_cpu = -1;

static int freq_notifier(struct notifier_block *nb, unsigned long ev, void *data)
{
	struct cpufreq_freqs *f = data;

	(void)nb;
	/* Called under cpu_hotplug_lock (read for a transition, write on online). */
	lockdep_assert_cpus_held();
	atomic_fetch_add(&freq_calls, 1);
	if (ev == CPUFREQ_POSTCHANGE)
		atomic_fetch_add(&freq_post, 1);
	atomic_store(&freq_cpu, (int)f->cpu);
	T_CHECK(f->old != f->new);
	return 0;
}

static void test_cpufreq(void **state)
{
	struct notifier_block nb = { .notifier_call = freq_notifier };
	struct notifier_block nb2 = { .notifier_call = freq_notifier };

	(void)state;
	atomic_store(&freq_calls, 0);
	atomic_store(&freq_post, 0);
	cpufreq_register_transition_notifier(&nb);
	host_cpufreq_transition(2);
	assert_int_equal(atomic_load(&freq_calls), 2);
	assert_int_equal(atomic_load(&freq_post), 1);
	assert_int_equal(atomic_load(&freq_cpu), 2);

	/* A CPU coming online notifies (still under cpu_hotplug_lock). */
	assert_int_equal(host_cpu_down(3), 0);
	assert_int_equal(atomic_load(&freq_calls), 2);
	assert_int_equal(host_cpu_up(3), 0);
	assert_int_equal(atomic_load(&freq_calls), 4);
	assert_int_equal(atomic_load(&freq_cpu), 3);

	cpufreq_register_transition_notifier(&nb2);
	host_cpufreq_transition(0);
	assert_int_equal(atomic_load(&freq_calls), 8);
	cpufreq_unregister_transition_notifier(&nb);
	cpufreq_unregister_transition_notifier(&nb2);
	host_cpufreq_transition(0);
	assert_int_equal(atomic_load(&freq_calls), 8);
}

static void test_static_keys(void **state)
{
	struct static_key key = { 0 };

	(void)state;
	assert_false(static_key_enabled(&key));
	static_key_slow_inc(&key);
	static_key_slow_inc(&key);
	assert_true(static_key_enabled(&key));
	static_key_slow_dec(&key);
	assert_true(static_key_enabled(&key));
	cpus_read_lock();
	static_key_slow_dec_cpuslocked(&key);
	static_key_slow_inc_cpuslocked(&key);
	static_key_slow_dec_cpuslocked(&key);
	cpus_read_unlock();
	assert_false(static_key_enabled(&key));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_cpuhp_setup_remove),
		HOST_TEST(test_cpu_down_up),
		HOST_TEST(test_syscore),
		HOST_TEST(test_cpufreq),
		HOST_TEST(test_static_keys),
	};

	return cmocka_run_group_tests_name("host_cpu", tests, NULL, NULL);
}
