// SPDX-License-Identifier: MIT
/*
 * KVM_SET_USER_MEMORY_REGION semantics: every errno case (and the state is
 * unchanged after each), CREATE / DELETE / MOVE / FLAGS_ONLY effects and
 * generations, the slot-id limit, and the lookup structures (id hash, gfn
 * tree, hva interval tree) against brute force under random operations.
 */
#include <errno.h>
#include <stdlib.h>

#include "kvm_test.h"

#define MB (1UL << 20)
#define HVA_BASE 0x7f0000000000UL	/* never dereferenced: slots are not faulted */

/* Expect @expr to fail with @err and leave every memslot unchanged. */
#define EXPECT_ERR_UNCHANGED(kvm, err, expr)                                  \
	do {                                                                  \
		struct kt_snapshot __b, __a;                                  \
		kt_snapshot((kvm), &__b);                                     \
		int __r = (expr);                                             \
		if (__r != (err))                                             \
			fail_msg("%s returned %d, expected %d", #expr, __r, (err)); \
		kt_snapshot((kvm), &__a);                                     \
		if (!kt_snapshot_equal(&__b, &__a))                           \
			fail_msg("%s changed the memslots", #expr);           \
		kt_snapshot_free(&__b);                                       \
		kt_snapshot_free(&__a);                                       \
	} while (0)

static void test_errno_cases(void **state)
{
	struct kvm *kvm = kt_create_vm();
	const uint64_t top = (1UL << 47) - 4096;	/* TASK_SIZE_MAX */

	(void)state;
	/* A baseline slot so that "unchanged" means something. */
	assert_int_equal(kt_set_region(kvm, 0, 0, 0, 2 * MB, HVA_BASE), 0);

	/* slot id past the user range (the ioctl's own check) */
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, KVM_USER_MEM_SLOTS, 0, 16 * MB, MB, HVA_BASE));
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 0xffff, 0, 16 * MB, MB, HVA_BASE));
	/* unknown flags (bit 2 is guest_memfd, not offered; bit 16 is internal) */
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, 1u << 2, 16 * MB, MB, HVA_BASE));
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, KVM_MEMSLOT_INVALID, 16 * MB, MB, HVA_BASE));
	/* alignment of size, gpa, hva */
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, 0, 16 * MB, MB + 1, HVA_BASE));
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, 0, 16 * MB + 8, MB, HVA_BASE));
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, 0, 16 * MB, MB, HVA_BASE + 2048));
	/* hva range outside the user half, or wrapping */
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, 0, 16 * MB, 2 * 4096, top - 4096));
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, 0, 16 * MB, MB, ~0ULL & ~4095ULL));
	/* address space id past the last one */
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, (KVM_ADDRESS_SPACE_NUM << 16) | 1, 0, 16 * MB, MB,
			      HVA_BASE));
	/* gpa + size wraps */
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, 0, ~0ULL & ~4095ULL, 2 * 4096, HVA_BASE));
	/* more than KVM_MEM_MAX_NR_PAGES pages */
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, 0, 1ULL << 45, (KVM_MEM_MAX_NR_PAGES + 1) << 12,
			      HVA_BASE));
	/* delete of a slot that does not exist */
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 7, 0, 16 * MB, 0, HVA_BASE));
	/* overlap with another slot of the same address space: create, then move */
	EXPECT_ERR_UNCHANGED(kvm, -EEXIST,
		kt_set_region(kvm, 1, 0, MB, 2 * MB, HVA_BASE + 64 * MB));
	assert_int_equal(kt_set_region(kvm, 1, 0, 16 * MB, 2 * MB, HVA_BASE + 64 * MB), 0);
	EXPECT_ERR_UNCHANGED(kvm, -EEXIST,
		kt_set_region(kvm, 1, 0, MB, 2 * MB, HVA_BASE + 64 * MB));
	/* an existing slot cannot change size, hva, or READONLY */
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, 0, 16 * MB, 4 * MB, HVA_BASE + 64 * MB));
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, 0, 16 * MB, 2 * MB, HVA_BASE + 96 * MB));
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, 1, KVM_MEM_READONLY, 16 * MB, 2 * MB,
			      HVA_BASE + 64 * MB));
	/* identical: success, nothing changes (not even the generation) */
	EXPECT_ERR_UNCHANGED(kvm, 0,
		kt_set_region(kvm, 1, 0, 16 * MB, 2 * MB, HVA_BASE + 64 * MB));
	/* the other address space may overlap */
	assert_int_equal(kt_set_region(kvm, (1 << 16) | 1, 0, MB, 2 * MB,
				       HVA_BASE + 128 * MB), 0);
	/* enable_cap with bad options changes nothing either */
	{
		struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };

		cap.args[0] = 1u << 5;
		assert_int_equal(ukvm_enable_cap(kvm, &cap), -EINVAL);
		cap.args[0] = 0;
		cap.flags = 1;
		assert_int_equal(ukvm_enable_cap(kvm, &cap), -EINVAL);
		assert_int_equal(kvm->manual_dirty_log_protect, 0);
	}

	kt_assert_sets_consistent(kvm);
	ukvm_destroy_vm(kvm);
	assert_nothing_reported();
}

static void test_operations(void **state)
{
	struct kvm *kvm = kt_create_vm();
	struct kvm_memory_slot *s;
	uint64_t gen;
	unsigned long *bitmap;

	(void)state;
	mutex_lock(&kvm->slots_lock);
	gen = kvm_memslots_gen(kvm_memslots(kvm));
	mutex_unlock(&kvm->slots_lock);
	assert_int_equal(gen, 0);

	/* CREATE: one swap, generation + number of address spaces */
	assert_int_equal(kt_set_region(kvm, 3, 0, 8 * MB, 4 * MB, HVA_BASE), 0);
	mutex_lock(&kvm->slots_lock);
	s = id_to_memslot(kvm_memslots(kvm), 3);
	assert_non_null(s);
	assert_int_equal(s->base_gfn, (8 * MB) >> 12);
	assert_int_equal(s->npages, (4 * MB) >> 12);
	assert_null(s->dirty_bitmap);
	assert_int_equal(kvm_memslots_gen(kvm_memslots(kvm)), gen + 2);
	assert_int_equal(kvm->nr_memslot_pages, 1024);
	mutex_unlock(&kvm->slots_lock);

	/* FLAGS_ONLY: dirty logging on allocates the bitmap, one swap */
	assert_int_equal(kt_set_region(kvm, 3, KVM_MEM_LOG_DIRTY_PAGES, 8 * MB,
				       4 * MB, HVA_BASE), 0);
	mutex_lock(&kvm->slots_lock);
	s = id_to_memslot(kvm_memslots(kvm), 3);
	assert_non_null(s->dirty_bitmap);
	bitmap = s->dirty_bitmap;
	assert_int_equal(kvm->nr_memslots_dirty_logging, 1);
	assert_int_equal(kvm_memslots_gen(kvm_memslots(kvm)), gen + 4);
	mutex_unlock(&kvm->slots_lock);

	/* MOVE: the bitmap is reused, two swaps (invalidate, then commit) */
	assert_int_equal(kt_set_region(kvm, 3, KVM_MEM_LOG_DIRTY_PAGES, 64 * MB,
				       4 * MB, HVA_BASE), 0);
	mutex_lock(&kvm->slots_lock);
	s = id_to_memslot(kvm_memslots(kvm), 3);
	assert_int_equal(s->base_gfn, (64 * MB) >> 12);
	assert_ptr_equal(s->dirty_bitmap, bitmap);
	assert_null(search_memslots(kvm_memslots(kvm), (8 * MB) >> 12, false));
	assert_ptr_equal(search_memslots(kvm_memslots(kvm), (64 * MB) >> 12, false), s);
	assert_int_equal(kvm_memslots_gen(kvm_memslots(kvm)), gen + 8);
	mutex_unlock(&kvm->slots_lock);

	/* FLAGS_ONLY off frees the bitmap */
	assert_int_equal(kt_set_region(kvm, 3, 0, 64 * MB, 4 * MB, HVA_BASE), 0);
	mutex_lock(&kvm->slots_lock);
	assert_null(id_to_memslot(kvm_memslots(kvm), 3)->dirty_bitmap);
	assert_int_equal(kvm->nr_memslots_dirty_logging, 0);
	mutex_unlock(&kvm->slots_lock);

	/* DELETE: two swaps, the pages leave the total */
	assert_int_equal(kt_set_region(kvm, 3, 0, 64 * MB, 0, HVA_BASE), 0);
	mutex_lock(&kvm->slots_lock);
	assert_null(id_to_memslot(kvm_memslots(kvm), 3));
	assert_int_equal(kvm->nr_memslot_pages, 0);
	assert_int_equal(kvm_memslots_gen(kvm_memslots(kvm)), gen + 14);
	mutex_unlock(&kvm->slots_lock);

	/* KVM_DIRTY_LOG_INITIALLY_SET: a new logged slot starts all dirty */
	{
		struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };

		cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
			      KVM_DIRTY_LOG_INITIALLY_SET;
		assert_int_equal(ukvm_enable_cap(kvm, &cap), 0);
		assert_int_equal(kt_set_region(kvm, 4, KVM_MEM_LOG_DIRTY_PAGES, 0,
					       100 * 4096, HVA_BASE), 0);
		mutex_lock(&kvm->slots_lock);
		s = id_to_memslot(kvm_memslots(kvm), 4);
		assert_int_equal(s->dirty_bitmap[0], ~0UL);
		/* 100 pages: bits 64..99 of word 1, nothing past the end */
		assert_int_equal(s->dirty_bitmap[1], (1UL << 36) - 1);
		mutex_unlock(&kvm->slots_lock);
	}

	kt_assert_sets_consistent(kvm);
	ukvm_destroy_vm(kvm);
	assert_nothing_reported();
}

static void test_max_slots(void **state)
{
	struct kvm *kvm = kt_create_vm();

	(void)state;
	/* Every user slot id, one page each, then one more is refused. */
	for (uint32_t id = 0; id < KVM_USER_MEM_SLOTS; id++)
		assert_int_equal(kt_set_region(kvm, id, 0, (uint64_t)id << 12, 4096,
					       HVA_BASE + ((uint64_t)id << 12)), 0);
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL,
		kt_set_region(kvm, KVM_USER_MEM_SLOTS, 0, 1ULL << 32, 4096, HVA_BASE));
	mutex_lock(&kvm->slots_lock);
	assert_int_equal(kvm_memslots_count(kvm_memslots(kvm)), KVM_USER_MEM_SLOTS);
	mutex_unlock(&kvm->slots_lock);
	/* Internal slots live above the user range. */
	mutex_lock(&kvm->slots_lock);
	{
		struct kvm_userspace_memory_region m = {
			.slot = KVM_USER_MEM_SLOTS, .guest_phys_addr = 1ULL << 32,
			.memory_size = 4096, .userspace_addr = HVA_BASE };
		assert_int_equal(kvm_set_internal_memslot(kvm, &m), 0);
	}
	mutex_unlock(&kvm->slots_lock);
	kt_assert_sets_consistent(kvm);
	ukvm_destroy_vm(kvm);
	assert_nothing_reported();
}

/*
 * Disagreements with the real KVM found by `ukvm diff-kvm`, and the host
 * parameters a VM can be given to match it (docs/diff-kvm.md).
 */
static void test_diff_kvm_regressions(void **state)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };
	struct kvm_clear_dirty_log clear = { .slot = 0 };
	struct ukvm_vm_config cfg = { 0 };
	struct kvm_dirty_log get = { 0 };
	unsigned long bitmap[2] = { 0 };
	struct kvm *kvm = kt_create_vm();

	(void)state;
	/* INITIALLY_SET only with MANUAL_PROTECT_ENABLE (KVM: -EINVAL). */
	cap.args[0] = KVM_DIRTY_LOG_INITIALLY_SET;
	assert_int_equal(ukvm_enable_cap(kvm, &cap), -EINVAL);
	cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET;
	assert_int_equal(ukvm_enable_cap(kvm, &cap), 0);
	cap.args[0] = 0;
	assert_int_equal(ukvm_enable_cap(kvm, &cap), 0);
	cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
	assert_int_equal(ukvm_enable_cap(kvm, &cap), 0);

	/* CLEAR_DIRTY_LOG of 0 pages copies nothing: no -EFAULT for NULL. */
	assert_int_equal(kt_set_region(kvm, 0, KVM_MEM_LOG_DIRTY_PAGES, 0, 128 * 4096,
				       HVA_BASE), 0);
	clear.first_page = 64;
	clear.num_pages = 0;
	assert_int_equal(ukvm_clear_dirty_log(kvm, &clear), 0);
	clear.num_pages = 64;
	assert_int_equal(ukvm_clear_dirty_log(kvm, &clear), -EFAULT);
	clear.dirty_bitmap = bitmap;
	assert_int_equal(ukvm_clear_dirty_log(kvm, &clear), 0);
	ukvm_destroy_vm(kvm);

	/* Two address spaces by default (x86 with SMM). */
	kvm = kt_create_vm();
	assert_int_equal(ukvm_check_extension(kvm, KVM_CAP_MULTI_ADDRESS_SPACE), 2);
	assert_int_equal(kt_set_region(kvm, 1u << 16, 0, 0, 4096, HVA_BASE), 0);
	ukvm_destroy_vm(kvm);

	/* One, as on a kernel without SMM: the cap is 0, as_id 1 is refused. */
	cfg.nr_address_spaces = 1;
	assert_int_equal(ukvm_create_vm(&cfg, &kvm), 0);
	assert_int_equal(ukvm_check_extension(kvm, KVM_CAP_MULTI_ADDRESS_SPACE), 0);
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL, kt_set_region(kvm, 1u << 16, 0, 0, 4096, HVA_BASE));
	get.slot = 1u << 16;
	get.dirty_bitmap = bitmap;
	assert_int_equal(ukvm_get_dirty_log(kvm, &get), -EINVAL);
	ukvm_destroy_vm(kvm);

	/* The highest hva: TASK_SIZE_MAX by default, or the host's. */
	kvm = kt_create_vm();
	assert_int_equal(kt_set_region(kvm, 0, 0, 0, 4096, (1ULL << 47) - 8192), 0);
	ukvm_destroy_vm(kvm);
	cfg = (struct ukvm_vm_config){ .hva_limit = 1ULL << 40 };
	assert_int_equal(ukvm_create_vm(&cfg, &kvm), 0);
	assert_int_equal(kt_set_region(kvm, 0, 0, 0, 4096, (1ULL << 40) - 4096), 0);
	EXPECT_ERR_UNCHANGED(kvm, -EINVAL, kt_set_region(kvm, 1, 0, 1ULL << 20, 4096,
							 1ULL << 40));
	ukvm_destroy_vm(kvm);

	/* Parameters out of range. */
	cfg = (struct ukvm_vm_config){ .nr_address_spaces = KVM_ADDRESS_SPACE_NUM + 1 };
	assert_int_equal(ukvm_create_vm(&cfg, &kvm), -EINVAL);
	cfg = (struct ukvm_vm_config){ .hva_limit = (1ULL << 40) + 1 };
	assert_int_equal(ukvm_create_vm(&cfg, &kvm), -EINVAL);
	assert_nothing_reported();
}

/* Brute-force view of address space 0 for the random test. */
struct model_slot {
	bool used;
	uint64_t base, npages, hva;
};

static void check_hva_queries(struct kvm *kvm, struct model_slot *m, int nids,
			      unsigned int *seed)
{
	mutex_lock(&kvm->slots_lock);
	for (int q = 0; q < 64; q++) {
		uint64_t start = HVA_BASE + ((uint64_t)(rand_r(seed) % 512) << 12);
		uint64_t last = start + ((uint64_t)(rand_r(seed) % 64) << 12) + 4095;
		struct kvm_memory_slot *s;
		int expect = 0, got = 0;

		for (int id = 0; id < nids; id++)
			if (m[id].used && m[id].hva <= last &&
			    m[id].hva + (m[id].npages << 12) - 1 >= start)
				expect++;
		kvm_for_each_memslot_in_hva_range(s, kvm_memslots(kvm), start, last) {
			T_CHECK(m[s->id].used && m[s->id].hva <= last &&
				m[s->id].hva + (m[s->id].npages << 12) - 1 >= start);
			got++;
		}
		T_CHECK(got == expect);
	}
	mutex_unlock(&kvm->slots_lock);
}

static void test_random_ops(void **state)
{
	enum { NIDS = 48 };
	struct model_slot m[NIDS] = { 0 };
	struct kvm *kvm = kt_create_vm();
	unsigned int seed = 12345;

	(void)state;
	for (int iter = 0; iter < SCALE(3000); iter++) {
		int id = rand_r(&seed) % NIDS, r, expect;
		uint64_t npages = 1 + rand_r(&seed) % 32;
		/* gfn slots on a coarse grid so overlaps are frequent */
		uint64_t base = (uint64_t)(rand_r(&seed) % 256) * 8;
		/* hvas overlap on purpose (aliases are legal) */
		uint64_t hva = HVA_BASE + ((uint64_t)(rand_r(&seed) % 512) << 12);
		bool overlap = false;

		if (m[id].used && rand_r(&seed) % 3 == 0) {
			r = kt_set_region(kvm, (uint32_t)id, 0, 0, 0, m[id].hva);
			assert_int_equal(r, 0);
			m[id].used = false;
			continue;
		}
		if (m[id].used) {	/* a move */
			npages = m[id].npages;
			hva = m[id].hva;
		}
		for (int o = 0; o < NIDS; o++)
			if (o != id && m[o].used && base < m[o].base + m[o].npages &&
			    m[o].base < base + npages)
				overlap = true;
		expect = overlap ? -EEXIST : 0;
		r = kt_set_region(kvm, (uint32_t)id, 0, base << 12, npages << 12, hva);
		assert_int_equal(r, expect);
		if (!r)
			m[id] = (struct model_slot){ true, base, npages, hva };
		if (iter % 64 == 0) {
			kt_assert_sets_consistent(kvm);
			check_hva_queries(kvm, m, NIDS, &seed);
		}
	}
	kt_assert_sets_consistent(kvm);
	ukvm_destroy_vm(kvm);
	assert_nothing_reported();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errno_cases),
		cmocka_unit_test(test_operations),
		cmocka_unit_test(test_max_slots),
		cmocka_unit_test(test_random_ops),
		cmocka_unit_test(test_diff_kvm_regressions),
	};

	return cmocka_run_group_tests_name("kvm_memslot_api", tests,
					   kt_group_setup, kt_group_teardown);
}
