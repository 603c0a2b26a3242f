/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the src/kvm tests: a small host (physical memory, CPUs), the
 * generic KVM core loaded without an architecture (no secondary MMU: the
 * memslot, notifier, request and enabling protocols run alone), VM
 * creation, and memslot snapshots for "state unchanged" checks.  Tests end
 * with assert_nothing_reported() (sync_test.h).
 */
#ifndef UKVM_TESTS_KVM_TEST_H
#define UKVM_TESTS_KVM_TEST_H

#include "../sync/sync_test.h"

#include "host/host.h"
#include "kvm/kvm_internal.h"
#include "sync/bug.h"
#include "ukvm/ukvm.h"

#define KT_MEM		(64UL << 20)
#define KT_CPUS		4

/* cmocka group setup/teardown: host + generic KVM core. */
int kt_group_setup(void **state);
int kt_group_teardown(void **state);

struct kvm *kt_create_vm(void);

/* ukvm_set_user_memory_region() with the fields spelled out. */
int kt_set_region(struct kvm *kvm, uint32_t slot, uint32_t flags, uint64_t gpa,
		  uint64_t size, uint64_t hva);

/* A canonical description of every memslot of every address space. */
struct kt_snapshot {
	int n;
	uint64_t gen[KVM_ADDRESS_SPACE_NUM];
	struct kt_slot {
		int as, id;
		uint64_t base, npages, hva;
		uint32_t flags;
	} *slots;
};
void kt_snapshot(struct kvm *kvm, struct kt_snapshot *s);
bool kt_snapshot_equal(const struct kt_snapshot *a, const struct kt_snapshot *b);
void kt_snapshot_free(struct kt_snapshot *s);

/* Both sets of every address space index the same slots, trees sound. */
void kt_assert_sets_consistent(struct kvm *kvm);

#endif /* UKVM_TESTS_KVM_TEST_H */
