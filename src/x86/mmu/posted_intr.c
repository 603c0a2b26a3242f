// SPDX-License-Identifier: MIT
/*
 * VT-d posted interrupts and the per-CPU wakeup lists (vmx/posted_intr.c in
 * the kernel; locking.rst's wakeup_vcpus_on_cpu_lock).
 *
 * An assigned device's interrupt is posted by the IOMMU straight into the
 * target vCPU's descriptor: set the vector in PIR, set ON, and — if ON was
 * clear — send the notification vector NV to CPU NDST.  While the vCPU can
 * run, NV is POSTED_INTR_VECTOR and NDST its CPU: the notification reaches the
 * guest (ukvm: it makes the vCPU leave guest mode and the next entry syncs
 * PIR).  While it is blocked, NV is the wakeup vector, and the vCPU sits on
 * the wakeup_vcpus_on_cpu list of NDST; the wakeup handler that runs on that
 * CPU walks the list under the CPU's wakeup_vcpus_on_cpu_lock and wakes every
 * vCPU whose descriptor has ON set.  The handler runs in hard-irq context,
 * so the lock is a raw spinlock and a leaf: nothing is taken under it.
 *
 * In ukvm the thread that posts (kvm_set_irq() on a posted route) plays the
 * IOMMU and runs the wakeup handler of NDST itself.
 *
 * No wake-up is lost: the vCPU stores NV = wakeup (after joining the list)
 * before it checks ON in kvm_vcpu_block()'s condition, and the poster sets
 * ON before it reads NV; both seq_cst, so either the vCPU sees ON and does
 * not sleep, or the poster sees the wakeup vector and the handler, which
 * finds the vCPU on the list, wakes it.  The kernel joins the list at
 * schedule-out, after its last check, and so must send itself a wakeup IPI
 * when ON is already set; here the join precedes the check, which covers it.
 */
#include "sync/bug.h"
#include "x86/mmu/mmu.h"

static struct pi_wakeup_cpu {
	raw_spinlock_t wakeup_vcpus_on_cpu_lock;
	struct cds_list_head wakeup_vcpus_on_cpu;
} pi_cpu[HOST_MAX_CPUS];

void kvm_x86_pi_init(void)
{
	for (int cpu = 0; cpu < HOST_MAX_CPUS; cpu++) {
		/* One class for every CPU's lock, as with DEFINE_PER_CPU. */
		__raw_spin_lock_init(&pi_cpu[cpu].wakeup_vcpus_on_cpu_lock,
				     "wakeup_vcpus_on_cpu_lock",
				     LOCKDEP_STATIC_KEY("wakeup_vcpus_on_cpu_lock",
							LD_TYPE_RAW_SPINLOCK));
		CDS_INIT_LIST_HEAD(&pi_cpu[cpu].wakeup_vcpus_on_cpu);
	}
}

void vmx_vcpu_pi_create(struct kvm_vcpu *vcpu)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);

	CDS_INIT_LIST_HEAD(&va->pi_wakeup_list);
	va->pi_wakeup_cpu = -1;
	atomic_store(&va->pi_desc.nv, POSTED_INTR_VECTOR);
	atomic_store(&va->pi_desc.ndst, 0);
}

/* The wakeup handler of @cpu (pi_wakeup_handler()); returns vCPUs woken. */
int pi_wakeup_handler(unsigned int cpu)
{
	struct pi_wakeup_cpu *pc = &pi_cpu[cpu % HOST_MAX_CPUS];
	struct kvm_vcpu_arch *va;
	int woken = 0;

	raw_spin_lock(&pc->wakeup_vcpus_on_cpu_lock);
	cds_list_for_each_entry(va, &pc->wakeup_vcpus_on_cpu, pi_wakeup_list) {
		struct kvm_vcpu *vcpu = caa_container_of((void *)va,
							 struct kvm_vcpu, arch);

		if (atomic_load(&va->pi_desc.on) && kvm_vcpu_wake_up(vcpu)) {
			atomic_fetch_add_explicit(&kvm_x86(vcpu->kvm)->stat.pi_wakeups,
						  1, memory_order_relaxed);
			woken++;
		}
	}
	raw_spin_unlock(&pc->wakeup_vcpus_on_cpu_lock);
	return woken;
}

/* Leaving the wakeup list (the vCPU's own thread). */
static void pi_leave_wakeup_list(struct kvm_vcpu_arch *va)
{
	struct pi_wakeup_cpu *pc;

	if (va->pi_wakeup_cpu < 0)
		return;
	pc = &pi_cpu[va->pi_wakeup_cpu];
	raw_spin_lock(&pc->wakeup_vcpus_on_cpu_lock);
	cds_list_del(&va->pi_wakeup_list);
	raw_spin_unlock(&pc->wakeup_vcpus_on_cpu_lock);
	va->pi_wakeup_cpu = -1;
}

/* vmx_vcpu_pi_load(): the vCPU is about to run on @cpu. */
void vmx_vcpu_pi_load(struct kvm_vcpu *vcpu, int cpu)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);

	pi_leave_wakeup_list(va);
	atomic_store(&va->pi_desc.ndst, cpu);
	atomic_store(&va->pi_desc.nv, POSTED_INTR_VECTOR);
}

/* kvm_arch_vcpu_blocking(): join the wakeup list of the CPU it ran on. */
void vmx_vcpu_pi_blocking(struct kvm_vcpu *vcpu)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);
	int cpu = atomic_load(&vcpu->cpu);
	struct pi_wakeup_cpu *pc;

	if (cpu < 0)
		cpu = 0;
	UKVM_BUG_ON(va->pi_wakeup_cpu >= 0);
	pc = &pi_cpu[cpu];
	raw_spin_lock(&pc->wakeup_vcpus_on_cpu_lock);
	cds_list_add_tail(&va->pi_wakeup_list, &pc->wakeup_vcpus_on_cpu);
	raw_spin_unlock(&pc->wakeup_vcpus_on_cpu_lock);
	va->pi_wakeup_cpu = cpu;
	atomic_store(&va->pi_desc.ndst, cpu);
	/* After the list add: a handler that sees the vector finds the vCPU. */
	atomic_store(&va->pi_desc.nv, POSTED_INTR_WAKEUP_VECTOR);
}

/* kvm_arch_vcpu_unblocking(). */
void vmx_vcpu_pi_unblocking(struct kvm_vcpu *vcpu)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);

	pi_leave_wakeup_list(va);
	atomic_store(&va->pi_desc.nv, POSTED_INTR_VECTOR);
}

/* Part of kvm_arch_vcpu_runnable(): a posted interrupt is pending. */
bool vmx_pi_has_pending(struct kvm_vcpu *vcpu)
{
	return atomic_load(&vcpu_x86(vcpu)->pi_desc.on);
}

/*
 * The IOMMU posting @vector to @vcpu (an assigned device's interrupt routed
 * through a posted IRTE).  Never sleeps and takes only the leaf lock.
 */
void vmx_pi_post_interrupt(struct kvm_vcpu *vcpu, uint8_t vector)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);
	struct pi_desc *pi = &va->pi_desc;
	struct kvm_arch *ka = kvm_x86(vcpu->kvm);

	atomic_fetch_or(&pi->pir[vector / 64], 1ULL << (vector % 64));
	atomic_fetch_add_explicit(&ka->stat.pi_posted, 1, memory_order_relaxed);
	/* A notification is outstanding already, or suppressed. */
	if (atomic_exchange(&pi->on, true) || atomic_load(&pi->sn))
		return;
	atomic_fetch_add_explicit(&ka->stat.pi_notifications, 1,
				  memory_order_relaxed);
	if (atomic_load(&pi->nv) == POSTED_INTR_WAKEUP_VECTOR) {
		pi_wakeup_handler((unsigned int)atomic_load(&pi->ndst));
		return;
	}
	/*
	 * POSTED_INTR_VECTOR on NDST: if the vCPU is in guest mode there, the
	 * CPU takes the interrupt.  Otherwise the next entry syncs PIR.
	 */
	if (atomic_load(&vcpu->mode) == IN_GUEST_MODE)
		kvm_vcpu_kick(vcpu);
}

/* vmx_sync_pir_to_irr(): on entry; returns the vectors taken from PIR. */
int vmx_sync_pir_to_irr(struct kvm_vcpu *vcpu)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);
	struct pi_desc *pi = &va->pi_desc;
	int n = 0;

	if (!atomic_load_explicit(&pi->on, memory_order_relaxed) ||
	    !atomic_exchange(&pi->on, false))
		return 0;
	for (int i = 0; i < 4; i++)
		n += __builtin_popcountll(atomic_exchange(&pi->pir[i], 0));
	atomic_fetch_add_explicit(&va->pi_vectors_delivered, (unsigned long)n,
				  memory_order_relaxed);
	return n;
}

/* Every wakeup list is empty (module unload, tests). */
bool kvm_x86_pi_lists_empty(void)
{
	bool empty = true;

	for (int cpu = 0; cpu < HOST_MAX_CPUS; cpu++) {
		struct pi_wakeup_cpu *pc = &pi_cpu[cpu];

		raw_spin_lock(&pc->wakeup_vcpus_on_cpu_lock);
		empty &= cds_list_empty(&pc->wakeup_vcpus_on_cpu);
		raw_spin_unlock(&pc->wakeup_vcpus_on_cpu_lock);
	}
	return empty;
}
