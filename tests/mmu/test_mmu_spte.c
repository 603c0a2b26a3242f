// SPDX-License-Identifier: MIT
/*
 * SPTE helpers (kvm-brief.md 5.1, 5.2, 5.4, 5.6): the bit layout,
 * make_spte() in each writable state, which SPTEs need atomic updates
 * (61d65f2d: Accessed alone does not), access tracking round trips, MMIO
 * SPTE generations, huge-page split children, and the writable-state
 * invariants (Appendix B 8).
 */
#include "mmu_test.h"

#define PFN 0x12345ULL

static uint64_t leaf(bool ad, bool w, bool mmu_w, bool host_w, bool a, bool d)
{
	uint64_t s = SPTE_MMU_PRESENT_MASK | VMX_EPT_READABLE_MASK |
		     VMX_EPT_EXECUTABLE_MASK | (PFN << 12);

	s |= ad ? SPTE_TDP_AD_ENABLED : SPTE_TDP_AD_DISABLED;
	s |= w ? VMX_EPT_WRITABLE_MASK : 0;
	s |= mmu_w ? EPT_SPTE_MMU_WRITABLE : 0;
	s |= host_w ? EPT_SPTE_HOST_WRITABLE : 0;
	s |= a ? VMX_EPT_ACCESS_BIT : 0;
	s |= d ? VMX_EPT_DIRTY_BIT : 0;
	return s;
}

static void test_layout(void **state)
{
	(void)state;
	/* The empty entry and the frozen value are not present for anyone. */
	assert_false(is_shadow_present_pte(SHADOW_NONPRESENT_VALUE));
	assert_false(is_shadow_present_pte(FROZEN_SPTE));
	assert_true(is_frozen_spte(FROZEN_SPTE));
	assert_int_equal(FROZEN_SPTE & VMX_EPT_RWX_MASK, 0);
	assert_int_equal(spte_to_pfn(FROZEN_SPTE), 0);	/* L1TF-safe: no pfn */
	/* Saved access-tracking bits overlap neither the A/D type nor W bits. */
	assert_int_equal(SHADOW_ACC_TRACK_SAVED_MASK & SPTE_TDP_AD_MASK, 0);
	assert_int_equal(SHADOW_ACC_TRACK_SAVED_MASK &
			 (EPT_SPTE_HOST_WRITABLE | EPT_SPTE_MMU_WRITABLE), 0);
	assert_int_equal(spte_to_pfn(leaf(true, true, true, true, true, true)), PFN);
	assert_true(is_last_spte(leaf(true, false, false, false, true, false), 1));
	assert_false(is_last_spte(make_nonleaf_spte(PFN, true), 2));
	assert_true(is_last_spte(leaf(true, 0, 0, 0, 1, 0) | PT_PAGE_SIZE_MASK, 2));
}

static void test_needs_atomic_update(void **state)
{
	(void)state;
	/* Write-protected but MMU-writable: the fast path may set W. */
	assert_true(spte_needs_atomic_update(leaf(true, false, true, true, true, true)));
	/* Writable, not yet Dirty: the CPU may set D. */
	assert_true(spte_needs_atomic_update(leaf(true, true, true, true, true, false)));
	/* Writable and Dirty, Accessed clear: only A may change - not enough. */
	assert_false(spte_needs_atomic_update(leaf(true, true, true, true, false, true)));
	/* Read-only for the host: nothing can change it locklessly... */
	assert_false(spte_needs_atomic_update(leaf(true, false, false, false, false, false)));
	/* ...unless A/D bits are off: aging and the fast path both touch it. */
	assert_true(spte_needs_atomic_update(leaf(false, false, false, false, false, false)));
	assert_true(spte_needs_atomic_update(leaf(false, true, true, true, false, false)));
}

static void test_writable_invariants(void **state)
{
	(void)state;
	assert_true(spte_writable_invariants_hold(leaf(true, true, true, true, 1, 1)));
	assert_true(spte_writable_invariants_hold(leaf(true, false, true, true, 1, 0)));
	assert_true(spte_writable_invariants_hold(leaf(true, false, false, true, 1, 0)));
	assert_true(spte_writable_invariants_hold(leaf(true, false, false, false, 1, 0)));
	/* W without MMU-writable, MMU-writable without host-writable: broken. */
	assert_false(spte_writable_invariants_hold(leaf(true, true, false, true, 1, 1)));
	assert_false(spte_writable_invariants_hold(leaf(true, false, true, false, 1, 0)));
}

static void test_access_tracking(void **state)
{
	uint64_t s = leaf(false, true, true, true, false, false);
	uint64_t t = mark_spte_for_access_track(s);

	(void)state;
	assert_true(is_access_track_spte(t));
	assert_true(is_shadow_present_pte(t));		/* still present for KVM */
	assert_int_equal(t & VMX_EPT_RWX_MASK, 0);	/* not for the CPU */
	assert_false(is_accessed_spte(t));
	/* Idempotent. */
	assert_int_equal(mark_spte_for_access_track(t), t);
	/* Restored: R and X back, W not (it was not saved). */
	s = restore_acc_track_spte(t);
	assert_true(s & VMX_EPT_READABLE_MASK);
	assert_true(s & VMX_EPT_EXECUTABLE_MASK);
	assert_false(is_writable_pte(s));
	assert_true(is_mmu_writable_spte(s));
	assert_int_equal(s & SHADOW_ACC_TRACK_SAVED_MASK, 0);
	/* With A/D bits, aging only clears Accessed. */
	s = leaf(true, true, true, true, true, true);
	assert_int_equal(mark_spte_for_access_track(s), s & ~VMX_EPT_ACCESS_BIT);
}

static void test_mmio_spte(void **state)
{
	(void)state;
	for (uint64_t gen = 0; gen < (1ULL << MMIO_SPTE_GEN_BITS); gen += 0x1234) {
		uint64_t s = make_mmio_spte(gen, 0xfee00);

		assert_true(is_mmio_spte(s));
		assert_false(is_shadow_present_pte(s));
		assert_int_equal(get_mmio_spte_gen(s), gen);
		assert_int_equal(get_mmio_spte_gfn(s), 0xfee00);
	}
	/* Only the low 19 bits are kept: a wrap aliases. */
	assert_int_equal(get_mmio_spte_gen(make_mmio_spte(1ULL << MMIO_SPTE_GEN_BITS, 1)), 0);
	assert_false(is_mmio_spte(SHADOW_NONPRESENT_VALUE));
	assert_false(is_mmio_spte(FROZEN_SPTE));
}

static void test_split_children(void **state)
{
	uint64_t huge = leaf(true, false, true, true, true, true) | PT_PAGE_SIZE_MASK;

	(void)state;
	huge = (huge & ~SPTE_BASE_ADDR_MASK) | ((0x40000ULL) << 12);	/* 2 MiB aligned */
	for (int i = 0; i < 512; i += 37) {
		uint64_t c = make_huge_page_split_spte(huge, PG_LEVEL_2M, i);

		assert_false(is_large_pte(c));
		assert_int_equal(spte_to_pfn(c), 0x40000 + (uint64_t)i);
		/* Same permissions and state, one level down. */
		assert_int_equal(c & ~SPTE_BASE_ADDR_MASK, huge & ~SPTE_BASE_ADDR_MASK & ~PT_PAGE_SIZE_MASK);
	}
	/* 1 GiB -> 2 MiB children stay huge. */
	huge |= PT_PAGE_SIZE_MASK;
	assert_true(is_large_pte(make_huge_page_split_spte(huge, PG_LEVEL_1G, 3)));
	assert_int_equal(spte_to_pfn(make_huge_page_split_spte(huge, PG_LEVEL_1G, 3)),
			 0x40000 + 3 * 512);
}

/*
 * make_spte() needs a vCPU and a slot for the dirty-log side effect, and
 * mmu_lock (it may mark shadow pages unsync).
 */
static void test_make_spte(void **state)
{
	struct mt_vm vm;
	struct kvm_vcpu *vcpu;
	struct kvm_memory_slot *slot;
	uint64_t s;
	int idx;

	(void)state;
	mt_vm_create(&vm, NULL, 1ULL << 30, 1 << 20, 0, KVM_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	idx = srcu_read_lock(&vm.kvm->srcu);
	slot = gfn_to_memslot(vm.kvm, (1ULL << 30) >> 12);
	assert_non_null(slot);
	read_lock(&vm.kvm->mmu_lock);

	/* Host-writable: writable, MMU-writable, Dirty preset, gfn logged. */
	make_spte(vcpu, PG_LEVEL_4K, ACC_ALL, slot->base_gfn + 3, PFN,
		  SHADOW_NONPRESENT_VALUE, false, true, true, slot, &s);
	assert_true(is_writable_pte(s) && is_mmu_writable_spte(s) && is_host_writable_spte(s));
	assert_true(s & VMX_EPT_DIRTY_BIT);
	assert_true(s & VMX_EPT_ACCESS_BIT);
	assert_true(__atomic_load_n(&slot->dirty_bitmap[0], __ATOMIC_RELAXED) & (1UL << 3));

	/* Not host-writable (read-only host mapping): 000. */
	make_spte(vcpu, PG_LEVEL_4K, ACC_ALL, slot->base_gfn + 4, PFN,
		  SHADOW_NONPRESENT_VALUE, false, false, true, slot, &s);
	assert_false(is_writable_pte(s) || is_mmu_writable_spte(s) || is_host_writable_spte(s));
	assert_false(__atomic_load_n(&slot->dirty_bitmap[0], __ATOMIC_RELAXED) & (1UL << 4));

	/* A/D disabled and a prefetch: created access-tracked. */
	make_spte(vcpu, PG_LEVEL_4K, ACC_ALL, slot->base_gfn + 5, PFN,
		  SHADOW_NONPRESENT_VALUE, true, true, false, NULL, &s);
	assert_true(is_access_track_spte(s));
	assert_false(spte_ad_enabled(s));

	/* Huge (outside a logged slot): the page-size bit. */
	make_spte(vcpu, PG_LEVEL_2M, ACC_ALL, 0, PFN & ~511ULL,
		  SHADOW_NONPRESENT_VALUE, false, true, true, NULL, &s);
	assert_true(is_large_pte(s));
	read_unlock(&vm.kvm->mmu_lock);
	srcu_read_unlock(&vm.kvm->srcu, idx);
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_needs_atomic_update),
		cmocka_unit_test(test_writable_invariants),
		cmocka_unit_test(test_access_tracking),
		cmocka_unit_test(test_mmio_spte),
		cmocka_unit_test(test_split_children),
		cmocka_unit_test(test_make_spte),
	};

	return cmocka_run_group_tests_name("mmu_spte", tests,
					   mt_group_setup, mt_group_teardown);
}
