// SPDX-License-Identifier: MIT
/*
 * KVM_RUN: the vCPU run loop (x86.c vcpu_run()/vcpu_enter_guest() in the
 * kernel) and the handling of exits.
 *
 * The vCPU holds vcpu->mutex for the whole call and kvm->srcu whenever it is
 * outside guest mode.  Entering: exit to the VMM if the dirty ring is
 * soft-full, service requests (TLB flush, obsolete roots, events), load a
 * valid root, store IN_GUEST_MODE, drop kvm->srcu,
 * then (full barrier) check for a kick or a request one last time.  Leaving:
 * OUTSIDE_GUEST_MODE and a new exit epoch (what a waiting requester waits
 * for), kvm->srcu again, handle the exit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hw/hw.h"
#include "sync/bug.h"
#include "sync/race.h"

static void hw_vcpu_free(void *p)
{
	free(p);
}

struct hw_vcpu *hw_vcpu(struct kvm_vcpu *vcpu)
{
	return vcpu->run_state;
}

int ukvm_vcpu_set_guest(struct kvm_vcpu *vcpu, const struct ukvm_guest_ops *ops,
			void *ctx)
{
	struct hw_vcpu *hv;
	int r;

	if (!vcpu || !ops || !ops->next || !ops->complete)
		return -EINVAL;
	r = kvm_vcpu_ioctl_begin(vcpu);
	if (r)
		return r;
	hv = vcpu->run_state;
	if (!hv) {
		hv = calloc(1, sizeof(*hv));
		if (!hv) {
			kvm_vcpu_ioctl_end(vcpu);
			return -ENOMEM;
		}
		hv->vcpu = vcpu;
		vcpu->run_state = hv;
		vcpu->run_state_free = hw_vcpu_free;
	}
	hv->ops = ops;
	hv->ctx = ctx;
	hv->have_pending = false;
	hv->mmio_read_pending = false;
	kvm_vcpu_ioctl_end(vcpu);
	return 0;
}

void ukvm_vcpu_kick_exit(struct kvm_vcpu *vcpu)
{
	struct hw_vcpu *hv = vcpu->run_state;

	if (!hv)
		return;
	atomic_store(&hv->exit_requested, true);
	/*
	 * KVM's pending signal: ends a halt even if the vCPU has left guest
	 * mode for it but is not blocked yet (the kick below then finds
	 * nothing to wake); cleared by the next entry.
	 */
	kvm_make_request(KVM_REQ_UNBLOCK, vcpu);
	kvm_vcpu_kick(vcpu);
}

void hw_vcpu_get_stat(struct kvm_vcpu *vcpu, struct hw_vcpu_stat *st)
{
	struct hw_vcpu *hv = vcpu->run_state;

	if (hv)
		memcpy(st, &hv->stat, sizeof(*st));
	else
		memset(st, 0, sizeof(*st));
}

static void service_requests(struct hw_vcpu *hv)
{
	struct kvm_vcpu *vcpu = hv->vcpu;

	vcpu_stat_inc(vcpu, requests_serviced);
	if (kvm_check_request(KVM_REQ_MMU_FREE_OBSOLETE_ROOTS, vcpu))
		kvm_mmu_free_obsolete_roots(vcpu);
	/* x86 services the full flush before the narrower ones. */
	if (kvm_check_request(KVM_REQ_TLB_FLUSH, vcpu)) {
		hw_tlb_flush(hv);
		vcpu_stat_inc(vcpu, tlb_flush);
	}
	if (kvm_check_request(KVM_REQ_CLOCK_UPDATE, vcpu))
		hv->stat.clock_updates++;
	kvm_check_request(KVM_REQ_STEAL_UPDATE, vcpu);
	kvm_check_request(KVM_REQ_UNBLOCK, vcpu);
	if (kvm_check_request(KVM_REQ_EVENT, vcpu)) {
		hv->stat.interrupts++;
		if (hv->ops->interrupt)
			hv->ops->interrupt(hv->ctx);
	}
}

/* Pick an online host CPU to run on (the kernel's scheduler). */
static void vcpu_load_cpu(struct kvm_vcpu *vcpu)
{
	unsigned int n = host_nr_cpus(), cpu = (unsigned int)vcpu->vcpu_idx % n;

	for (unsigned int i = 0; i < n && !host_cpu_online(cpu); i++)
		cpu = (cpu + 1) % n;
	atomic_store(&vcpu->cpu, (int)cpu);
	vmx_vcpu_pi_load(vcpu, (int)cpu);
}

/* Interrupts posted while the vCPU was away reach the guest now. */
static void sync_posted_interrupts(struct hw_vcpu *hv)
{
	if (vmx_sync_pir_to_irr(hv->vcpu) > 0) {
		hv->stat.interrupts++;
		hv->stat.posted_interrupts++;
		if (hv->ops->interrupt)
			hv->ops->interrupt(hv->ctx);
	}
}

/* Returns 1 to enter again, 0 for an exit to the VMM, < 0 for an error. */
static int handle_mmio(struct hw_vcpu *hv, struct kvm_run *run)
{
	struct ukvm_guest_access *a = &hv->pending;
	struct kvm_vcpu *vcpu = hv->vcpu;
	int r;

	/* In-kernel devices first, under kvm->srcu. */
	if (a->type == UKVM_ACCESS_WRITE)
		r = kvm_io_bus_write(vcpu, KVM_MMIO_BUS, a->gpa, a->len, &a->value);
	else
		r = kvm_io_bus_read(vcpu, KVM_MMIO_BUS, a->gpa, a->len, &a->value);
	if (!r) {
		hv->have_pending = false;
		hv->ops->complete(hv->ctx, a);
		return 1;
	}
	/* Userspace: KVM_EXIT_MMIO; a read completes on the next KVM_RUN. */
	run->exit_reason = KVM_EXIT_MMIO;
	run->mmio.phys_addr = a->gpa;
	run->mmio.len = a->len;
	run->mmio.is_write = a->type == UKVM_ACCESS_WRITE;
	memcpy(run->mmio.data, &a->value, sizeof(run->mmio.data));
	hv->stat.mmio_exits++;
	if (a->type == UKVM_ACCESS_WRITE) {
		hv->have_pending = false;
		hv->ops->complete(hv->ctx, a);
	} else {
		hv->mmio_read_pending = true;
	}
	return 0;
}

/*
 * A write the MMU refused to map writable (its gfn is a guest page table
 * KVM write-tracks): KVM emulates the instruction.  Returns 1 to enter
 * again; the access is complete unless it must simply be re-executed.
 */
static int handle_write_protected(struct hw_vcpu *hv)
{
	struct ukvm_guest_access *a = &hv->pending;
	int r;

	if (UKVM_WARN_ON(a->type != UKVM_ACCESS_WRITE))
		return -EFAULT;
	r = kvm_x86_emulate_write(hv->vcpu, a->gpa, &a->value, a->len);
	if (r == -EAGAIN)
		return 1;
	if (r)
		return r;
	hv->have_pending = false;
	hv->ops->complete(hv->ctx, a);
	return 1;
}

static int handle_exit(struct hw_vcpu *hv, struct hw_exit *exit, struct kvm_run *run)
{
	struct kvm_vcpu *vcpu = hv->vcpu;
	int r;

	vcpu_stat_inc(vcpu, exits);
	switch (exit->reason) {
	case HW_EXIT_EPT_VIOLATION:
	case HW_EXIT_EPT_MISCONFIG:
		r = kvm_mmu_page_fault(vcpu, exit->gpa, exit->error_code);
		if (r < 0)
			return r;
		if (r == RET_PF_EMULATE)
			return handle_mmio(hv, run);
		if (r == RET_PF_WRITE_PROTECTED)
			return handle_write_protected(hv);
		return 1;
	case HW_EXIT_HALT:
		hv->stat.halts++;
		/* Never sleep holding kvm->srcu: a memslot writer would wait. */
		kvm_vcpu_srcu_read_unlock(vcpu);
		kvm_vcpu_block(vcpu);
		kvm_vcpu_srcu_read_lock(vcpu);
		return 1;
	case HW_EXIT_HYPERCALL:
		run->exit_reason = KVM_EXIT_HYPERCALL;
		return 0;
	default:		/* kick, timer */
		if (atomic_exchange(&hv->exit_requested, false)) {
			run->exit_reason = KVM_EXIT_INTR;
			return 0;
		}
		return 1;
	}
}

static int vcpu_enter_guest(struct hw_vcpu *hv, struct kvm_run *run)
{
	struct kvm_vcpu *vcpu = hv->vcpu;
	struct hw_exit exit = { .reason = HW_EXIT_NONE };
	int r;

	if (kvm_request_pending(vcpu)) {
		/* A soft-full dirty ring: the VMM harvests and resets first. */
		if (kvm_dirty_ring_check_request(vcpu)) {
			run->exit_reason = KVM_EXIT_DIRTY_RING_FULL;
			return 0;
		}
		service_requests(hv);
	}
	if (atomic_load(&vcpu->kvm->vm_dead))
		return -EIO;
	r = kvm_mmu_reload(vcpu);
	if (r)
		return r;
	/* A new root: nothing cached from the old one may be used. */
	if (hv->tlb_root != vcpu_x86(vcpu)->mmu.root_pfn) {
		hw_tlb_flush(hv);
		hv->tlb_root = vcpu_x86(vcpu)->mmu.root_pfn;
	}
	vcpu_load_cpu(vcpu);
	/* Hardware virtualization must be on while guest code runs. */
	UKVM_INVARIANT(kvm_usage_count_read() > 0, "KVM_RUN with virtualization disabled");

	atomic_store(&vcpu->mode, IN_GUEST_MODE);
	kvm_vcpu_srcu_read_unlock(vcpu);
	RACE_POINT(VCPU_ENTERING);
	/*
	 * Full barrier (seq_cst): IN_GUEST_MODE is visible before we read the
	 * requests, pairing with the requester's bit-then-mode.
	 */
	if (atomic_load(&vcpu->mode) == EXITING_GUEST_MODE ||
	    kvm_request_pending(vcpu) || atomic_load(&hv->exit_requested)) {
		/*
		 * Backing out is an exit too: a WAIT requester that saw
		 * IN_GUEST_MODE may already sleep on the exit epoch, and we may
		 * now leave KVM_RUN and not enter again for a long time.
		 */
		kvm_vcpu_guest_exit(vcpu);
		kvm_vcpu_srcu_read_lock(vcpu);
		if (atomic_exchange(&hv->exit_requested, false)) {
			run->exit_reason = KVM_EXIT_INTR;
			return 0;
		}
		return 1;
	}
	/* After IN_GUEST_MODE: a later post sees it and notifies (kicks). */
	sync_posted_interrupts(hv);

	hw_run_guest(hv, &exit);

	kvm_vcpu_guest_exit(vcpu);
	kvm_vcpu_srcu_read_lock(vcpu);
	return handle_exit(hv, &exit, run);
}

int ukvm_vcpu_run(struct kvm_vcpu *vcpu, struct kvm_run *run)
{
	struct hw_vcpu *hv;
	int r;

	if (!vcpu || !run)
		return -EFAULT;
	hv = vcpu->run_state;
	if (!hv || !hv->ops)
		return -ENOEXEC;
	r = kvm_vcpu_ioctl_begin(vcpu);
	if (r)
		return r;
	/* Complete an MMIO read with the data the VMM put in run->mmio. */
	if (hv->mmio_read_pending) {
		memcpy(&hv->pending.value, run->mmio.data, sizeof(hv->pending.value));
		hv->mmio_read_pending = false;
		hv->have_pending = false;
		hv->ops->complete(hv->ctx, &hv->pending);
	}
	run->exit_reason = KVM_EXIT_UNKNOWN;

	kvm_vcpu_srcu_read_lock(vcpu);
	do {
		r = vcpu_enter_guest(hv, run);
	} while (r > 0);
	kvm_vcpu_srcu_read_unlock(vcpu);
	kvm_vcpu_ioctl_end(vcpu);
	return r;
}
