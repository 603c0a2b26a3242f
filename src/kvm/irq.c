// SPDX-License-Identifier: MIT
/*
 * IRQ routing: a small GSI -> vCPU table (the role of kvm->irq_routing and
 * irqchip.c).  Updates take kvm->irq_lock, publish a new table and wait for
 * kvm->irq_srcu readers; injection reads the table inside kvm->irq_srcu and
 * delivers by making KVM_REQ_EVENT and kicking the target vCPU, or — for a
 * posted route — through the architecture's posted-interrupt descriptor
 * (x86: src/x86/mmu/posted_intr.c, the wakeup_vcpus_on_cpu lists).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/kvm_internal.h"
#include "ukvm/ukvm.h"

int kvm_init_irq_routing(struct kvm *kvm)
{
	kvm->irq_routing = calloc(1, sizeof(*kvm->irq_routing));
	return kvm->irq_routing ? 0 : -ENOMEM;
}

void kvm_free_irq_routing(struct kvm *kvm)
{
	free(kvm->irq_routing);
	kvm->irq_routing = NULL;
}

int kvm_set_irq_routing(struct kvm *kvm, const struct kvm_irq_route *ue,
			unsigned int nr)
{
	struct kvm_irq_routing_table *new, *old;

	if (nr > KVM_MAX_IRQ_ROUTES)
		return -EINVAL;
	for (unsigned int i = 0; i < nr; i++)
		if (ue[i].vcpu_idx >= KVM_MAX_VCPUS ||
		    (ue[i].posted && !kvm_arch_has(kvm, deliver_posted_interrupt)))
			return -EINVAL;
	new = malloc(sizeof(*new) + nr * sizeof(new->map[0]));
	if (!new)
		return -ENOMEM;
	new->nr_rt_entries = (int)nr;
	memcpy(new->map, ue, nr * sizeof(new->map[0]));

	mutex_lock(&kvm->irq_lock);
	old = ukvm_rcu_dereference_protected(kvm->irq_routing,
		lockdep_is_held(&kvm->irq_lock) != LOCK_STATE_NOT_HELD);
	ukvm_rcu_assign_pointer(kvm->irq_routing, new);
	synchronize_srcu_expedited(&kvm->irq_srcu);
	mutex_unlock(&kvm->irq_lock);
	free(old);
	return 0;
}

/*
 * Deliver @gsi: -ENOENT if no route; the count of vCPUs reached otherwise.
 * A posted route plays the IOMMU: the descriptor is written after the
 * irq_srcu section, as hardware does it outside any KVM lock.
 */
int kvm_set_irq(struct kvm *kvm, uint32_t gsi)
{
	struct kvm_irq_routing_table *rt;
	struct { struct kvm_vcpu *vcpu; uint8_t vector; } post[8];
	int idx, n = 0, nposts = 0;

	idx = srcu_read_lock(&kvm->irq_srcu);
	rt = srcu_dereference(kvm->irq_routing, &kvm->irq_srcu);
	for (int i = 0; rt && i < rt->nr_rt_entries; i++) {
		struct kvm_vcpu *vcpu;

		if (rt->map[i].gsi != gsi)
			continue;
		vcpu = kvm_get_vcpu(kvm, (int)rt->map[i].vcpu_idx);
		if (!vcpu)
			continue;
		if (rt->map[i].posted && nposts < (int)ARRAY_SIZE(post)) {
			post[nposts].vcpu = vcpu;
			post[nposts++].vector = rt->map[i].vector;
		} else if (!rt->map[i].posted) {
			kvm_make_request(KVM_REQ_EVENT, vcpu);
			kvm_vcpu_kick(vcpu);
		} else {
			continue;	/* more targets than one IRTE can post */
		}
		n++;
	}
	srcu_read_unlock(&kvm->irq_srcu, idx);
	/* vCPUs live as long as the VM: no reference needed past the section. */
	for (int i = 0; i < nposts; i++)
		kvm->arch_ops->deliver_posted_interrupt(post[i].vcpu, post[i].vector);
	if (n)
		atomic_fetch_add_explicit(&kvm->stat.irq_injected, 1,
					  memory_order_relaxed);
	return n ? n : -ENOENT;
}

/* ---- public API ---- */

int ukvm_set_irq_routing(struct kvm *kvm, const struct ukvm_irq_route *routes,
			 unsigned int nr)
{
	struct kvm_irq_route *ue;
	int r;

	if (!kvm || (nr && !routes))
		return -EFAULT;
	if (nr > KVM_MAX_IRQ_ROUTES)
		return -EINVAL;
	ue = calloc(nr ? nr : 1, sizeof(*ue));
	if (!ue)
		return -ENOMEM;
	for (unsigned int i = 0; i < nr; i++) {
		ue[i].gsi = routes[i].gsi;
		ue[i].vcpu_idx = routes[i].vcpu_idx;
		ue[i].vector = routes[i].vector;
		ue[i].posted = routes[i].posted;
	}
	r = kvm_set_irq_routing(kvm, ue, nr);
	free(ue);
	return r;
}

int ukvm_set_irq(struct kvm *kvm, uint32_t gsi)
{
	if (!kvm)
		return -EFAULT;
	return kvm_set_irq(kvm, gsi);
}
