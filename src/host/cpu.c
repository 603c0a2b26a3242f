// SPDX-License-Identifier: MIT
/*
 * Simulated host CPUs: online/offline under cpu_hotplug_lock with cpuhp
 * state callbacks, syscore suspend/resume, and a cpufreq-like transition
 * notifier chain.
 *
 * Locking, as in the kernel:
 *  - cpu_online[] changes only under cpus_write_lock(); readers that need a
 *    stable answer hold cpus_read_lock().
 *  - The cpuhp state table changes under cpus_read_lock() + cpuhp_state_mutex;
 *    the hotplug path reads it under cpus_write_lock(), which excludes both.
 *  - A CPU coming online calls the cpufreq transition notifiers while still
 *    holding cpu_hotplug_lock (cpufreq's online path does): a notifier that
 *    takes a mutex which elsewhere is held around cpus_read_lock() closes a
 *    cycle -- the kvm_lock hazard of locking.rst.
 *  - Syscore callbacks run with hotplug blocked (cpus_write_lock()) and
 *    syscore_ops_lock held; like the kernel's (IRQs off, one CPU), they must
 *    not take other locks.
 *  - The cpufreq chain is an SRCU notifier chain: registration under
 *    cpufreq_notifier_lock, calls inside cpufreq_transition_srcu.
 *  - Static keys: the kernel patches code when a key flips, with
 *    cpus_read_lock() held and jump_label_mutex inside it.  There is no code
 *    to patch here, but the same locks are taken in the same order, because
 *    that is what puts static_key_slow_inc() inside kvm->srcu into the
 *    44d17459 deadlock (kvm->srcu -> cpu_hotplug_lock).
 */
#include <errno.h>
#include <unistd.h>

#include "host/host_internal.h"

static unsigned int nr_cpus;
static _Atomic bool cpu_online[HOST_MAX_CPUS];
static _Atomic unsigned int nr_online;
static _Atomic unsigned int cpu_khz[HOST_MAX_CPUS];

struct cpuhp_state {
	const char *name;
	int (*startup)(unsigned int cpu);
	int (*teardown)(unsigned int cpu);
	bool used;
};

DEFINE_MUTEX(cpuhp_state_mutex);
static struct cpuhp_state cpuhp_states[CPUHP_MAX_STATES];

DEFINE_MUTEX(syscore_ops_lock);
static CDS_LIST_HEAD(syscore_ops_list);

DEFINE_MUTEX(cpufreq_notifier_lock);
static struct srcu_struct cpufreq_transition_srcu;
/* Written under cpufreq_notifier_lock (release), walked under SRCU (acquire). */
static struct notifier_block *cpufreq_chain;

int host_cpus_init(unsigned int n)
{
	if (!n) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);

		n = c > 4 ? 4 : (c > 0 ? (unsigned int)c : 1);
	}
	if (n > HOST_MAX_CPUS)
		return -EINVAL;
	nr_cpus = n;
	for (unsigned int i = 0; i < HOST_MAX_CPUS; i++) {
		atomic_store(&cpu_online[i], i < n);
		atomic_store(&cpu_khz[i], 2000000);
	}
	atomic_store(&nr_online, n);
	return init_srcu_struct(&cpufreq_transition_srcu);
}

void host_cpus_exit(void)
{
	cleanup_srcu_struct(&cpufreq_transition_srcu);
	for (unsigned int i = 0; i < HOST_MAX_CPUS; i++)
		atomic_store(&cpu_online[i], false);
	atomic_store(&nr_online, 0);
	nr_cpus = 0;
}

unsigned int host_nr_cpus(void)
{
	return nr_cpus;
}

bool host_cpu_online(unsigned int cpu)
{
	return cpu < HOST_MAX_CPUS && atomic_load(&cpu_online[cpu]);
}

unsigned int host_num_online_cpus(void)
{
	return atomic_load(&nr_online);
}

/* ---------------------------------------------------------------------- */
/* cpuhp states                                                           */
/* ---------------------------------------------------------------------- */

int cpuhp_setup_state(const char *name, int (*startup)(unsigned int cpu),
		      int (*teardown)(unsigned int cpu))
{
	int state = -ENOSPC, ret = 0;
	unsigned int cpu;

	cpus_read_lock();
	mutex_lock(&cpuhp_state_mutex);
	for (int i = 0; i < CPUHP_MAX_STATES; i++) {
		if (!cpuhp_states[i].used) {
			state = i;
			break;
		}
	}
	if (state < 0)
		goto out;
	for (cpu = 0; cpu < nr_cpus && startup; cpu++) {
		if (!host_cpu_online(cpu))
			continue;
		ret = startup(cpu);
		if (ret)
			break;
	}
	if (ret) {
		/* Unwind on the CPUs that did start. */
		while (cpu-- > 0)
			if (host_cpu_online(cpu) && teardown)
				teardown(cpu);
		state = ret;
		goto out;
	}
	cpuhp_states[state] = (struct cpuhp_state){
		.name = name, .startup = startup, .teardown = teardown, .used = true,
	};
out:
	mutex_unlock(&cpuhp_state_mutex);
	cpus_read_unlock();
	return state;
}

void cpuhp_remove_state(int state)
{
	struct cpuhp_state *st;

	if (state < 0 || state >= CPUHP_MAX_STATES)
		return;
	cpus_read_lock();
	mutex_lock(&cpuhp_state_mutex);
	st = &cpuhp_states[state];
	if (!HOST_WARN_ON(!st->used)) {
		for (unsigned int cpu = 0; cpu < nr_cpus && st->teardown; cpu++)
			if (host_cpu_online(cpu))
				st->teardown(cpu);
		*st = (struct cpuhp_state){ 0 };
	}
	mutex_unlock(&cpuhp_state_mutex);
	cpus_read_unlock();
}

/* Tear states [0, upto) down on @cpu, last first. */
static void cpuhp_teardown_cpu(unsigned int cpu, int upto)
{
	lockdep_assert_held_write(&cpu_hotplug_lock);
	for (int i = upto - 1; i >= 0; i--)
		if (cpuhp_states[i].used && cpuhp_states[i].teardown)
			cpuhp_states[i].teardown(cpu);
}

static int cpuhp_startup_cpu(unsigned int cpu)
{
	lockdep_assert_held_write(&cpu_hotplug_lock);
	for (int i = 0; i < CPUHP_MAX_STATES; i++) {
		struct cpuhp_state *st = &cpuhp_states[i];
		int ret;

		if (!st->used || !st->startup)
			continue;
		ret = st->startup(cpu);
		if (ret) {
			cpuhp_teardown_cpu(cpu, i);
			return ret;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* cpufreq transition notifiers                                           */
/* ---------------------------------------------------------------------- */

/* Added at the tail: notifiers are called in registration order. */
void cpufreq_register_transition_notifier(struct notifier_block *nb)
{
	struct notifier_block **pp = &cpufreq_chain;

	mutex_lock(&cpufreq_notifier_lock);
	while (*pp)
		pp = &(*pp)->next;
	__atomic_store_n(&nb->next, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(pp, nb, __ATOMIC_RELEASE);
	mutex_unlock(&cpufreq_notifier_lock);
}

void cpufreq_unregister_transition_notifier(struct notifier_block *nb)
{
	struct notifier_block **pp = &cpufreq_chain;

	mutex_lock(&cpufreq_notifier_lock);
	while (*pp && *pp != nb)
		pp = &(*pp)->next;
	if (*pp)
		__atomic_store_n(pp, nb->next, __ATOMIC_RELEASE);
	mutex_unlock(&cpufreq_notifier_lock);
	/* No call of @nb is running after this. */
	synchronize_srcu(&cpufreq_transition_srcu);
}

/* A frequency transition of @cpu: PRECHANGE then POSTCHANGE. */
static void cpufreq_notify_transition(unsigned int cpu)
{
	struct cpufreq_freqs freqs;
	int idx;

	lockdep_assert_cpus_held();
	freqs.cpu = cpu;
	freqs.old = atomic_load(&cpu_khz[cpu]);
	freqs.new = freqs.old == 2000000 ? 3000000 : 2000000;
	for (unsigned long ev = CPUFREQ_PRECHANGE; ev <= CPUFREQ_POSTCHANGE; ev++) {
		struct notifier_block *nb;

		idx = srcu_read_lock(&cpufreq_transition_srcu);
		for (nb = __atomic_load_n(&cpufreq_chain, __ATOMIC_ACQUIRE);
		     nb; nb = __atomic_load_n(&nb->next, __ATOMIC_ACQUIRE))
			nb->notifier_call(nb, ev, &freqs);
		srcu_read_unlock(&cpufreq_transition_srcu, idx);
	}
	atomic_store(&cpu_khz[cpu], freqs.new);
}

void host_cpufreq_transition(unsigned int cpu)
{
	cpus_read_lock();
	if (cpu < nr_cpus && host_cpu_online(cpu))
		cpufreq_notify_transition(cpu);
	cpus_read_unlock();
}

/* ---------------------------------------------------------------------- */
/* CPU hotplug                                                            */
/* ---------------------------------------------------------------------- */

int host_cpu_down(unsigned int cpu)
{
	int ret = 0;

	if (cpu >= nr_cpus)
		return -EINVAL;
	cpus_write_lock();
	if (!host_cpu_online(cpu)) {
		ret = -EINVAL;
	} else if (host_num_online_cpus() == 1) {
		ret = -EBUSY;
	} else {
		cpuhp_teardown_cpu(cpu, CPUHP_MAX_STATES);
		atomic_store(&cpu_online[cpu], false);
		atomic_fetch_sub(&nr_online, 1);
	}
	cpus_write_unlock();
	return ret;
}

int host_cpu_up(unsigned int cpu)
{
	int ret;

	if (cpu >= nr_cpus)
		return -EINVAL;
	cpus_write_lock();
	if (host_cpu_online(cpu)) {
		ret = -EINVAL;
		goto out;
	}
	ret = cpuhp_startup_cpu(cpu);
	if (ret)
		goto out;
	atomic_store(&cpu_online[cpu], true);
	atomic_fetch_add(&nr_online, 1);
	/* cpufreq's online path: notifiers under cpu_hotplug_lock. */
	cpufreq_notify_transition(cpu);
out:
	cpus_write_unlock();
	return ret;
}

/* ---------------------------------------------------------------------- */
/* syscore                                                                */
/* ---------------------------------------------------------------------- */

void register_syscore_ops(struct syscore_ops *ops)
{
	mutex_lock(&syscore_ops_lock);
	cds_list_add_tail(&ops->node, &syscore_ops_list);
	mutex_unlock(&syscore_ops_lock);
}

void unregister_syscore_ops(struct syscore_ops *ops)
{
	mutex_lock(&syscore_ops_lock);
	cds_list_del(&ops->node);
	mutex_unlock(&syscore_ops_lock);
}

int host_suspend_resume(void)
{
	struct syscore_ops *ops;
	int ret = 0;

	cpus_write_lock();
	mutex_lock(&syscore_ops_lock);
	cds_list_for_each_entry_reverse(ops, &syscore_ops_list, node) {
		if (!ops->suspend)
			continue;
		ret = ops->suspend();
		if (ret) {
			/* Resume the ones already suspended, then give up. */
			for (ops = cds_list_entry(ops->node.next, struct syscore_ops, node);
			     &ops->node != &syscore_ops_list;
			     ops = cds_list_entry(ops->node.next, struct syscore_ops, node))
				if (ops->resume)
					ops->resume();
			goto out;
		}
	}
	cds_list_for_each_entry(ops, &syscore_ops_list, node)
		if (ops->resume)
			ops->resume();
out:
	mutex_unlock(&syscore_ops_lock);
	cpus_write_unlock();
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Static keys                                                            */
/* ---------------------------------------------------------------------- */

DEFINE_MUTEX(jump_label_mutex);

void static_key_slow_inc_cpuslocked(struct static_key *key)
{
	lockdep_assert_cpus_held();
	mutex_lock(&jump_label_mutex);
	atomic_fetch_add(&key->enabled, 1);
	mutex_unlock(&jump_label_mutex);
}

void static_key_slow_dec_cpuslocked(struct static_key *key)
{
	lockdep_assert_cpus_held();
	mutex_lock(&jump_label_mutex);
	if (!HOST_WARN_ON(atomic_load(&key->enabled) <= 0))
		atomic_fetch_sub(&key->enabled, 1);
	mutex_unlock(&jump_label_mutex);
}

void static_key_slow_inc(struct static_key *key)
{
	cpus_read_lock();
	static_key_slow_inc_cpuslocked(key);
	cpus_read_unlock();
}

void static_key_slow_dec(struct static_key *key)
{
	cpus_read_lock();
	static_key_slow_dec_cpuslocked(key);
	cpus_read_unlock();
}
