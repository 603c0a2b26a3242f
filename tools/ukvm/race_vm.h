/* SPDX-License-Identifier: MIT */
/*
 * The machine state of one `ukvm race` scenario: a VM with a memslot over
 * fresh host memory, one vCPU, and its guest — src/guest's memstress program
 * on one page P, so every write stores a tag and remembers its dirty-log
 * round window, and the checks that guard real runs (the dirty-round check,
 * the final verification through the host mapping) judge the scenario too.
 * Each KVM_RUN executes a given number of guest accesses, then exits.
 */
#ifndef UKVM_TOOLS_RACE_VM_H
#define UKVM_TOOLS_RACE_VM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest/guest.h"
#include "ukvm/ukvm.h"

struct kvm;
struct kvm_vcpu;

struct race_vm {
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	unsigned long hva;		/* slot 0's host memory */
	uint64_t gpa, npages;		/* slot 0 */
	uint32_t flags;
	unsigned long *bitmap;		/* GET_DIRTY_LOG buffer for slot 0 */

	/* The guest: tagged writes to one page (guest_gpa). */
	struct guest_workload *w;
	uint64_t guest_gpa;
	_Atomic int budget;		/* accesses left in this KVM_RUN */
	_Atomic uint64_t completed;	/* accesses done so far */
	bool tracking;			/* dirty-round tracking started */
};

/* VM + slot 0 (@npages at @gpa, @flags) + vCPU 0; 0 or -errno. */
int race_vm_create(struct race_vm *vm, const struct ukvm_vm_config *cfg,
		   uint64_t gpa, uint64_t npages, uint32_t flags);
void race_vm_destroy(struct race_vm *vm);

/* The guest writes page @page_gpa (which may lie in any memslot). */
int race_vm_set_guest(struct race_vm *vm, uint64_t page_gpa);
/* KVM_RUN until the guest did @n more accesses (or was kicked out). */
int race_vm_run(struct race_vm *vm, int n, uint32_t *exit_reason);
/* From now on, every completed write must show up in a later dirty log. */
void race_vm_track_dirty(struct race_vm *vm);
/*
 * One round of the VMM's dirty-log loop over slot 0: close the round,
 * GET_DIRTY_LOG, record it, check it.  *@logged: P was in the log;
 * *@missed: the guest writes the check found missing.
 */
int race_vm_get_log(struct race_vm *vm, bool *logged, uint64_t *missed);
/* Read P through the host mapping and compare with the guest's tags. */
int race_vm_verify(struct race_vm *vm, struct guest_verify_result *res);

/* The SPTE that maps @gpa for the vCPU (0 if none); the vCPU must be idle. */
uint64_t race_vm_spte(struct race_vm *vm, uint64_t gpa);
/* "W A D"-style description of an SPTE, in @buf. */
const char *race_spte_str(uint64_t spte, char *buf, size_t len);

/* The VMM side of a memslot: KVM_SET_USER_MEMORY_REGION. */
int race_set_slot(struct kvm *kvm, int slot, uint64_t gpa, uint64_t size,
		  unsigned long hva, uint32_t flags);

#endif /* UKVM_TOOLS_RACE_VM_H */
