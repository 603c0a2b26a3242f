// SPDX-License-Identifier: MIT
/*
 * vm_list walkers.
 *
 * locking.rst keeps cpus_read_lock() outside kvm_lock "officially" but warns
 * that code under kvm_lock can take cpus_read_lock() without noticing, and
 * the kvmclock cpufreq notifier takes kvm_lock *under* cpu_hotplug_lock.
 * ukvm goes further than KVM: vm_list is an RCU list, so
 *
 *  - the cpufreq-like notifier (called under cpu_hotplug_lock when a CPU
 *    comes online) walks it inside ukvm_rcu_read_lock(), never kvm_lock, and
 *    only sets requests and kicks (no sleeping);
 *  - the set_nx_huge_pages-like parameter writer takes a reference on each
 *    live VM under RCU, leaves the read side, and only then takes each VM's
 *    slots_lock -- no mutex is ever taken inside kvm_lock.
 *
 * With legacy usage locking (for the 44d17459 replay) both walk under
 * kvm_lock as v6.12 does, re-creating the documented hazard.
 */
#include <errno.h>
#include <stdlib.h>

#include "kvm/kvm_internal.h"
#include "sync/race.h"
#include "ukvm/ukvm.h"

static _Atomic unsigned long cpufreq_walks, param_writes;

/*
 * Walk vm_list by its nodes: list_for_each_entry's end test forms a
 * struct kvm from the list head itself, and struct kvm is 64-byte aligned
 * while the head is not (undefined behaviour, caught by UBSan).  @pos is a
 * struct cds_list_head cursor.
 */
#define for_each_vm(kvm, pos)                                                 \
	for ((pos) = vm_list.next;                                            \
	     (pos) != &vm_list &&                                             \
	     ((kvm) = cds_list_entry((pos), struct kvm, vm_list), true);      \
	     (pos) = (pos)->next)
#define for_each_vm_rcu(kvm, pos)                                             \
	for ((pos) = ukvm_rcu_dereference_raw(vm_list.next);                  \
	     (pos) != &vm_list &&                                             \
	     ((kvm) = cds_list_entry((pos), struct kvm, vm_list), true);      \
	     (pos) = ukvm_rcu_dereference_raw((pos)->next))

unsigned long kvm_vm_list_walk_count(void)
{
	return atomic_load(&cpufreq_walks) + atomic_load(&param_writes);
}

static void clock_update_vm(struct kvm *kvm, unsigned int cpu)
{
	struct kvm_vcpu *vcpu;
	int i;

	kvm_for_each_vcpu(i, vcpu, kvm) {
		if ((unsigned int)atomic_load(&vcpu->cpu) != cpu)
			continue;
		kvm_make_request(KVM_REQ_CLOCK_UPDATE, vcpu);
		kvm_vcpu_kick(vcpu);
	}
}

static int kvm_cpufreq_notifier(struct notifier_block *nb, unsigned long event,
				void *data)
{
	const struct cpufreq_freqs *freq = data;
	unsigned int cpu = freq->cpu;
	struct cds_list_head *pos;
	struct kvm *kvm;

	(void)nb;
	/* kvmclock reacts after the change (__kvmclock_cpufreq_notifier). */
	if (event != CPUFREQ_POSTCHANGE)
		return 0;
	atomic_fetch_add_explicit(&cpufreq_walks, 1, memory_order_relaxed);
	if (kvm_legacy_usage_locking()) {
		/* __kvmclock_cpufreq_notifier(): kvm_lock under the hotplug lock. */
		mutex_lock(&kvm_lock);
		for_each_vm(kvm, pos) {
			RACE_POINT(VM_LIST_WALK);
			clock_update_vm(kvm, cpu);
		}
		mutex_unlock(&kvm_lock);
		return 0;
	}
	ukvm_rcu_read_lock();
	for_each_vm_rcu(kvm, pos) {
		RACE_POINT(VM_LIST_WALK);
		clock_update_vm(kvm, cpu);
	}
	ukvm_rcu_read_unlock();
	return 0;
}

static struct notifier_block kvm_cpufreq_nb = {
	.notifier_call = kvm_cpufreq_notifier,
};

void kvm_vm_list_walkers_register(void)
{
	cpufreq_register_transition_notifier(&kvm_cpufreq_nb);
}

void kvm_vm_list_walkers_unregister(void)
{
	cpufreq_unregister_transition_notifier(&kvm_cpufreq_nb);
}

static void zap_all_fast(struct kvm *kvm)
{
	lockdep_assert_held(&kvm->slots_lock);
	kvm_arch_call(kvm, zap_all_fast, kvm);
}

/*
 * A module-parameter write that must reach every VM's MMU (like
 * set_nx_huge_pages()): returns the number of VMs updated.
 */
int ukvm_param_write_all_vms(void)
{
	struct kvm **vms = NULL, *kvm;
	struct cds_list_head *pos;
	int n = 0, cap = 0;

	atomic_fetch_add_explicit(&param_writes, 1, memory_order_relaxed);
	if (kvm_legacy_usage_locking()) {
		/* v6.12: each VM's slots_lock nested inside kvm_lock. */
		mutex_lock(&kvm_lock);
		for_each_vm(kvm, pos) {
			RACE_POINT(VM_LIST_WALK);
			mutex_lock(&kvm->slots_lock);
			zap_all_fast(kvm);
			mutex_unlock(&kvm->slots_lock);
			n++;
		}
		mutex_unlock(&kvm_lock);
		return n;
	}

	/* Collect references under RCU (no sleeping inside it). */
	for (;;) {
		int found = 0;
		bool full = false;

		ukvm_rcu_read_lock();
		for_each_vm_rcu(kvm, pos) {
			if (found == cap) {
				full = true;
				break;
			}
			if (kvm_get_kvm_safe(kvm))
				vms[found++] = kvm;
		}
		ukvm_rcu_read_unlock();
		if (!full) {
			n = found;
			break;
		}
		/* Too many VMs for the array: drop, grow, retry. */
		for (int i = 0; i < found; i++)
			kvm_put_kvm(vms[i]);
		cap = cap ? cap * 2 : 16;
		free(vms);
		vms = calloc((size_t)cap, sizeof(*vms));
		if (!vms)
			return -ENOMEM;
	}

	for (int i = 0; i < n; i++) {
		RACE_POINT(VM_LIST_WALK);
		mutex_lock(&vms[i]->slots_lock);
		zap_all_fast(vms[i]);
		mutex_unlock(&vms[i]->slots_lock);
		kvm_put_kvm(vms[i]);
	}
	free(vms);
	return n;
}
