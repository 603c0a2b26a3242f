// SPDX-License-Identifier: MIT
/*
 * `ukvm run`: VM churn and vCPU ioctls.
 *
 * --vm-churn creates other VMs in a loop, each with one vCPU and a small
 * memslot over host memory of its own, runs a short guest on it that writes
 * words and reads them back (a mismatch is a lost write), and destroys it:
 * kvm_usage_lock, hardware enabling, vm_list and the MMU notifiers of a
 * second VM on the same mm get real work.  The last VM is left alive for
 * the end checks.
 *
 * --vcpu-ioctls periodically kicks a vCPU out of KVM_RUN; on its own thread,
 * between two KVM_RUNs, the vCPU then makes the ioctls that reach the rarer
 * locks of locking.rst: the APIC base (a static key: cpus_read_lock inside
 * kvm->srcu), Hyper-V (hv_lock), Xen (xen_lock), the TSC (tsc_write_lock),
 * the APICv inhibit (vcpu->mutex => slots_lock, an internal memslot) and
 * the first shadow root (slots_arch_lock inside kvm->srcu).
 *
 * --irqs raises interrupts into the running vCPUs.  Two GSIs per vCPU: one
 * injected by KVM (a KVM_REQ_EVENT request and a kick), one an assigned
 * device's interrupt posted by the IOMMU into the vCPU's posted-interrupt
 * descriptor (VT-d: PIR, ON, the notification vector).  Now and then the
 * routing table is replaced (kvm->irq_lock, then synchronize_srcu(
 * &kvm->irq_srcu) while deliveries read the old table inside irq_srcu),
 * swapping which GSI of each vCPU is posted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host/host.h"
#include "kvm/kvm_host.h"
#include "run.h"
#include "x86/mmu/mmu.h"

#define CHURN_VM_SIZE	PMD_SIZE
#define CHURN_VM_WORDS	64

/* ---- the churn VMs' guest: write words, read them back ---- */

struct small_guest {
	uint64_t seed;
	int step;
	unsigned long mismatches;
};

static uint64_t small_gpa(int i)
{
	/* Spread over the slot: a different page each time, varied offsets. */
	return ((uint64_t)(i * 37) % (CHURN_VM_SIZE >> PAGE_SHIFT)) * PAGE_SIZE +
	       (uint64_t)(i % 8) * 8;
}

static uint64_t small_value(const struct small_guest *g, int i)
{
	return g->seed ^ ((uint64_t)(i + 1) * 0x9E3779B97F4A7C15ULL);
}

static enum ukvm_guest_step small_next(void *ctx, struct ukvm_guest_access *a)
{
	struct small_guest *g = ctx;
	int i = g->step % CHURN_VM_WORDS;

	if (g->step >= 2 * CHURN_VM_WORDS)
		return UKVM_GUEST_EXIT;
	a->gpa = small_gpa(i);
	a->len = 8;
	a->type = g->step < CHURN_VM_WORDS ? UKVM_ACCESS_WRITE : UKVM_ACCESS_READ;
	a->value = small_value(g, i);
	return UKVM_GUEST_ACCESS;
}

static void small_complete(void *ctx, const struct ukvm_guest_access *a)
{
	struct small_guest *g = ctx;
	int i = g->step % CHURN_VM_WORDS;

	if (a->type == UKVM_ACCESS_READ && a->value != small_value(g, i))
		g->mismatches++;
	g->step++;
}

static const struct ukvm_guest_ops small_guest_ops = {
	.next = small_next,
	.complete = small_complete,
};

struct churn_vm {
	struct kvm *kvm;
	unsigned long hva;
};

static void churn_vm_destroy(struct churn_vm *cv)
{
	if (cv->kvm)
		ukvm_destroy_vm(cv->kvm);
	if (cv->hva)
		host_munmap(host_current_mm, cv->hva, CHURN_VM_SIZE);
	*cv = (struct churn_vm){ 0 };
}

/* Create a VM, run its guest; 0 or a negative errno (the VM kept in @cv). */
static int churn_vm_create(struct run *r, struct churn_vm *cv, uint64_t seed)
{
	const struct ukvm_vm_config cfg = {
		.ad_disabled = !r->o.ad_bits, .dirty_mode = r->o.dirty_mode,
	};
	struct kvm_userspace_memory_region mem = {
		.slot = 0, .memory_size = CHURN_VM_SIZE,
	};
	struct small_guest g = { .seed = seed };
	struct kvm_vcpu *vcpu;
	struct kvm_run run;
	int ret;

	ret = ukvm_create_vm(&cfg, &cv->kvm);
	if (ret)
		return ret;
	cv->hva = host_mmap(host_current_mm, CHURN_VM_SIZE,
			    VM_READ | VM_WRITE | (r->o.huge ? VM_THP : 0));
	if (IS_ERR_HVA(cv->hva)) {
		ret = (int)(long)cv->hva;
		cv->hva = 0;
		return ret;
	}
	mem.userspace_addr = cv->hva;
	ret = ukvm_set_user_memory_region(cv->kvm, &mem);
	if (!ret)
		ret = ukvm_create_vcpu(cv->kvm, 0, &vcpu);
	if (!ret)
		ret = ukvm_vcpu_set_guest(vcpu, &small_guest_ops, &g);
	while (!ret) {
		ret = ukvm_vcpu_run(vcpu, &run);
		if (!ret && run.exit_reason == KVM_EXIT_HYPERCALL)
			break;
		if (!ret && run.exit_reason != KVM_EXIT_INTR)
			ret = -EPROTO;
	}
	if (ret)
		return ret;
	run_count(r, RC_VM_CREATED, 1);
	run_count(r, RC_VM_ACCESSES, (unsigned long)g.step);
	if (g.mismatches || g.step != 2 * CHURN_VM_WORDS) {
		fprintf(stderr, "ukvm run: churn VM %d: %lu of %d words read back wrong\n",
			cv->kvm->id, g.mismatches, CHURN_VM_WORDS);
		run_count(r, RC_VM_MISMATCH, g.mismatches ? g.mismatches : 1);
	}
	return 0;
}

void *run_vm_thread(void *arg)
{
	struct run *r = arg;
	struct churn_vm cv = { 0 };
	uint64_t rng = r->o.seed * 0x9E3779B97F4A7C15ULL + 37;
	unsigned int extra = 0;
	unsigned long done = 0;

	do {
		int ret;

		churn_vm_destroy(&cv);
		ret = churn_vm_create(r, &cv, run_rand(&rng));
		if (ret) {
			run_unexpected(r, "churn VM", ret);
			churn_vm_destroy(&cv);
		} else {
			done++;
		}
		run_sleep_us(r->o.churn_delay_us * 10);
	} while (!atomic_load(&r->stop_churn) || (!done && ++extra < 100));
	/* The last one stays for the end checks (joined before they run). */
	r->churn_vm = cv.kvm;
	r->churn_vm_hva = cv.hva;
	return NULL;
}

void run_churn_vm_destroy(struct run *r)
{
	struct churn_vm cv = { r->churn_vm, r->churn_vm_hva };

	churn_vm_destroy(&cv);
	r->churn_vm = NULL;
	r->churn_vm_hva = 0;
}

/* ---- vCPU ioctls ---- */

#define APIC_BASE		0xfee00000ULL
#define APIC_BASE_BSP		(1ULL << 8)
#define APIC_BASE_ENABLE	(1ULL << 11)

static void ioctl_result(struct run *r, const char *what, int ret, enum run_counter c)
{
	if (ret)
		run_unexpected(r, what, ret);
	else
		run_count(r, c, 1);
}

void run_vcpu_do_ioctls(struct run_vcpu *v)
{
	struct run *r = v->run;
	struct kvm_vcpu *vcpu = v->vcpu;
	unsigned long round = run_ctr(r, RC_IOCTL_ROUNDS);
	uint64_t base = APIC_BASE | (v->idx == 0 ? APIC_BASE_BSP : 0);
	int ret;

	/* KVM_SET_MSRS(APIC_BASE): a static key flipped inside kvm->srcu. */
	v->apic_disabled = !v->apic_disabled;
	ret = kvm_x86_vcpu_set_apic_base(vcpu, base | (v->apic_disabled ? 0 : APIC_BASE_ENABLE));
	ioctl_result(r, "set APIC base", ret, RC_IOCTL_APIC_BASE);
	ret = kvm_x86_hv_set_guest_os_id(vcpu, 0x8100000000000000ULL | round);
	ioctl_result(r, "Hyper-V guest OS id", ret, RC_IOCTL_HV);
	ret = kvm_x86_xen_set_shared_info(vcpu, (RUN_GUEST_GPA >> PAGE_SHIFT) + round % 512);
	ioctl_result(r, "Xen shared info", ret, RC_IOCTL_XEN);
	v->tsc += 1000000;
	ret = kvm_x86_vcpu_set_tsc(vcpu, v->tsc);
	ioctl_result(r, "set TSC", ret, RC_IOCTL_TSC);
	/* Re-create or delete the APIC-access memslot from vCPU context. */
	v->apicv_inhibited = !v->apicv_inhibited;
	ret = kvm_x86_vcpu_set_apicv_inhibit(vcpu, v->apicv_inhibited);
	ioctl_result(r, "APICv inhibit", ret, RC_IOCTL_APICV);
	/* slots_arch_lock inside kvm->srcu: every guest slot has arch data. */
	ret = kvm_x86_vcpu_first_shadow_root(vcpu);
	ioctl_result(r, "first shadow root", ret < r->nr_slots ? (ret < 0 ? ret : -EIO) : 0,
		     RC_IOCTL_SHADOW_ROOT);
	run_count(r, RC_IOCTL_ROUNDS, 1);
}

/* At the end: the local APIC enabled again (the static key balanced). */
void run_vcpu_ioctls_restore(struct run_vcpu *v)
{
	int ret;

	if (!v->apic_disabled)
		return;
	v->apic_disabled = false;
	ret = kvm_x86_vcpu_set_apic_base(v->vcpu, APIC_BASE | APIC_BASE_ENABLE |
					 (v->idx == 0 ? APIC_BASE_BSP : 0));
	if (ret)
		run_unexpected(v->run, "set APIC base (restore)", ret);
}

void *run_ioctls_thread(void *arg)
{
	struct run *r = arg;
	unsigned int i = 0;

	do {
		struct run_vcpu *v = &r->vcpus[i++ % (unsigned int)r->o.vcpus];

		atomic_store(&v->want_ioctls, true);
		ukvm_vcpu_kick_exit(v->vcpu);
		run_count(r, RC_IOCTL_KICKS, 1);
		run_sleep_us(r->o.churn_delay_us * 10);
	} while (!atomic_load(&r->stop_churn));
	return NULL;
}

/* ---- interrupts ---- */

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
