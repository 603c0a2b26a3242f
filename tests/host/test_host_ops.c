// SPDX-License-Identifier: MIT
/*
 * mm operations that change hva -> pfn behind KVM's back: page migration
 * (and its pin check), swap out/in, KSM merge and copy-on-write of the merged
 * frame, aging -- each with the notifier calls a secondary MMU must see.
 */
#include <pthread.h>

#include "host_test.h"

#define MM host_current_mm

static unsigned long map_filled(unsigned long pages, uint64_t seed)
{
	unsigned long hva = host_mmap(MM, pages * PAGE_SIZE, VM_READ | VM_WRITE);

	assert_false(IS_ERR_HVA(hva));
	for (unsigned long i = 0; i < pages; i++)
		for (unsigned int off = 0; off < PAGE_SIZE; off += 512)
			put64(MM, hva + i * PAGE_SIZE + off, seed + i * 1000 + off);
	return hva;
}

static void check_filled(unsigned long hva, unsigned long i, uint64_t seed)
{
	for (unsigned int off = 0; off < PAGE_SIZE; off += 512)
		assert_int_equal(get64(MM, hva + i * PAGE_SIZE + off),
				 seed + i * 1000 + off);
}

static void test_migrate(void **state)
{
	unsigned long hva = map_filled(2, 7), pfn, pfn2, before;
	struct host_mm_stats st;
	struct test_notifier tn;
	uint64_t pte;

	(void)state;
	pfn = pfn_of(MM, hva + PAGE_SIZE);
	pte = raw_pte(MM, hva + PAGE_SIZE);
	before = free_frames();
	test_notifier_register(&tn, MM);

	assert_int_equal(host_migrate_page(MM, hva + PAGE_SIZE + 100), 0);
	assert_int_equal(atomic_load(&tn.starts), 1);
	assert_int_equal(atomic_load(&tn.ends), 1);
	assert_int_equal(atomic_load(&tn.last_event), MMU_NOTIFY_MIGRATE);
	assert_int_equal(atomic_load(&tn.last_start), hva + PAGE_SIZE);
	assert_int_equal(atomic_load(&tn.last_end), hva + 2 * PAGE_SIZE);
	pfn2 = pfn_of(MM, hva + PAGE_SIZE);
	assert_true(pfn2 != pfn);
	/* Same permission and dirty bits on the new frame. */
	assert_int_equal(raw_pte(MM, hva + PAGE_SIZE) & HPTE_PERM, pte & HPTE_PERM);
	check_filled(hva, 1, 7);
	check_filled(hva, 0, 7);
	assert_int_equal(free_frames(), before);
	assert_int_equal(page_count(pfn_to_page(pfn)), 0);	/* freed */
	host_mm_get_stats(MM, &st);
	assert_int_equal(st.migrations, 1);

	/* A pinned page (a get_user_pages reference) is not migrated. */
	assert_int_equal(hva_to_pfn(MM, hva, 0, &pfn, NULL), 0);
	assert_int_equal(host_migrate_page(MM, hva), -EAGAIN);
	assert_int_equal(atomic_load(&tn.starts), 2);
	assert_int_equal(atomic_load(&tn.ends), 2);
	assert_int_equal(pfn_of(MM, hva), pfn);
	check_filled(hva, 0, 7);
	assert_true(raw_pte(MM, hva) & HPTE_WRITE);
	host_mm_get_stats(MM, &st);
	assert_int_equal(st.pinned_aborts, 1);
	put_page(pfn_to_page(pfn));
	assert_int_equal(host_migrate_page(MM, hva), 0);
	assert_true(pfn_of(MM, hva) != pfn);

	/* Nothing to migrate: none, the zero frame, no VMA. */
	assert_int_equal(host_madvise_dontneed(MM, hva, PAGE_SIZE), 0);
	assert_int_equal(host_migrate_page(MM, hva), -ENOENT);
	assert_int_equal(get64(MM, hva), 0);
	assert_int_equal(host_migrate_page(MM, hva), -ENOENT);
	assert_int_equal(host_migrate_page(MM, hva - PAGE_SIZE), -EFAULT);
	test_notifier_unregister(&tn, MM);
	assert_int_equal(atomic_load(&tn.ends), atomic_load(&tn.starts));
}

static void test_migrate_thp(void **state)
{
	unsigned long hva = host_mmap(MM, PMD_SIZE, VM_READ | VM_WRITE | VM_THP), pfn;

	(void)state;
	put64(MM, hva + 3 * PAGE_SIZE + 8, 33);
	assert_int_equal(host_mapping_level(MM, hva), 2);
	pfn = pfn_of(MM, hva + 3 * PAGE_SIZE);
	assert_int_equal(host_migrate_page(MM, hva + 3 * PAGE_SIZE), 0);
	assert_int_equal(host_mapping_level(MM, hva), 1);
	assert_true(pfn_of(MM, hva + 3 * PAGE_SIZE) != pfn);
	assert_int_equal(pfn_of(MM, hva + 4 * PAGE_SIZE), pfn + 1);
	assert_int_equal(get64(MM, hva + 3 * PAGE_SIZE + 8), 33);
}

struct gup_call {
	pthread_t thread;
	unsigned long hva, pfn;
	unsigned int foll;
	int ret;
};

static void *gup_thread(void *arg)
{
	struct gup_call *c = arg;

	c->ret = hva_to_pfn(MM, c->hva, c->foll, &c->pfn, NULL);
	return NULL;
}

static struct gup_call nowait, fastonly, waiter;

/*
 * Runs in the migrating thread right after invalidate_range_end, while the
 * migration entry is in the pte: other threads' get_user_pages must not see
 * the page.  Leaves one of them asleep on the entry.
 */
static void during_migration(struct test_notifier *tn,
			     const struct mmu_notifier_range *r)
{
	struct host_vma *vma;

	(void)tn;
	if (r->event != MMU_NOTIFY_MIGRATE)
		return;
	vma = find_vma(MM, r->start);	/* mmap_lock is held: by us */
	T_CHECK(pte_is_migration(pte_get(vma_pte(vma, r->start))));

	nowait = (struct gup_call){ .hva = r->start, .foll = FOLL_NOWAIT };
	fastonly = (struct gup_call){ .hva = r->start, .foll = FOLL_FAST_ONLY };
	T_CHECK(!ukvm_thread_create(&nowait.thread, "gup-nowait", gup_thread, &nowait));
	T_CHECK(!ukvm_thread_create(&fastonly.thread, "gup-fast", gup_thread, &fastonly));
	pthread_join(nowait.thread, NULL);
	pthread_join(fastonly.thread, NULL);
	T_CHECK(nowait.ret == -EAGAIN);
	T_CHECK(fastonly.ret == -EAGAIN);

	waiter = (struct gup_call){ .hva = r->start + 8, .foll = FOLL_WRITE };
	T_CHECK(!ukvm_thread_create(&waiter.thread, "gup-waiter", gup_thread, &waiter));
	while (migration_waiters() == 0)
		sched_yield();
}

static void test_migration_wait(void **state)
{
	unsigned long hva = map_filled(1, 3), old = pfn_of(MM, hva), new;
	struct host_mm_stats st;
	struct test_notifier tn;

	(void)state;
	test_notifier_register(&tn, MM);
	tn.on_end = during_migration;
	assert_int_equal(host_migrate_page(MM, hva), 0);
	tn.on_end = NULL;
	pthread_join(waiter.thread, NULL);
	assert_int_equal(atomic_exchange(&host_test_failures, 0), 0);

	/* The waiter slept until the new frame was in place, then got it. */
	assert_int_equal(waiter.ret, 0);
	new = pfn_of(MM, hva);
	assert_true(new != old);
	assert_int_equal(waiter.pfn, new);
	put_page(pfn_to_page(waiter.pfn));
	host_mm_get_stats(MM, &st);
	assert_true(st.migration_waits >= 1);
	assert_int_equal(migration_waiters(), 0);
	check_filled(hva, 0, 3);
	test_notifier_unregister(&tn, MM);
}

static void test_swap(void **state)
{
	unsigned long hva = map_filled(3, 99), before = free_frames();
	struct host_mem_stats ms;
	struct host_mm_stats st;
	struct test_notifier tn;
	uint64_t pte;

	(void)state;
	test_notifier_register(&tn, MM);
	assert_int_equal(host_swap_out(MM, hva + PAGE_SIZE), 0);
	assert_int_equal(atomic_load(&tn.starts), 1);
	assert_int_equal(atomic_load(&tn.last_event), MMU_NOTIFY_CLEAR);
	assert_int_equal(atomic_load(&tn.last_start), hva + PAGE_SIZE);
	pte = raw_pte(MM, hva + PAGE_SIZE);
	assert_true(pte_is_swap(pte));
	assert_int_equal(free_frames(), before + 1);
	host_mem_get_stats(&ms);
	assert_int_equal(ms.swap_slots_used, 1);
	assert_int_equal(host_swap_out(MM, hva + PAGE_SIZE), -ENOENT);

	/* Explicit swap-in, no notifier (non-present -> present). */
	assert_int_equal(host_swap_in(MM, hva + PAGE_SIZE), 0);
	assert_int_equal(atomic_load(&tn.starts), 1);
	check_filled(hva, 1, 99);
	assert_int_equal(host_swap_in(MM, hva + PAGE_SIZE), -ENOENT);

	/* Swap-in by a fault (a write). */
	assert_int_equal(host_swap_out(MM, hva + 2 * PAGE_SIZE), 0);
	put64(MM, hva + 2 * PAGE_SIZE + 8, 1);
	assert_int_equal(get64(MM, hva + 2 * PAGE_SIZE), 99 + 2000);
	assert_int_equal(get64(MM, hva + 2 * PAGE_SIZE + 8), 1);
	host_mem_get_stats(&ms);
	assert_int_equal(ms.swap_slots_used, 0);
	host_mm_get_stats(MM, &st);
	assert_int_equal(st.swapouts, 2);
	assert_int_equal(st.swapins, 2);

	/* Unmapping a swapped-out page frees its slot. */
	assert_int_equal(host_swap_out(MM, hva), 0);
	assert_int_equal(host_munmap(MM, hva, 3 * PAGE_SIZE), 0);
	host_mem_get_stats(&ms);
	assert_int_equal(ms.swap_slots_used, 0);

	/* A full swap area. */
	hva = map_filled(TEST_SWAP / PAGE_SIZE + 1, 5);
	for (unsigned long i = 0; i < TEST_SWAP / PAGE_SIZE; i++)
		assert_int_equal(host_swap_out(MM, hva + i * PAGE_SIZE), 0);
	assert_int_equal(host_swap_out(MM, hva + TEST_SWAP), -ENOSPC);
	check_filled(hva, 17, 5);
	test_notifier_unregister(&tn, MM);
	assert_int_equal(atomic_load(&tn.ends), atomic_load(&tn.starts));
}

static void test_ksm(void **state)
{
	unsigned long hva = host_mmap(MM, 3 * PAGE_SIZE, VM_READ | VM_WRITE);
	unsigned long a = hva, b = hva + PAGE_SIZE, c = hva + 2 * PAGE_SIZE, pfn;
	unsigned long before;
	struct test_notifier tn;
	long starts;

	(void)state;
	for (unsigned int off = 0; off < PAGE_SIZE; off += 8) {
		put64(MM, a + off, off * 3);
		put64(MM, b + off, off * 3);
		put64(MM, c + off, off * 3 + (off == 4000));
	}
	before = free_frames();
	test_notifier_register(&tn, MM);

	assert_int_equal(host_ksm_merge(MM, a, b), 0);
	/* Two write-protects and one replacement. */
	assert_int_equal(atomic_load(&tn.starts), 3);
	assert_int_equal(atomic_load(&tn.ends), 3);
	assert_int_equal(atomic_load(&tn.last_start), b);
	pfn = pfn_of(MM, a);
	assert_int_equal(pfn_of(MM, b), pfn);
	assert_true(atomic_load(&pfn_to_page(pfn)->flags) & PG_ksm);
	assert_int_equal(atomic_load(&pfn_to_page(pfn)->mapcount), 2);
	assert_false(raw_pte(MM, a) & HPTE_WRITE);
	assert_false(raw_pte(MM, b) & HPTE_WRITE);
	assert_int_equal(free_frames(), before + 1);
	assert_int_equal(host_ksm_merge(MM, a, b), 0);		/* already */
	/* Migration and swap-out leave KSM frames alone. */
	assert_int_equal(host_migrate_page(MM, a), -ENOENT);

	/* Different contents: both end up write-protected, nothing merged. */
	assert_int_equal(host_ksm_merge(MM, a, c), -EAGAIN);
	assert_false(raw_pte(MM, c) & HPTE_WRITE);
	assert_true(pfn_of(MM, c) != pfn);

	/* A write to b copies; a keeps the old contents, still shared RO. */
	starts = atomic_load(&tn.starts);
	put64(MM, b + 8, 12345);
	assert_int_equal(atomic_load(&tn.starts), starts + 1);
	assert_int_equal(atomic_load(&tn.last_start), b);
	assert_true(pfn_of(MM, b) != pfn);
	assert_int_equal(pfn_of(MM, a), pfn);
	assert_int_equal(get64(MM, b + 8), 12345);
	assert_int_equal(get64(MM, a + 8), 24);
	assert_int_equal(get64(MM, b + 16), 48);
	/* a's frame is mapped once now but stays KSM: a write copies too. */
	put64(MM, a + 8, 1);
	assert_true(pfn_of(MM, a) != pfn);
	assert_int_equal(page_count(pfn_to_page(pfn)), 0);
	/* c was only write-protected: its write reuses the frame. */
	pfn = pfn_of(MM, c);
	put64(MM, c, 2);
	assert_int_equal(pfn_of(MM, c), pfn);
	test_notifier_unregister(&tn, MM);
	assert_int_equal(atomic_load(&tn.ends), atomic_load(&tn.starts));
	assert_int_equal(host_ksm_merge(MM, a, a), -EINVAL);
}

static void test_aging(void **state)
{
	unsigned long hva = host_mmap(MM, 8 * PAGE_SIZE, VM_READ | VM_WRITE);
	struct test_notifier tn;
	long young;

	(void)state;
	for (int i = 0; i < 4; i++)
		put64(MM, hva + i * PAGE_SIZE, i);
	test_notifier_register(&tn, MM);

	assert_int_equal(host_test_young(MM, hva, 8 * PAGE_SIZE), 4);
	assert_int_equal(host_clear_young(MM, hva, 8 * PAGE_SIZE), 4);
	assert_int_equal(host_test_young(MM, hva, 8 * PAGE_SIZE), 0);
	assert_int_equal(host_clear_flush_young(MM, hva, 8 * PAGE_SIZE), 0);
	/* Asked per present page, no invalidation. */
	assert_true(atomic_load(&tn.young_calls) >= 4 * 4);
	assert_int_equal(atomic_load(&tn.starts), 0);

	/* Touched again: young again (the CPU-like access sets the bit). */
	assert_int_equal(get64(MM, hva + 2 * PAGE_SIZE), 2);
	assert_int_equal(host_clear_flush_young(MM, hva, 8 * PAGE_SIZE), 1);

	/* A secondary MMU that says young makes every mapped page young. */
	atomic_store(&tn.young, true);
	young = host_clear_flush_young(MM, hva, 8 * PAGE_SIZE);
	assert_int_equal(young, 4);
	atomic_store(&tn.young, false);
	test_notifier_unregister(&tn, MM);

	/* A THP counts its pages. */
	hva = host_mmap(MM, PMD_SIZE, VM_READ | VM_WRITE | VM_THP);
	put64(MM, hva, 1);
	assert_int_equal(host_clear_young(MM, hva, PMD_SIZE), PTRS_PER_PMD);
	assert_int_equal(host_clear_young(MM, hva + PAGE_SIZE, 2 * PAGE_SIZE), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_migrate),
		HOST_TEST(test_migrate_thp),
		HOST_TEST(test_migration_wait),
		HOST_TEST(test_swap),
		HOST_TEST(test_ksm),
		HOST_TEST(test_aging),
	};

	return cmocka_run_group_tests_name("host_ops", tests, NULL, NULL);
}
