// SPDX-License-Identifier: MIT
/*
 * vCPU requests, kicks and remote TLB flushes (kvm-brief.md 8.3-8.5).
 *
 * The pairing that makes requests reliable: a requester sets the request bit
 * and then (full barrier) flips vcpu->mode from IN_GUEST_MODE to
 * EXITING_GUEST_MODE; the vCPU stores IN_GUEST_MODE and then (full barrier)
 * checks its requests before running guest code.  Either the vCPU sees the
 * bit, or the requester sees IN_GUEST_MODE and "sends the IPI".
 *
 * The IPI of the simulated CPU is EXITING_GUEST_MODE itself: src/hw checks
 * it between two guest accesses and leaves guest mode.  A WAIT request also
 * waits until every vCPU it found in guest mode has left it since the
 * request was made: each exit bumps vcpu->exit_epoch (and wakes waiters), so
 * after kvm_flush_remote_tlbs() returns no vCPU still runs guest code with a
 * translation older than the flush without a pending flush request.
 */
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvm/kvm_internal.h"
#include "sync/bug.h"
#include "sync/race.h"

static void futex_wait_u32(_Atomic uint32_t *addr, uint32_t val)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* Returns the mode the vCPU was in; flips IN_GUEST_MODE to EXITING. */
static int kvm_vcpu_exiting_guest_mode(struct kvm_vcpu *vcpu)
{
	int old = IN_GUEST_MODE;

	/* seq_cst: the request bit is ordered before reading the mode. */
	atomic_compare_exchange_strong(&vcpu->mode, &old, EXITING_GUEST_MODE);
	return old;
}

static bool kvm_request_needs_ipi(struct kvm_vcpu *vcpu, unsigned int req)
{
	int mode = kvm_vcpu_exiting_guest_mode(vcpu);

	/*
	 * A waiting request must also wait for a vCPU that is already leaving
	 * (EXITING) or doing a lockless walk; a plain one only needs to kick a
	 * vCPU that is running guest code and nobody kicked yet.
	 */
	if (req & KVM_REQUEST_WAIT)
		return mode != OUTSIDE_GUEST_MODE;
	return mode == IN_GUEST_MODE;
}

/* Called by the run loop right after the vCPU left guest mode. */
void kvm_vcpu_guest_exit(struct kvm_vcpu *vcpu)
{
	atomic_store_explicit(&vcpu->mode, OUTSIDE_GUEST_MODE, memory_order_release);
	atomic_fetch_add(&vcpu->exit_epoch, 1);
	/* Dekker with kvm_wait_for_guest_exit(): epoch, then waiters. */
	if (atomic_load(&vcpu->exit_waiters))
		futex_wake_all(&vcpu->exit_epoch);
}

/* Wait until @vcpu left guest mode after @epoch was read, or is outside. */
static void kvm_wait_for_guest_exit(struct kvm_vcpu *vcpu, uint32_t epoch)
{
	int spins = 0;

	for (;;) {
		uint32_t e = atomic_load(&vcpu->exit_epoch);

		if (e != epoch || atomic_load(&vcpu->mode) == OUTSIDE_GUEST_MODE)
			return;
		if (++spins < 64) {
			__builtin_ia32_pause();
			continue;
		}
		atomic_fetch_add(&vcpu->exit_waiters, 1);
		e = atomic_load(&vcpu->exit_epoch);
		if (e == epoch && atomic_load(&vcpu->mode) != OUTSIDE_GUEST_MODE)
			futex_wait_u32(&vcpu->exit_epoch, e);
		atomic_fetch_sub(&vcpu->exit_waiters, 1);
	}
}

/*
 * The vCPU is blocked (halted): wake it.  True if this call ended the halt.
 * Deciding and waking are one step, the exchange of @blocked: a waker that
 * saw the vCPU halted but came second (the vCPU woke by itself, or another
 * waker ended the halt) does nothing, instead of leaving a wake-up behind
 * that would end the vCPU's next halt at once.
 */
bool kvm_vcpu_wake_up(struct kvm_vcpu *vcpu)
{
	bool halted = true;

	if (!atomic_load(&vcpu->blocked))
		return false;
	RACE_POINT(VCPU_WAKING);
	if (!atomic_compare_exchange_strong(&vcpu->blocked, &halted, false))
		return false;
	rcuwait_wake_up(&vcpu->wait);
	atomic_fetch_add_explicit(&vcpu->stat.halt_wakeup, 1, memory_order_relaxed);
	return true;
}

/*
 * Sleep until a request or an event needs the vCPU (halt), or a waker
 * ends the halt (clearing @blocked).  What ends it must be visible to the
 * vCPU once it has stored @blocked: a kick that finds it not blocked yet
 * must leave a request (ukvm_vcpu_kick_exit(): KVM_REQ_UNBLOCK, KVM's
 * pending signal), or it is lost.
 */
void kvm_vcpu_block(struct kvm_vcpu *vcpu)
{
	struct kvm *kvm = vcpu->kvm;

	might_sleep();
	/* Before the condition is checked: see src/x86/mmu/posted_intr.c. */
	kvm_arch_call(kvm, vcpu_blocking, vcpu);
	RACE_POINT(VCPU_HALTING);
	atomic_store(&vcpu->blocked, true);
	/*
	 * Requests made with KVM_REQUEST_NO_WAKEUP (TLB flushes) do not end a
	 * halt: they are serviced before the next entry.  The store of
	 * @blocked above and the check of the wake-up requests below pair
	 * with kvm_vcpu_wake_up()'s request-then-check.
	 */
	rcuwait_wait_event(&vcpu->wait,
			   !atomic_load(&vcpu->blocked) ||
			   kvm_test_request(KVM_REQ_UNBLOCK, vcpu) ||
			   kvm_test_request(KVM_REQ_EVENT, vcpu) ||
			   (kvm_arch_has(kvm, vcpu_has_events) &&
			    kvm->arch_ops->vcpu_has_events(vcpu)) ||
			   atomic_load(&kvm->vm_dead));
	/* Woken by the condition: no waker may end this halt any more. */
	atomic_store(&vcpu->blocked, false);
	kvm_arch_call(kvm, vcpu_unblocking, vcpu);
	atomic_fetch_add_explicit(&vcpu->stat.blocks, 1, memory_order_relaxed);
}

void kvm_vcpu_kick(struct kvm_vcpu *vcpu)
{
	if (kvm_vcpu_wake_up(vcpu))
		return;
	/* The flip to EXITING_GUEST_MODE is the kick the guest loop sees. */
	kvm_vcpu_exiting_guest_mode(vcpu);
}

static bool __make_request(struct kvm_vcpu *vcpu, unsigned int req,
			   uint32_t *epoch)
{
	if (!(req & KVM_REQUEST_NO_ACTION))
		kvm_make_request((int)req, vcpu);
	if (!(req & KVM_REQUEST_NO_WAKEUP) && kvm_vcpu_wake_up(vcpu))
		return false;
	/* Snapshot after the bit: any later exit has seen the request. */
	*epoch = atomic_load(&vcpu->exit_epoch);
	return kvm_request_needs_ipi(vcpu, req);
}

bool kvm_make_vcpu_request(struct kvm_vcpu *vcpu, unsigned int req)
{
	uint32_t epoch;
	bool ipi = __make_request(vcpu, req, &epoch);

	if (ipi && (req & KVM_REQUEST_WAIT))
		kvm_wait_for_guest_exit(vcpu, epoch);
	return ipi;
}

bool kvm_make_all_cpus_request_except(struct kvm *kvm, unsigned int req,
				      struct kvm_vcpu *except)
{
	struct kvm_vcpu *targets[KVM_MAX_VCPUS];
	uint32_t epochs[KVM_MAX_VCPUS];
	struct kvm_vcpu *vcpu;
	int i, n = 0;
	bool called = false;

	kvm_for_each_vcpu(i, vcpu, kvm) {
		uint32_t epoch;

		if (vcpu == except)
			continue;
		if (__make_request(vcpu, req, &epoch)) {
			called = true;
			if (req & KVM_REQUEST_WAIT) {
				targets[n] = vcpu;
				epochs[n++] = epoch;
			}
		}
	}
	/* Like smp_call_function_many(wait): every IPI has been taken. */
	for (i = 0; i < n; i++)
		kvm_wait_for_guest_exit(targets[i], epochs[i]);
	return called;
}

bool kvm_make_all_cpus_request(struct kvm *kvm, unsigned int req)
{
	return kvm_make_all_cpus_request_except(kvm, req, NULL);
}

void kvm_flush_remote_tlbs(struct kvm *kvm)
{
	atomic_fetch_add_explicit(&kvm->stat.remote_tlb_flush_requests, 1,
				  memory_order_relaxed);
	/* Everything write-protected before this point is covered below. */
	atomic_store(&kvm->wrprot_unflushed, 0);
	/*
	 * The seq_cst operations of the request path order the SPTE changes
	 * made before this call before the reading of each vCPU's mode.
	 */
	kvm_make_all_cpus_request(kvm, KVM_REQ_TLB_FLUSH);
	atomic_fetch_add_explicit(&kvm->stat.remote_tlb_flush, 1,
				  memory_order_relaxed);
}

/* No ranged flush in the simulated TLB: a range flush is a full flush. */
void kvm_flush_remote_tlbs_range(struct kvm *kvm, gfn_t gfn, uint64_t nr_pages)
{
	(void)gfn;
	(void)nr_pages;
	kvm_flush_remote_tlbs(kvm);
}

void kvm_flush_remote_tlbs_memslot(struct kvm *kvm,
				   const struct kvm_memory_slot *slot)
{
	/* All flushers of a slot are serialised by slots_lock (6.6 rule 2). */
	lockdep_assert_held(&kvm->slots_lock);
	kvm_flush_remote_tlbs_range(kvm, slot->base_gfn, slot->npages);
}
