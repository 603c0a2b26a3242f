/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the x86 MMU + simulated CPU tests: the full stack (host, the
 * x86 "module", a VM with memslots over host memory, vCPUs running scripted
 * guest programs) and checks of guest data through the host mapping.  Tests
 * end with assert_nothing_reported() (sync_test.h).
 */
#ifndef UKVM_TESTS_MMU_TEST_H
#define UKVM_TESTS_MMU_TEST_H

#include "../sync/sync_test.h"

#include "guest/guest.h"
#include "host/host.h"
#include "hw/hw.h"
#include "kvm/kvm_internal.h"
#include "sync/bug.h"
#include "sync/race.h"
#include "ukvm/ukvm.h"
#include "x86/mmu/mmu.h"
#include "x86/mmu/tdp_mmu.h"

#define MT_MEM		(256UL << 20)
#define MT_CPUS		2

int mt_group_setup(void **state);
int mt_group_teardown(void **state);

/* A VM with one memslot of @size bytes at @gpa over fresh host memory. */
struct mt_vm {
	struct kvm *kvm;
	unsigned long hva;
	uint64_t gpa, size;
	uint32_t slot_flags;
};
void mt_vm_create(struct mt_vm *vm, const struct ukvm_vm_config *cfg,
		  uint64_t gpa, uint64_t size, unsigned int map_flags,
		  uint32_t slot_flags);
void mt_vm_destroy(struct mt_vm *vm);
int mt_set_slot_flags(struct mt_vm *vm, uint32_t flags);
/* KVM_ENABLE_CAP with args[0] = @arg0. */
int mt_enable_cap(struct kvm *kvm, uint32_t capability, uint64_t arg0, uint32_t flags);

/*
 * A scripted guest: a list of accesses executed in order; the vCPU exits
 * with KVM_EXIT_HYPERCALL after the last one.
 */
struct mt_script {
	struct ukvm_guest_access *ops;
	int n, next;
	uint64_t last_read;
};
extern const struct ukvm_guest_ops mt_script_ops;
/* Run a vCPU until the script is done; returns the KVM_RUN result. */
int mt_run_script(struct kvm_vcpu *vcpu, struct mt_script *s, struct kvm_run *run);
/* Run a single access to completion (faults handled); returns KVM_RUN's result. */
int mt_access(struct kvm_vcpu *vcpu, uint64_t gpa, uint8_t type, uint64_t *value);

/*
 * The loop of a vCPU thread: @ops/@ctx become its guest, then KVM_RUN until
 * the guest is done (KVM_EXIT_HYPERCALL); every other exit goes to @on_exit.
 * A failing call is a thread failure (T_CHECK); a failing KVM_RUN ends it.
 */
void mt_vcpu_loop(struct kvm_vcpu *vcpu, const struct ukvm_guest_ops *ops, void *ctx,
		  void (*on_exit)(const struct kvm_run *run, void *arg), void *arg);

/*
 * The end of a src/guest workload's run: every page read back through @read
 * holds the last tag written and its pattern, no read saw a wrong value and
 * every write appeared in a dirty log.  *@res and *@gs for further checks.
 */
void mt_assert_guest_verified(struct guest_workload *w, guest_read64_fn read, void *arg,
			      struct guest_verify_result *res, struct guest_stats *gs);

/* Guest memory as the VMM sees it (through the host mapping). */
uint64_t mt_host_read64(struct mt_vm *vm, uint64_t gpa);

/* The SPTE mapping @gpa (leaf, or the last one on the walk). */
uint64_t mt_spte(struct kvm_vcpu *vcpu, uint64_t gpa, int *level);

/*
 * The VMM's side of a vCPU's dirty ring: from *@fetch on, copy out up to
 * @max entries while DIRTY (load-acquire), handing each back with a
 * store-release of RESET.  Returns the number copied, -1 if no ring.
 */
int mt_ring_harvest(struct kvm_vcpu *vcpu, uint32_t *fetch, struct kvm_dirty_gfn *out,
		    int max);

#endif /* UKVM_TESTS_MMU_TEST_H */
