// SPDX-License-Identifier: MIT
/*
 * The VMM address space: mmap/munmap/host_access round trips, the zero
 * frame and copy-on-write, read-only mappings, mprotect, madvise(DONTNEED),
 * THP and 1 GiB mappings, and notifier registration/release.
 */
#include <stdlib.h>
#include <unistd.h>

#include "host_test.h"

#define MM host_current_mm

static void test_access_roundtrip(void **state)
{
	unsigned long before = free_frames(), hva;
	size_t len = 3 * PAGE_SIZE + 1234;
	uint8_t *buf = malloc(len), *back = malloc(len);

	(void)state;
	hva = host_mmap(MM, 64 * PAGE_SIZE, VM_READ | VM_WRITE);
	assert_false(IS_ERR_HVA(hva));
	assert_true(hva >= HOST_MMAP_BASE && !(hva & (PMD_SIZE - 1)));

	/* Zero-filled, and reading maps nothing but the zero frame. */
	assert_int_equal(host_access(MM, hva + 5, back, len, false), 0);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(back[i], 0);
	assert_int_equal(free_frames(), before);

	/* Unaligned, crossing pages, partial words at both ends. */
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(host_access(MM, hva + 4093, buf, len, true), 0);
	memset(back, 0, len);
	assert_int_equal(host_access(MM, hva + 4093, back, len, false), 0);
	assert_memory_equal(buf, back, len);
	/* The bytes around the range were not touched. */
	assert_int_equal(host_access(MM, hva + 4090, back, 3, false), 0);
	assert_int_equal(back[0] | back[1] | back[2], 0);
	assert_int_equal(get64(MM, hva + 4093 + len), 0);

	assert_int_equal(host_munmap(MM, hva, 64 * PAGE_SIZE), 0);
	assert_int_equal(host_access(MM, hva, back, 8, false), -EFAULT);
	assert_int_equal(free_frames(), before);
	/* hvas are not reused while there is room above the last mapping. */
	assert_true(host_mmap(MM, PAGE_SIZE, VM_READ) > hva);
	free(buf);
	free(back);
}

static void test_zero_frame_and_cow(void **state)
{
	struct test_notifier tn;
	unsigned long hva, pfn;
	bool writable = true;
	uint64_t pte;

	(void)state;
	test_notifier_register(&tn, MM);
	hva = host_mmap(MM, 4 * PAGE_SIZE, VM_READ | VM_WRITE);

	assert_int_equal(hva_to_pfn(MM, hva + PAGE_SIZE, 0, &pfn, &writable), 0);
	assert_int_equal(pfn, zero_pfn);
	assert_false(writable);
	put_page(pfn_to_page(pfn));
	pte = raw_pte(MM, hva + PAGE_SIZE);
	assert_true(pte_present(pte) && !(pte & HPTE_WRITE));
	assert_int_equal(atomic_load(&tn.starts), 0);

	/* The write copies the zero frame: the pfn changes under the notifier. */
	put64(MM, hva + PAGE_SIZE + 16, 0xabcdef);
	assert_int_equal(atomic_load(&tn.starts), 1);
	assert_int_equal(atomic_load(&tn.ends), 1);
	assert_int_equal(atomic_load(&tn.last_start), hva + PAGE_SIZE);
	assert_int_equal(atomic_load(&tn.last_end), hva + 2 * PAGE_SIZE);
	assert_int_equal(atomic_load(&tn.last_event), MMU_NOTIFY_CLEAR);
	pfn = pfn_of(MM, hva + PAGE_SIZE);
	assert_true(pfn != zero_pfn);
	assert_true(frame_read64(pfn, 16) == 0xabcdef);
	assert_true(frame_read64(zero_pfn, 16) == 0);
	pte = raw_pte(MM, hva + PAGE_SIZE);
	assert_true((pte & HPTE_PERM) == HPTE_PERM);

	/* A write fault on a none pte needs no notifier (nothing was mapped). */
	assert_int_equal(hva_to_pfn(MM, hva, FOLL_WRITE, &pfn, &writable), 0);
	assert_true(writable);
	put_page(pfn_to_page(pfn));
	assert_int_equal(atomic_load(&tn.starts), 1);

	assert_int_equal(host_munmap(MM, hva, 4 * PAGE_SIZE), 0);
	assert_int_equal(atomic_load(&tn.starts), 2);
	assert_int_equal(atomic_load(&tn.last_event), MMU_NOTIFY_UNMAP);
	assert_int_equal(atomic_load(&tn.last_start), hva);
	assert_int_equal(atomic_load(&tn.last_end), hva + 4 * PAGE_SIZE);
	test_notifier_unregister(&tn, MM);
	assert_int_equal(atomic_load(&tn.releases), 1);
	assert_int_equal(atomic_load(&tn.ends), atomic_load(&tn.starts));
}

static void test_readonly_vma(void **state)
{
	unsigned long hva = host_mmap(MM, PAGE_SIZE, VM_READ), pfn;
	uint64_t v = 1;

	(void)state;
	assert_int_equal(hva_to_pfn(MM, hva, FOLL_WRITE, &pfn, NULL), -EFAULT);
	assert_int_equal(host_access(MM, hva, &v, 8, true), -EFAULT);
	assert_int_equal(get64(MM, hva), 0);
	assert_int_equal(hva_to_pfn(MM, hva - PAGE_SIZE, 0, &pfn, NULL), -EFAULT);
	assert_int_equal(hva_to_pfn(MM, hva, FOLL_FAST_ONLY | FOLL_WRITE, &pfn, NULL),
			 -EAGAIN);
	assert_true(IS_ERR_HVA(host_mmap(MM, PAGE_SIZE, VM_WRITE)));
	assert_true(IS_ERR_HVA(host_mmap(MM, 0, VM_READ)));
	assert_true(IS_ERR_HVA(host_mmap(MM, PAGE_SIZE, VM_READ | VM_THP | VM_HUGE_1G)));
}

static void test_mprotect(void **state)
{
	unsigned long hva = host_mmap(MM, 3 * PAGE_SIZE, VM_READ | VM_WRITE), pfn, pfn2;
	struct test_notifier tn;
	bool writable;

	(void)state;
	for (int i = 0; i < 3; i++)
		put64(MM, hva + i * PAGE_SIZE, 100 + i);
	pfn = pfn_of(MM, hva + PAGE_SIZE);
	test_notifier_register(&tn, MM);

	/* The middle page only: the VMA is split in three. */
	assert_int_equal(host_mprotect(MM, hva + PAGE_SIZE, PAGE_SIZE, VM_READ), 0);
	assert_int_equal(atomic_load(&tn.starts), 1);
	assert_int_equal(atomic_load(&tn.last_event), MMU_NOTIFY_PROTECTION_VMA);
	assert_int_equal(atomic_load(&tn.last_start), hva + PAGE_SIZE);
	assert_int_equal(atomic_load(&tn.last_end), hva + 2 * PAGE_SIZE);
	assert_int_equal(hva_to_pfn(MM, hva + PAGE_SIZE, FOLL_WRITE, &pfn2, NULL), -EFAULT);
	assert_int_equal(hva_to_pfn(MM, hva + PAGE_SIZE, 0, &pfn2, &writable), 0);
	assert_int_equal(pfn2, pfn);
	assert_false(writable);
	put_page(pfn_to_page(pfn2));
	assert_int_equal(get64(MM, hva + PAGE_SIZE), 101);
	put64(MM, hva, 200);
	put64(MM, hva + 2 * PAGE_SIZE, 202);

	/* Write back: no notifier, the next write makes the pte writable in place. */
	assert_int_equal(host_mprotect(MM, hva, 3 * PAGE_SIZE, VM_READ | VM_WRITE), 0);
	assert_int_equal(atomic_load(&tn.starts), 1);
	put64(MM, hva + PAGE_SIZE, 201);
	assert_int_equal(pfn_of(MM, hva + PAGE_SIZE), pfn);
	assert_int_equal(atomic_load(&tn.starts), 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(get64(MM, hva + i * PAGE_SIZE), 200 + i);

	/* Errors: a hole, bad prot, unaligned. */
	assert_int_equal(host_mprotect(MM, hva, 4 * PAGE_SIZE, VM_READ), -ENOMEM);
	assert_int_equal(host_mprotect(MM, hva, PAGE_SIZE, VM_WRITE), -EINVAL);
	assert_int_equal(host_mprotect(MM, hva + 1, PAGE_SIZE, VM_READ), -EINVAL);
	test_notifier_unregister(&tn, MM);
	assert_int_equal(atomic_load(&tn.ends), atomic_load(&tn.starts));
}

static void test_munmap_partial_and_dontneed(void **state)
{
	unsigned long before = free_frames(), hva;
	struct test_notifier tn;

	(void)state;
	hva = host_mmap(MM, 8 * PAGE_SIZE, VM_READ | VM_WRITE);
	for (int i = 0; i < 8; i++)
		put64(MM, hva + i * PAGE_SIZE, 1000 + i);
	assert_int_equal(free_frames(), before - 8);
	test_notifier_register(&tn, MM);

	assert_int_equal(host_munmap(MM, hva + 2 * PAGE_SIZE, 2 * PAGE_SIZE), 0);
	assert_int_equal(atomic_load(&tn.last_event), MMU_NOTIFY_UNMAP);
	assert_int_equal(atomic_load(&tn.last_start), hva + 2 * PAGE_SIZE);
	assert_int_equal(atomic_load(&tn.last_end), hva + 4 * PAGE_SIZE);
	assert_int_equal(free_frames(), before - 6);
	assert_int_equal(host_access(MM, hva + 3 * PAGE_SIZE, &(uint64_t){0}, 8, false),
			 -EFAULT);
	for (int i = 0; i < 8; i++)
		if (i < 2 || i >= 4)
			assert_int_equal(get64(MM, hva + i * PAGE_SIZE), 1000 + i);

	assert_int_equal(host_madvise_dontneed(MM, hva + 4 * PAGE_SIZE, PAGE_SIZE), 0);
	assert_int_equal(atomic_load(&tn.last_event), MMU_NOTIFY_CLEAR);
	assert_int_equal(atomic_load(&tn.last_start), hva + 4 * PAGE_SIZE);
	assert_int_equal(atomic_load(&tn.last_end), hva + 5 * PAGE_SIZE);
	assert_int_equal(get64(MM, hva + 4 * PAGE_SIZE), 0);
	assert_int_equal(free_frames(), before - 5);

	/* A range with holes unmaps what is there. */
	assert_int_equal(host_munmap(MM, hva, 8 * PAGE_SIZE), 0);
	assert_int_equal(free_frames(), before);
	assert_int_equal(host_munmap(MM, hva, 8 * PAGE_SIZE), 0);
	assert_int_equal(host_munmap(MM, hva + 1, PAGE_SIZE), -EINVAL);
	test_notifier_unregister(&tn, MM);
	assert_int_equal(atomic_load(&tn.ends), atomic_load(&tn.starts));
}

static void test_thp(void **state)
{
	unsigned long before = free_frames(), hva, pfn;
	struct host_mm_stats st;
	struct test_notifier tn;

	(void)state;
	hva = host_mmap(MM, 2 * PMD_SIZE, VM_READ | VM_WRITE | VM_THP);
	assert_int_equal(host_mapping_level(MM, hva), 1);
	put64(MM, hva + 12345 * 8, 77);
	assert_int_equal(host_mapping_level(MM, hva), 2);
	assert_int_equal(host_mapping_level(MM, hva + PMD_SIZE - 1), 2);
	assert_int_equal(host_mapping_level(MM, hva + PMD_SIZE), 1);
	host_mm_get_stats(MM, &st);
	assert_int_equal(st.thp_faults, 1);
	assert_int_equal(free_frames(), before - PTRS_PER_PMD);
	pfn = pfn_of(MM, hva);
	assert_int_equal(pfn % PTRS_PER_PMD, 0);
	assert_int_equal(pfn_of(MM, hva + 5 * PAGE_SIZE), pfn + 5);
	put64(MM, hva + PMD_SIZE - 8, 88);

	test_notifier_register(&tn, MM);
	assert_int_equal(host_thp_split(MM, hva + 3 * PAGE_SIZE), 0);
	assert_int_equal(atomic_load(&tn.starts), 1);
	assert_int_equal(atomic_load(&tn.last_event), MMU_NOTIFY_SPLIT);
	assert_int_equal(atomic_load(&tn.last_start), hva);
	assert_int_equal(atomic_load(&tn.last_end), hva + PMD_SIZE);
	assert_int_equal(host_mapping_level(MM, hva), 1);
	assert_int_equal(pfn_of(MM, hva + 5 * PAGE_SIZE), pfn + 5);
	assert_int_equal(get64(MM, hva + 12345 * 8), 77);
	assert_int_equal(get64(MM, hva + PMD_SIZE - 8), 88);
	assert_true(raw_pte(MM, hva) & HPTE_WRITE);
	assert_int_equal(host_thp_split(MM, hva), -ENOENT);

	/* A write fault in the second 2 MiB makes a THP too; DONTNEED of a
	 * part of it splits it and drops only that part. */
	put64(MM, hva + PMD_SIZE + 8, 99);
	assert_int_equal(host_mapping_level(MM, hva + PMD_SIZE), 2);
	assert_int_equal(host_madvise_dontneed(MM, hva + PMD_SIZE + PAGE_SIZE, PAGE_SIZE), 0);
	assert_int_equal(host_mapping_level(MM, hva + PMD_SIZE), 1);
	assert_int_equal(get64(MM, hva + PMD_SIZE + 8), 99);
	assert_int_equal(get64(MM, hva + PMD_SIZE + PAGE_SIZE), 0);
	test_notifier_unregister(&tn, MM);
	assert_int_equal(atomic_load(&tn.ends), atomic_load(&tn.starts));

	assert_int_equal(host_munmap(MM, hva, 2 * PMD_SIZE), 0);
	assert_int_equal(free_frames(), before);

	/* A THP VMA that cannot hold a whole 2 MiB falls back to 4 KiB. */
	hva = host_mmap(MM, PMD_SIZE / 2, VM_READ | VM_WRITE | VM_THP);
	put64(MM, hva, 1);
	assert_int_equal(host_mapping_level(MM, hva), 1);
	assert_int_equal(host_munmap(MM, hva, PMD_SIZE / 2), 0);
	assert_int_equal(free_frames(), before);
}

static void test_huge_1g(void **state)
{
	unsigned long before, hva, pfn;
	struct test_notifier tn;

	(void)state;
	host_exit();
	assert_int_equal(host_test_setup_mem(PUD_SIZE), 0);
	before = free_frames();
	hva = host_mmap(MM, PAGE_SIZE, VM_READ | VM_WRITE | VM_HUGE_1G);
	assert_false(IS_ERR_HVA(hva));
	assert_int_equal(hva & (PUD_SIZE - 1), 0);
	assert_int_equal(free_frames(), before - PAGES_PER_PUD);
	/* All of memory is taken: a second one fails. */
	assert_true(IS_ERR_HVA(host_mmap(MM, PUD_SIZE, VM_READ | VM_HUGE_1G)));
	assert_int_equal(host_mapping_level(MM, hva + PUD_SIZE - 1), 3);
	pfn = pfn_of(MM, hva);
	assert_int_equal(pfn % PAGES_PER_PUD, 0);
	assert_int_equal(pfn_of(MM, hva + 1000 * PAGE_SIZE), pfn + 1000);
	put64(MM, hva + PUD_SIZE - 8, 5);
	assert_int_equal(get64(MM, hva + PUD_SIZE - 8), 5);

	/* Page-level mm operations do not apply. */
	assert_int_equal(host_migrate_page(MM, hva), -EINVAL);
	assert_int_equal(host_swap_out(MM, hva), -EINVAL);
	assert_int_equal(host_madvise_dontneed(MM, hva, PAGE_SIZE), -EINVAL);
	assert_int_equal(host_munmap(MM, hva, PAGE_SIZE), -EINVAL);
	assert_int_equal(host_mprotect(MM, hva, PAGE_SIZE, VM_READ), -EINVAL);
	assert_int_equal(host_thp_split(MM, hva), -EINVAL);
	assert_int_equal(host_ksm_merge(MM, hva, hva + PAGE_SIZE), -EINVAL);
	assert_int_equal(host_swap_in(MM, hva), -EINVAL);

	test_notifier_register(&tn, MM);
	assert_int_equal(host_mprotect(MM, hva, PUD_SIZE, VM_READ), 0);
	assert_int_equal(atomic_load(&tn.starts), 1);
	assert_int_equal(hva_to_pfn(MM, hva, FOLL_WRITE, &pfn, NULL), -EFAULT);
	assert_int_equal(host_mprotect(MM, hva, PUD_SIZE, VM_READ | VM_WRITE), 0);
	put64(MM, hva, 6);
	assert_int_equal(host_clear_young(MM, hva, PUD_SIZE), (long)PAGES_PER_PUD);
	assert_int_equal(host_test_young(MM, hva, PUD_SIZE), 0);
	assert_int_equal(host_munmap(MM, hva, PUD_SIZE), 0);
	assert_int_equal(atomic_load(&tn.starts), 2);
	test_notifier_unregister(&tn, MM);
	assert_int_equal(free_frames(), before);
	host_exit();
	assert_int_equal(host_test_setup(NULL), 0);
}

static void test_release(void **state)
{
	struct host_mm *mm = host_mm_create();
	struct test_notifier a, b;
	unsigned long hva;

	(void)state;
	assert_non_null(mm);
	test_notifier_register(&a, mm);
	test_notifier_register(&b, mm);
	hva = host_mmap(mm, PAGE_SIZE, VM_READ | VM_WRITE);
	put64(mm, hva, 1);

	/* Unregistering a live notifier releases it, once. */
	test_notifier_unregister(&b, mm);
	assert_int_equal(atomic_load(&b.releases), 1);
	assert_int_equal(host_madvise_dontneed(mm, hva, PAGE_SIZE), 0);
	assert_int_equal(atomic_load(&a.starts), 1);
	assert_int_equal(atomic_load(&b.starts), 0);

	/* The mm goes: ->release once, then no more calls. */
	host_mm_release(mm);
	host_mm_release(mm);
	assert_int_equal(atomic_load(&a.releases), 1);
	assert_int_equal(mmu_notifier_register(&b.mn, mm), -EINVAL);
	put64(mm, hva, 2);
	assert_int_equal(host_madvise_dontneed(mm, hva, PAGE_SIZE), 0);
	assert_int_equal(atomic_load(&a.starts), 1);
	test_notifier_unregister(&a, mm);
	assert_int_equal(atomic_load(&a.releases), 1);
	host_mm_destroy(mm);
	assert_int_equal(atomic_load(&a.releases), 1);
}

/*
 * A notifier registered while an mm operation is between its
 * invalidate_range_start and _end must see both calls or neither: the
 * registration waits for mmap_lock (write), which every invalidation holds
 * from start to end (mmu_notifier_register() of Linux does the same).
 * Found by `ukvm run --vm-churn --host-churn`: a VM created during a host
 * operation got an _end without a _start.
 */
static struct {
	_Atomic bool held, release, registered;
	struct test_notifier late;
	struct host_mm *mm;
	unsigned long hva;
} reg;

static void hold_start(struct test_notifier *tn, const struct mmu_notifier_range *r)
{
	(void)r;
	tn->on_start = NULL;
	atomic_store(&reg.held, true);
	while (!atomic_load(&reg.release))
		sched_yield();
}

static void *discard_fn(void *arg)
{
	(void)arg;
	T_CHECK(host_madvise_dontneed(reg.mm, reg.hva, PAGE_SIZE) == 0);
	return NULL;
}

static void *register_fn(void *arg)
{
	(void)arg;
	T_CHECK(mmu_notifier_register(&reg.late.mn, reg.mm) == 0);
	atomic_store(&reg.registered, true);
	return NULL;
}

static void test_register_during_invalidation(void **state)
{
	struct test_notifier first;
	pthread_t t1, t2;
	long starts, ends;
	bool early;

	(void)state;
	memset(&reg, 0, sizeof(reg));
	reg.mm = host_current_mm;
	test_notifier_register(&first, reg.mm);
	reg.late.mn.ops = first.mn.ops;		/* registered later, by a thread */
	reg.hva = host_mmap(reg.mm, PAGE_SIZE, VM_READ | VM_WRITE);
	put64(reg.mm, reg.hva, 1);

	first.on_start = hold_start;
	assert_int_equal(ukvm_thread_create(&t1, "discard", discard_fn, NULL), 0);
	while (!atomic_load(&reg.held))
		sched_yield();
	/* Inside the start..end window now. */
	assert_int_equal(ukvm_thread_create(&t2, "register", register_fn, NULL), 0);
	usleep(20000);
	early = atomic_load(&reg.registered);
	atomic_store(&reg.release, true);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);

	starts = atomic_load(&reg.late.starts);
	ends = atomic_load(&reg.late.ends);
	test_notifier_unregister(&reg.late, reg.mm);
	test_notifier_unregister(&first, reg.mm);
	assert_int_equal(host_munmap(reg.mm, reg.hva, PAGE_SIZE), 0);

	assert_false(early);
	assert_int_equal(starts, ends);
	assert_int_equal(atomic_load(&first.starts), 1);
	assert_int_equal(atomic_load(&first.ends), 1);
}

/*
 * At the top of the mmap area, mmap() takes the lowest range munmap() left
 * free, as Linux's get_unmapped_area() does.  Found by fuzz/fuzz_memslot.c:
 * after 8 MiB had been mapped and unmapped 130 000 times (1 TiB), every
 * mmap() failed with -ENOMEM although nothing was mapped.
 */
static void test_mmap_reuses_freed_ranges_at_the_top(void **state)
{
	const unsigned long sz = 4UL << 30;
	struct host_mm *mm = host_mm_create();
	unsigned long keep, hva, last = 0, n = 0;

	(void)state;
	assert_non_null(mm);
	keep = host_mmap(mm, PAGE_SIZE, VM_READ | VM_WRITE);
	assert_int_equal(keep, HOST_MMAP_BASE);
	for (;;) {
		hva = host_mmap(mm, sz, VM_READ | VM_WRITE);
		assert_false(IS_ERR_HVA(hva));
		assert_int_equal(host_munmap(mm, hva, sz), 0);
		if (hva < last)
			break;
		last = hva;
		n++;
	}
	/* Upwards through the whole area first, then the lowest gap. */
	assert_true(n >= (HOST_MMAP_LIMIT - HOST_MMAP_BASE) / sz - 1);
	assert_int_equal(hva, HOST_MMAP_BASE + PMD_SIZE);

	/* A reused range is a fresh mapping: zero-filled, writable. */
	hva = host_mmap(mm, sz, VM_READ | VM_WRITE);
	assert_int_equal(hva, HOST_MMAP_BASE + PMD_SIZE);
	assert_int_equal(get64(mm, hva + sz - 8), 0);
	put64(mm, hva + sz - 8, 42);
	assert_int_equal(get64(mm, hva + sz - 8), 42);
	assert_int_equal(host_munmap(mm, hva, sz), 0);
	assert_int_equal(host_munmap(mm, keep, PAGE_SIZE), 0);
	host_mm_destroy(mm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_access_roundtrip),
		HOST_TEST(test_zero_frame_and_cow),
		HOST_TEST(test_readonly_vma),
		HOST_TEST(test_mprotect),
		HOST_TEST(test_munmap_partial_and_dontneed),
		HOST_TEST(test_thp),
		HOST_TEST(test_huge_1g),
		HOST_TEST(test_release),
		HOST_TEST(test_register_during_invalidation),
		HOST_TEST(test_mmap_reuses_freed_ranges_at_the_top),
	};

	return cmocka_run_group_tests_name("host_mm", tests, NULL, NULL);
}
