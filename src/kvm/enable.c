// SPDX-License-Identifier: MIT
/*
 * Hardware virtualization enabling (kvm-brief.md section 7).
 *
 * Current design (44d17459 + 9a798b13): kvm_usage_count under
 * kvm_usage_lock; the 0 -> 1 transition registers a CPU-hotplug state whose
 * callbacks enable each online CPU (cpuhp_setup_state() takes
 * cpus_read_lock() inside kvm_usage_lock), 1 -> 0 removes it.  The per-CPU
 * callbacks take no KVM lock.
 *
 * Legacy design (0bf50497, kept for `ukvm race usage-lock-deadlock`): the
 * count lives under kvm_lock, enabling runs under cpus_read_lock() +
 * kvm_lock, and the permanently registered hotplug callbacks take kvm_lock
 * under cpu_hotplug_lock -- the edge of the deadlock locking.rst warns about.
 */
#include <errno.h>

#include "kvm/kvm_internal.h"
#include "sync/bug.h"
#include "sync/race.h"
#include "ukvm/ukvm.h"

static DEFINE_MUTEX(kvm_usage_lock);
static _Atomic int kvm_usage_count;	/* kvm_usage_lock (legacy: kvm_lock) */
static _Atomic bool virtualization_enabled[HOST_MAX_CPUS];
static int kvm_online_state = -1;
static bool legacy_usage_locking;	/* set before kvm_init() */

bool kvm_legacy_usage_locking(void)
{
	return legacy_usage_locking;
}

void ukvm_set_legacy_usage_locking(bool on)
{
	legacy_usage_locking = on;
}

int kvm_usage_count_read(void)
{
	return atomic_load(&kvm_usage_count);
}

unsigned int kvm_nr_cpus_enabled(void)
{
	unsigned int n = 0;

	for (unsigned int cpu = 0; cpu < HOST_MAX_CPUS; cpu++)
		n += atomic_load(&virtualization_enabled[cpu]);
	return n;
}

/* Idempotent per CPU (Appendix B invariant 14). */
static int kvm_enable_virtualization_cpu(unsigned int cpu)
{
	int r = 0;

	if (atomic_load(&virtualization_enabled[cpu]))
		return 0;
	if (kvm_arch && kvm_arch->hardware_enable)
		r = kvm_arch->hardware_enable(cpu);
	if (!r)
		atomic_store(&virtualization_enabled[cpu], true);
	return r;
}

static void kvm_disable_virtualization_cpu(unsigned int cpu)
{
	if (!atomic_load(&virtualization_enabled[cpu]))
		return;
	if (kvm_arch && kvm_arch->hardware_disable)
		kvm_arch->hardware_disable(cpu);
	atomic_store(&virtualization_enabled[cpu], false);
}

static int kvm_online_cpu(unsigned int cpu)
{
	int r = 0;

	lockdep_assert_cpus_held();
	if (!legacy_usage_locking)
		return kvm_enable_virtualization_cpu(cpu);
	/* Legacy: kvm_lock taken under cpu_hotplug_lock. */
	mutex_lock(&kvm_lock);
	if (atomic_load(&kvm_usage_count))
		r = kvm_enable_virtualization_cpu(cpu);
	mutex_unlock(&kvm_lock);
	return r;
}

static int kvm_offline_cpu(unsigned int cpu)
{
	lockdep_assert_cpus_held();
	if (!legacy_usage_locking) {
		kvm_disable_virtualization_cpu(cpu);
		return 0;
	}
	mutex_lock(&kvm_lock);
	if (atomic_load(&kvm_usage_count))
		kvm_disable_virtualization_cpu(cpu);
	mutex_unlock(&kvm_lock);
	return 0;
}

/*
 * Suspend/resume run on one CPU with CPU hotplug blocked, so the count is
 * stable without the lock; a task holding the lock could not be frozen, so
 * assert it is not held.
 */
static void assert_usage_lock_not_held(void)
{
	if (legacy_usage_locking)
		lockdep_assert_not_held(&kvm_lock);
	else
		lockdep_assert_not_held(&kvm_usage_lock);
}

static int kvm_suspend(void)
{
	assert_usage_lock_not_held();
	if (atomic_load(&kvm_usage_count))
		kvm_disable_virtualization_cpu(0);
	return 0;
}

static void kvm_resume(void)
{
	assert_usage_lock_not_held();
	if (atomic_load(&kvm_usage_count))
		UKVM_WARN_ON(kvm_enable_virtualization_cpu(0));
}

static struct syscore_ops kvm_syscore_ops = {
	.suspend = kvm_suspend,
	.resume = kvm_resume,
};

static int legacy_enable_all(void)
{
	int r = 0;

	cpus_read_lock();
	mutex_lock(&kvm_lock);
	RACE_POINT(ENABLE_LOCKED);
	if (atomic_fetch_add(&kvm_usage_count, 1) == 0) {
		for (unsigned int cpu = 0; cpu < host_nr_cpus() && !r; cpu++)
			if (host_cpu_online(cpu))
				r = kvm_enable_virtualization_cpu(cpu);
		if (r) {
			for (unsigned int cpu = 0; cpu < host_nr_cpus(); cpu++)
				kvm_disable_virtualization_cpu(cpu);
			atomic_fetch_sub(&kvm_usage_count, 1);
			r = -EBUSY;
		}
	}
	mutex_unlock(&kvm_lock);
	cpus_read_unlock();
	return r;
}

static void legacy_disable_all(void)
{
	cpus_read_lock();
	mutex_lock(&kvm_lock);
	if (atomic_fetch_sub(&kvm_usage_count, 1) == 1)
		for (unsigned int cpu = 0; cpu < host_nr_cpus(); cpu++)
			kvm_disable_virtualization_cpu(cpu);
	mutex_unlock(&kvm_lock);
	cpus_read_unlock();
}

int kvm_enable_virtualization(void)
{
	int r;

	if (legacy_usage_locking)
		return legacy_enable_all();

	mutex_lock(&kvm_usage_lock);
	RACE_POINT(ENABLE_LOCKED);
	if (atomic_fetch_add(&kvm_usage_count, 1)) {
		mutex_unlock(&kvm_usage_lock);
		return 0;
	}
	/* Runs kvm_online_cpu() on every online CPU, under cpus_read_lock(). */
	r = cpuhp_setup_state("kvm/cpu:online", kvm_online_cpu, kvm_offline_cpu);
	if (r < 0) {
		atomic_fetch_sub(&kvm_usage_count, 1);
		mutex_unlock(&kvm_usage_lock);
		return r;
	}
	kvm_online_state = r;
	register_syscore_ops(&kvm_syscore_ops);
	mutex_unlock(&kvm_usage_lock);
	return 0;
}

void kvm_disable_virtualization(void)
{
	if (legacy_usage_locking) {
		legacy_disable_all();
		return;
	}
	mutex_lock(&kvm_usage_lock);
	if (atomic_fetch_sub(&kvm_usage_count, 1) != 1) {
		mutex_unlock(&kvm_usage_lock);
		return;
	}
	unregister_syscore_ops(&kvm_syscore_ops);
	/* Runs kvm_offline_cpu() on every online CPU. */
	cpuhp_remove_state(kvm_online_state);
	kvm_online_state = -1;
	mutex_unlock(&kvm_usage_lock);
}

/* Legacy only: the hotplug callbacks live as long as the "module". */
int kvm_legacy_register_cpuhp(void)
{
	int r;

	if (!legacy_usage_locking)
		return 0;
	r = cpuhp_setup_state("kvm/cpu:online", kvm_online_cpu, kvm_offline_cpu);
	if (r < 0)
		return r;
	kvm_online_state = r;
	register_syscore_ops(&kvm_syscore_ops);
	return 0;
}

void kvm_legacy_unregister_cpuhp(void)
{
	if (!legacy_usage_locking || kvm_online_state < 0)
		return;
	unregister_syscore_ops(&kvm_syscore_ops);
	cpuhp_remove_state(kvm_online_state);
	kvm_online_state = -1;
}
