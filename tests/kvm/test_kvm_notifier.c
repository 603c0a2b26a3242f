// SPDX-License-Identifier: MIT
/*
 * MMU-notifier handlers against memslot updates (kvm-brief.md 3.3,
 * Appendix B invariants 3 and 4): host threads change hva -> pfn on random
 * ranges (each change bracketed by invalidate_range_start/_end) while the
 * VMM deletes, re-creates and moves the slots that cover them.  At the end
 * mmu_invalidate_in_progress and mn_active_invalidate_count are both 0, every
 * start had its end, and the validator reported nothing.
 */
#include <errno.h>
#include <stdlib.h>

#include "kvm_test.h"

#define REGION (16UL << 20)
#define NSLOTS 8
#define SLOT_SIZE (REGION / NSLOTS)

struct stress {
	struct kvm *kvm;
	unsigned long hva;
	_Atomic bool stop;
	_Atomic unsigned long host_ops, slot_ops;
};

static void *host_fn(void *arg)
{
	struct stress *st = arg;
	unsigned int seed = (unsigned int)(uintptr_t)&seed;

	while (!atomic_load(&st->stop)) {
		unsigned long page = (unsigned long)rand_r(&seed) % (REGION >> 12);
		unsigned long hva = st->hva + (page << 12);
		uint64_t v = page;

		switch (rand_r(&seed) % 5) {
		case 0:
			/* may run past the VMA's end: then it just fails */
			host_madvise_dontneed(host_current_mm, hva,
					      (size_t)(1 + rand_r(&seed) % 8) << 12);
			break;
		case 1:
			host_migrate_page(host_current_mm, hva);
			break;
		case 2:
			host_swap_out(host_current_mm, hva);
			break;
		case 3:
			host_clear_young(host_current_mm, hva, 64 << 12);
			break;
		default:	/* fault pages back in (COW, swap-in, ...) */
			T_CHECK(host_access(host_current_mm, hva, &v, sizeof(v), true) == 0);
			break;
		}
		atomic_fetch_add(&st->host_ops, 1);
	}
	return NULL;
}

static void test_notifiers_vs_memslot_updates(void **state)
{
	struct stress st = { .kvm = kt_create_vm() };
	unsigned int seed = 7;
	pthread_t host[2];
	long in_progress, active;

	(void)state;
	st.hva = host_mmap(host_current_mm, REGION, VM_READ | VM_WRITE);
	assert_false(IS_ERR_HVA(st.hva));
	for (int i = 0; i < NSLOTS; i++)
		assert_int_equal(kt_set_region(st.kvm, (uint32_t)i, 0,
					       (uint64_t)i * SLOT_SIZE, SLOT_SIZE,
					       st.hva + (uint64_t)i * SLOT_SIZE), 0);
	for (int i = 0; i < 2; i++)
		host[i] = start_thread("host-mm", host_fn, &st);

	/*
	 * At least SCALE(1500) memslot updates, and go on until the host threads
	 * have really invalidated covered ranges concurrently with them (no
	 * assumption about how fast either side runs).
	 */
	for (int iter = 0; iter < SCALE(1500) ||
	     atomic_load(&st.kvm->stat.mmu_notifier_start_found) < 100; iter++) {
		uint32_t id = (uint32_t)(rand_r(&seed) % NSLOTS);
		uint64_t hva = st.hva + (uint64_t)id * SLOT_SIZE;
		int r;

		/* Delete and re-create, or move out of place and back. */
		r = kt_set_region(st.kvm, id, 0, 0, 0, hva);
		assert_true(r == 0 || r == -EINVAL);
		r = kt_set_region(st.kvm, id, rand_r(&seed) % 2 ? KVM_MEM_LOG_DIRTY_PAGES : 0,
				  (uint64_t)(id + (rand_r(&seed) % 2 ? NSLOTS : 0)) * SLOT_SIZE,
				  SLOT_SIZE, hva);
		assert_int_equal(r, 0);
		atomic_fetch_add(&st.slot_ops, 1);
	}
	atomic_store(&st.stop, true);
	for (int i = 0; i < 2; i++)
		join_thread(host[i]);

	/* Appendix B invariant 3: everything balanced. */
	write_lock(&st.kvm->mmu_lock);
	in_progress = atomic_load(&st.kvm->mmu_invalidate_in_progress);
	write_unlock(&st.kvm->mmu_lock);
	spin_lock(&st.kvm->mn_invalidate_lock);
	active = st.kvm->mn_active_invalidate_count;
	spin_unlock(&st.kvm->mn_invalidate_lock);
	assert_int_equal(in_progress, 0);
	assert_int_equal(active, 0);
	assert_int_equal(atomic_load(&st.kvm->stat.mmu_notifier_start),
			 atomic_load(&st.kvm->stat.mmu_notifier_end));
	assert_true(atomic_load(&st.kvm->stat.mmu_notifier_start_found) > 0);
	assert_true(atomic_load(&st.host_ops) > 0);
	kt_assert_sets_consistent(st.kvm);

	ukvm_destroy_vm(st.kvm);
	assert_int_equal(host_munmap(host_current_mm, st.hva, REGION), 0);
	assert_nothing_reported();
}

/* mmu_invalidate_seq strictly increases with each end (invariant 4). */
static void test_sequence_and_range(void **state)
{
	struct kvm *kvm = kt_create_vm();
	unsigned long hva = host_mmap(host_current_mm, 1 << 20, VM_READ | VM_WRITE);
	unsigned long seq0;
	uint64_t v = 1;

	(void)state;
	assert_false(IS_ERR_HVA(hva));
	assert_int_equal(kt_set_region(kvm, 0, 0, 1ULL << 32, 1 << 20, hva), 0);
	assert_int_equal(host_access(host_current_mm, hva, &v, sizeof(v), true), 0);

	seq0 = atomic_load(&kvm->mmu_invalidate_seq);
	assert_int_equal(host_madvise_dontneed(host_current_mm, hva, 4096), 0);
	assert_int_equal(atomic_load(&kvm->mmu_invalidate_seq), seq0 + 1);
	assert_int_equal(atomic_load(&kvm->mmu_invalidate_in_progress), 0);
	/* The range is that of the last invalidation, in gfns of the slot. */
	assert_int_equal(atomic_load(&kvm->mmu_invalidate_range_start), 1ULL << 20);
	assert_int_equal(atomic_load(&kvm->mmu_invalidate_range_end), (1ULL << 20) + 1);

	/* No memslot over the range: no mmu_lock, no sequence change. */
	{
		unsigned long other = host_mmap(host_current_mm, 1 << 20,
						VM_READ | VM_WRITE);

		assert_int_equal(host_access(host_current_mm, other, &v, sizeof(v), true), 0);
		seq0 = atomic_load(&kvm->mmu_invalidate_seq);
		assert_int_equal(host_madvise_dontneed(host_current_mm, other, 4096), 0);
		assert_int_equal(atomic_load(&kvm->mmu_invalidate_seq), seq0);
		assert_int_equal(host_munmap(host_current_mm, other, 1 << 20), 0);
	}
	ukvm_destroy_vm(kvm);
	assert_int_equal(host_munmap(host_current_mm, hva, 1 << 20), 0);
	assert_nothing_reported();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequence_and_range),
		cmocka_unit_test(test_notifiers_vs_memslot_updates),
	};

	return cmocka_run_group_tests_name("kvm_notifier", tests,
					   kt_group_setup, kt_group_teardown);
}
