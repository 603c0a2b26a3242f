// SPDX-License-Identifier: MIT
/*
 * `ukvm run --irqs`: interrupts into the running vCPUs.
 *
 * Two GSIs per vCPU: one injected by KVM (a KVM_REQ_EVENT request and a
 * kick), one an assigned device's interrupt posted by the IOMMU into the
 * vCPU's posted-interrupt descriptor (VT-d: PIR, ON, the notification
 * vector; a blocked vCPU would be woken through the per-CPU wakeup lists).
 * The thread raises random GSIs and now and then replaces the routing
 * table (kvm->irq_lock, then synchronize_srcu(&kvm->irq_srcu) while
 * deliveries read the old table inside irq_srcu), swapping which GSI of
 * each vCPU is posted.
 */
#include <errno.h>
#include <stdlib.h>

#include "run.h"

#define ROUTING_EVERY	32	/* raises between two routing updates */

static int set_routing(struct run *r, bool swap)
{
	struct ukvm_irq_route *routes;
	unsigned int n = 2 * (unsigned int)r->o.vcpus;
	int ret;

	routes = calloc(n, sizeof(*routes));
	if (!routes)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++)
		routes[i] = (struct ukvm_irq_route){
			.gsi = i, .vcpu_idx = i / 2, .vector = (uint8_t)(0x40 + i),
			.posted = (i % 2) != swap,
		};
	ret = ukvm_set_irq_routing(r->kvm, routes, n);
	free(routes);
	return ret;
}

void *run_irq_thread(void *arg)
{
	struct run *r = arg;
	uint64_t rng = r->o.seed * 0x9E3779B97F4A7C15ULL + 53;
	unsigned long n = 0;
	bool swap = false;
	int ret;

	ret = set_routing(r, swap);
	if (ret) {
		run_unexpected(r, "IRQ routing", ret);
		return NULL;
	}
	run_count(r, RC_IRQ_ROUTING, 1);
	do {
		uint32_t gsi = (uint32_t)(run_rand(&rng) % (2 * (uint64_t)r->o.vcpus));

		ret = ukvm_set_irq(r->kvm, gsi);
		if (ret < 0) {
			run_unexpected(r, "ukvm_set_irq", ret);
		} else {
			run_count(r, gsi % 2 != swap ? RC_IRQ_POSTED : RC_IRQ_INJECTED, 1);
			run_count(r, RC_IRQ_REACHED, (unsigned long)ret);
		}
		if (++n % ROUTING_EVERY == 0) {
			swap = !swap;
			ret = set_routing(r, swap);
			if (ret)
				run_unexpected(r, "IRQ routing", ret);
			else
				run_count(r, RC_IRQ_ROUTING, 1);
		}
		run_sleep_us(r->o.churn_delay_us);
	} while (!atomic_load(&r->stop_churn));
	return NULL;
}
