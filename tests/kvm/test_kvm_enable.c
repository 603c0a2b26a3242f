// SPDX-License-Identifier: MIT
/*
 * Hardware enabling (kvm-brief.md section 7, Appendix B invariant 14):
 * kvm_usage_count under kvm_usage_lock, per-CPU enabled flags following CPU
 * hotplug and suspend/resume, and a racy create/destroy run like KVM's
 * hardware_disable_test: 512 VM create/destroy cycles across threads while
 * host CPUs go offline and online and cpufreq notifications walk vm_list.
 * At the end the count is 0 and no CPU is left enabled.
 */
#include <errno.h>
#include <stdlib.h>

#include "kvm_test.h"

static unsigned int online_cpus_enabled_ok(void)
{
	/* Every online CPU enabled, no offline one: returns the mismatches. */
	unsigned int bad = 0, enabled = 0;

	for (unsigned int cpu = 0; cpu < host_nr_cpus(); cpu++)
		enabled += host_cpu_online(cpu);
	if (kvm_nr_cpus_enabled() != enabled)
		bad++;
	return bad;
}

static void test_enable_disable(void **state)
{
	struct kvm *a, *b;

	(void)state;
	assert_int_equal(kvm_usage_count_read(), 0);
	assert_int_equal(kvm_nr_cpus_enabled(), 0);
	a = kt_create_vm();
	assert_int_equal(kvm_usage_count_read(), 1);
	assert_int_equal(online_cpus_enabled_ok(), 0);
	b = kt_create_vm();
	assert_int_equal(kvm_usage_count_read(), 2);

	/* A CPU going offline is disabled, coming back it is enabled. */
	assert_int_equal(host_cpu_down(2), 0);
	assert_int_equal(kvm_nr_cpus_enabled(), KT_CPUS - 1);
	assert_int_equal(online_cpus_enabled_ok(), 0);
	assert_int_equal(host_cpu_up(2), 0);
	assert_int_equal(kvm_nr_cpus_enabled(), KT_CPUS);

	/* Suspend/resume: disabled across, enabled again after. */
	assert_int_equal(host_suspend_resume(), 0);
	assert_int_equal(online_cpus_enabled_ok(), 0);

	ukvm_destroy_vm(a);
	assert_int_equal(kvm_usage_count_read(), 1);
	assert_int_equal(kvm_nr_cpus_enabled(), KT_CPUS);
	ukvm_destroy_vm(b);
	assert_int_equal(kvm_usage_count_read(), 0);
	assert_int_equal(kvm_nr_cpus_enabled(), 0);

	/* With no user, CPU hotplug leaves every CPU disabled. */
	assert_int_equal(host_cpu_down(1), 0);
	assert_int_equal(host_cpu_up(1), 0);
	assert_int_equal(kvm_nr_cpus_enabled(), 0);
	assert_nothing_reported();
}

struct churn {
	_Atomic bool stop;
	_Atomic unsigned long cycles, hotplugs;
};

static void *create_destroy_fn(void *arg)
{
	struct churn *c = arg;

	for (int i = 0; i < 128; i++) {
		struct kvm *kvm = NULL;
		struct kvm_vcpu *vcpu;

		T_CHECK(ukvm_create_vm(NULL, &kvm) == 0);
		if (!kvm)
			continue;
		/* While we hold a VM, the count is at least 1. */
		T_CHECK(kvm_usage_count_read() >= 1);
		T_CHECK(ukvm_create_vcpu(kvm, (unsigned long)i % 4, &vcpu) == 0);
		ukvm_destroy_vm(kvm);
		atomic_fetch_add(&c->cycles, 1);
	}
	return NULL;
}

static void *hotplug_fn(void *arg)
{
	struct churn *c = arg;
	unsigned int seed = 99;

	while (!atomic_load(&c->stop)) {
		unsigned int cpu = 1 + (unsigned int)rand_r(&seed) % (KT_CPUS - 1);

		if (host_cpu_online(cpu))
			T_CHECK(host_cpu_down(cpu) == 0);
		else
			T_CHECK(host_cpu_up(cpu) == 0);
		host_cpufreq_transition(0);
		if (rand_r(&seed) % 16 == 0)
			T_CHECK(host_suspend_resume() == 0);
		atomic_fetch_add(&c->hotplugs, 1);
	}
	/* Leave every CPU online. */
	for (unsigned int cpu = 0; cpu < KT_CPUS; cpu++)
		if (!host_cpu_online(cpu))
			T_CHECK(host_cpu_up(cpu) == 0);
	return NULL;
}

static void test_racy_create_destroy(void **state)
{
	struct churn c = { 0 };
	pthread_t workers[4], hp;

	(void)state;
	hp = start_thread("cpu-hotplug", hotplug_fn, &c);
	for (int i = 0; i < 4; i++)
		workers[i] = start_thread("vm-churn", create_destroy_fn, &c);
	for (int i = 0; i < 4; i++)
		join_thread(workers[i]);
	atomic_store(&c.stop, true);
	join_thread(hp);

	assert_int_equal(atomic_load(&c.cycles), 512);
	assert_int_equal(kvm_usage_count_read(), 0);
	assert_int_equal(kvm_nr_cpus_enabled(), 0);
	assert_int_equal(kvm_vm_count_read(), 0);
	assert_nothing_reported();
}

/* The vm_list walkers see every live VM, without kvm_lock. */
static void test_vm_list_walkers(void **state)
{
	struct kvm *vms[3];
	struct kvm_vcpu *vcpu;

	(void)state;
	for (int i = 0; i < 3; i++)
		vms[i] = kt_create_vm();
	assert_int_equal(ukvm_param_write_all_vms(), 3);

	assert_int_equal(ukvm_create_vcpu(vms[1], 0, &vcpu), 0);
	atomic_store(&vcpu->cpu, 2);
	assert_false(kvm_test_request(KVM_REQ_CLOCK_UPDATE, vcpu));
	host_cpufreq_transition(2);
	assert_true(kvm_test_request(KVM_REQ_CLOCK_UPDATE, vcpu));

	/* A CPU coming online notifies too, under cpu_hotplug_lock. */
	kvm_clear_request(KVM_REQ_CLOCK_UPDATE, vcpu);
	assert_int_equal(host_cpu_down(2), 0);
	assert_int_equal(host_cpu_up(2), 0);
	assert_true(kvm_test_request(KVM_REQ_CLOCK_UPDATE, vcpu));

	for (int i = 0; i < 3; i++)
		ukvm_destroy_vm(vms[i]);
	assert_int_equal(ukvm_param_write_all_vms(), 0);
	assert_nothing_reported();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enable_disable),
		cmocka_unit_test(test_vm_list_walkers),
		cmocka_unit_test(test_racy_create_destroy),
	};

	return cmocka_run_group_tests_name("kvm_enable", tests,
					   kt_group_setup, kt_group_teardown);
}
