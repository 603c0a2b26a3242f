/* SPDX-License-Identifier: MIT */
/* Shared by the mmu-unsync tests (test_mmu_unsync.c, test_mmu_unsync_race.c). */
#ifndef UKVM_TESTS_UNSYNC_TEST_H
#define UKVM_TESTS_UNSYNC_TEST_H

#include "mmu_test.h"

#define GPA	(1ULL << 30)
#define SZ	(4UL << 20)
#define GFN0	(GPA >> 12)

#define STAT(kvm, f)	atomic_load(&kvm_x86(kvm)->stat.f)
#define NR_SHADOW(kvm)	atomic_load(&kvm_x86(kvm)->indirect_shadow_pages)

static inline uint64_t gpa_of(gfn_t gfn)
{
	return gfn << 12;
}

static inline void write64(struct kvm_vcpu *vcpu, uint64_t gpa, uint64_t v)
{
	assert_int_equal(mt_access(vcpu, gpa, UKVM_ACCESS_WRITE, &v), 0);
}

/* H M W of the leaf mapping @gfn: "1 0 0" is the shadowed state. */
static inline void assert_protected(struct kvm_vcpu *vcpu, gfn_t gfn)
{
	uint64_t spte = mt_spte(vcpu, gpa_of(gfn), NULL);

	assert_true(is_shadow_present_pte(spte));
	assert_true(is_host_writable_spte(spte));
	assert_false(is_mmu_writable_spte(spte));
	assert_false(is_writable_pte(spte));
}

static inline void assert_writable(struct kvm_vcpu *vcpu, gfn_t gfn)
{
	uint64_t spte = mt_spte(vcpu, gpa_of(gfn), NULL);

	assert_true(is_shadow_present_pte(spte));
	assert_true(is_writable_pte(spte) && is_mmu_writable_spte(spte));
}


#endif /* UKVM_TESTS_UNSYNC_TEST_H */
