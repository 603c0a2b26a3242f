/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the x86 MMU + simulated CPU tests: the full stack (host, the
 * x86 "module", a VM with memslots over host memory, vCPUs running scripted
 * guest programs) and checks of guest data through the host mapping.
 */
#ifndef UKVM_TESTS_MMU_TEST_H
#define UKVM_TESTS_MMU_TEST_H

#include "../sync/sync_test.h"

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

#define mt_assert_clean()                                                     \
	do {                                                                  \
		assert_int_equal(lockdep_report_count(), 0);                  \
		assert_int_equal(lockdep_warning_count(), 0);                 \
		assert_int_equal(ukvm_invariant_failures(), 0);               \
		assert_no_thread_failures();                                  \
	} while (0)

#endif /* UKVM_TESTS_MMU_TEST_H */
