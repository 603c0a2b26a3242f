// SPDX-License-Identifier: MIT
/*
 * vCPUs: creation under kvm->lock (kvm-brief.md 8.1), the one-ioctl-at-a-
 * time vcpu->mutex (8.2), the running vCPU of a thread (vcpu_load/put), the
 * per-vCPU kvm->srcu read section, and freezing every vCPU of a VM
 * (kvm_lock_all_vcpus(), nest_lock under kvm->lock).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/kvm_internal.h"
#include "sync/bug.h"
#include "sync/race.h"
#include "ukvm/ukvm.h"

#define KVM_MAX_VCPU_IDS 4096

/*
 * The kernel's per-CPU kvm_running_vcpu, set by vcpu_load() and cleared by
 * vcpu_put(): here a thread-local set for the whole of a vCPU ioctl (the
 * thread is the vCPU's "CPU" while it holds vcpu->mutex).  Dirty marking
 * uses it to find the ring to push to.
 */
static __thread struct kvm_vcpu *kvm_running_vcpu;

struct kvm_vcpu *kvm_get_running_vcpu(void)
{
	return kvm_running_vcpu;
}

static struct kvm_vcpu *kvm_get_vcpu_by_id(struct kvm *kvm, int id)
{
	struct kvm_vcpu *vcpu;
	int i;

	kvm_for_each_vcpu(i, vcpu, kvm)
		if (vcpu->vcpu_id == id)
			return vcpu;
	return NULL;
}

static void kvm_vcpu_init(struct kvm_vcpu *vcpu, struct kvm *kvm, int id)
{
	vcpu->kvm = kvm;
	vcpu->vcpu_id = id;
	mutex_init(&vcpu->mutex);
	atomic_init(&vcpu->mode, OUTSIDE_GUEST_MODE);
	atomic_init(&vcpu->cpu, -1);
	rcuwait_init(&vcpu->wait);
}

static int kvm_vm_ioctl_create_vcpu(struct kvm *kvm, unsigned long id,
				    struct kvm_vcpu **out)
{
	size_t arch_size = kvm->arch_ops ? kvm->arch_ops->vcpu_size : 0;
	struct kvm_vcpu *vcpu;
	uint32_t ring_size;
	int r, idx;

	if (id >= KVM_MAX_VCPU_IDS)
		return -EINVAL;

	mutex_lock(&kvm->lock);
	if (kvm->created_vcpus >= kvm->max_vcpus) {
		mutex_unlock(&kvm->lock);
		return -EINVAL;
	}
	/* Counted now, so capabilities "set before any vCPU" can check it. */
	kvm->created_vcpus++;
	/* Cannot change any more: the ring cap fails once a vCPU is counted. */
	ring_size = kvm_dirty_ring_size(kvm);
	mutex_unlock(&kvm->lock);

	vcpu = aligned_alloc(64, (sizeof(*vcpu) + arch_size + 63) & ~63UL);
	if (!vcpu) {
		r = -ENOMEM;
		goto vcpu_decrement;
	}
	memset(vcpu, 0, sizeof(*vcpu) + arch_size);
	kvm_vcpu_init(vcpu, kvm, (int)id);
	if (kvm->arch_ops && kvm->arch_ops->vcpu_create) {
		r = kvm->arch_ops->vcpu_create(vcpu);
		if (r)
			goto vcpu_free;
	}
	if (ring_size) {
		r = kvm_dirty_ring_alloc(kvm, &vcpu->dirty_ring, ring_size);
		if (r)
			goto arch_vcpu_destroy;
	}

	mutex_lock(&kvm->lock);
	if (kvm_get_vcpu_by_id(kvm, (int)id)) {
		r = -EEXIST;
		goto unlock_destroy;
	}
	idx = atomic_load(&kvm->online_vcpus);
	vcpu->vcpu_idx = idx;
	vcpu->dirty_ring.index = idx;
	kvm->vcpus[idx] = vcpu;
	/*
	 * Hold vcpu->mutex while the vCPU goes online (6.13+): an ioctl on it
	 * waits until it is complete, and the validator learns that kvm->lock
	 * is taken outside vcpu->mutex.
	 */
	mutex_lock(&vcpu->mutex);
	atomic_store_explicit(&kvm->online_vcpus, idx + 1, memory_order_release);
	mutex_unlock(&vcpu->mutex);
	mutex_unlock(&kvm->lock);

	kvm_arch_call(kvm, vcpu_postcreate, vcpu);
	*out = vcpu;
	return 0;

unlock_destroy:
	mutex_unlock(&kvm->lock);
	kvm_dirty_ring_free(&vcpu->dirty_ring);
arch_vcpu_destroy:
	kvm_arch_call(kvm, vcpu_destroy, vcpu);
vcpu_free:
	mutex_destroy(&vcpu->mutex);
	free(vcpu);
vcpu_decrement:
	mutex_lock(&kvm->lock);
	kvm->created_vcpus--;
	mutex_unlock(&kvm->lock);
	return r;
}

int ukvm_create_vcpu(struct kvm *kvm, unsigned long id, struct kvm_vcpu **out)
{
	if (!kvm || !out)
		return -EFAULT;
	if (atomic_load(&kvm->vm_dead))
		return -EIO;
	return kvm_vm_ioctl_create_vcpu(kvm, id, out);
}

/* VM teardown: no vCPU thread can be inside ukvm any more. */
void kvm_destroy_vcpus(struct kvm *kvm)
{
	int n = atomic_load(&kvm->online_vcpus);

	for (int i = 0; i < n; i++) {
		struct kvm_vcpu *vcpu = kvm->vcpus[i];

		kvm_arch_call(kvm, vcpu_destroy, vcpu);
		kvm_dirty_ring_free(&vcpu->dirty_ring);
		if (vcpu->run_state_free)
			vcpu->run_state_free(vcpu->run_state);
		mutex_destroy(&vcpu->mutex);
		free(vcpu);
		kvm->vcpus[i] = NULL;
	}
	atomic_store(&kvm->online_vcpus, 0);
}

/*
 * Entry of every vCPU ioctl: one at a time per vCPU, and the vCPU is the
 * calling thread's running vCPU until kvm_vcpu_ioctl_end() (vcpu_load()).
 */
int kvm_vcpu_ioctl_begin(struct kvm_vcpu *vcpu)
{
	int r;

	if (atomic_load(&vcpu->kvm->vm_dead))
		return -EIO;
	r = mutex_lock_killable(&vcpu->mutex);
	if (r)
		return r;
	/* A thread inside another vCPU's ioctl gets it back at the end. */
	vcpu->prev_running_vcpu = kvm_running_vcpu;
	kvm_running_vcpu = vcpu;
	return 0;
}

void kvm_vcpu_ioctl_end(struct kvm_vcpu *vcpu)
{
	/* vcpu_put() */
	UKVM_WARN_ON(kvm_running_vcpu != vcpu);
	kvm_running_vcpu = vcpu->prev_running_vcpu;
	vcpu->prev_running_vcpu = NULL;
	mutex_unlock(&vcpu->mutex);
}

void __kvm_vcpu_srcu_read_lock(struct kvm_vcpu *vcpu,
			       const struct lockdep_site *site)
{
	lockdep_assert_held(&vcpu->mutex);
	/* No nesting: the index has a single home. */
	UKVM_WARN_ON(vcpu->srcu_depth != 0);
	vcpu->srcu_idx = __srcu_read_lock(&vcpu->kvm->srcu, site);
	vcpu->srcu_depth++;
}

void __kvm_vcpu_srcu_read_unlock(struct kvm_vcpu *vcpu,
				 const struct lockdep_site *site)
{
	UKVM_WARN_ON(vcpu->srcu_depth != 1);
	vcpu->srcu_depth--;
	__srcu_read_unlock(&vcpu->kvm->srcu, vcpu->srcu_idx, site);
}

/*
 * Freeze every vCPU of the VM (VM-wide operations): kvm->lock, then each
 * vcpu->mutex with kvm->lock as the nest lock, so the validator accepts many
 * instances of one class.
 */
void kvm_lock_all_vcpus(struct kvm *kvm)
{
	struct kvm_vcpu *vcpu;
	int i;

	lockdep_assert_held(&kvm->lock);
	kvm_for_each_vcpu(i, vcpu, kvm)
		mutex_lock_nest_lock(&vcpu->mutex, &kvm->lock);
}

void kvm_unlock_all_vcpus(struct kvm *kvm)
{
	struct kvm_vcpu *vcpu;
	int i;

	lockdep_assert_held(&kvm->lock);
	kvm_for_each_vcpu(i, vcpu, kvm)
		mutex_unlock(&vcpu->mutex);
}
