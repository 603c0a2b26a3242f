// SPDX-License-Identifier: MIT
/*
 * Host physical memory: lifetime, the allocator (4 KiB frames, 2 MiB
 * blocks, exhaustion and recovery), refcounts, and poisoning of freed frames.
 */
#include <pthread.h>
#include <stdlib.h>

#include "host_test.h"

#define NR_FRAMES (TEST_MEM / PAGE_SIZE)

static void test_init_exit(void **state)
{
	struct host_config cfg = { .mem_bytes = TEST_MEM };
	struct host_mem_stats st;

	(void)state;
	assert_true(host_initialized());
	assert_int_equal(host_init(&cfg), -EBUSY);
	host_mem_get_stats(&st);
	assert_int_equal(st.frames_total, NR_FRAMES);
	assert_int_equal(st.frames_free, NR_FRAMES);
	assert_int_equal(st.huge_blocks_free, NR_FRAMES / PTRS_PER_PMD);
	assert_int_equal(st.swap_slots_total, TEST_SWAP / PAGE_SIZE);
	assert_int_equal(st.swap_slots_used, 0);
	assert_int_equal(host_nr_frames, NR_FRAMES + 1);
	assert_true(pfn_valid(zero_pfn));
	assert_true(atomic_load(&pfn_to_page(zero_pfn)->flags) & PG_reserved);
	assert_true(frame_read64(zero_pfn, 0) == 0);
	assert_non_null(host_current_mm);
	assert_int_equal(host_nr_cpus(), TEST_CPUS);
	assert_int_equal(host_num_online_cpus(), TEST_CPUS);

	/* A second life of the host, and a bad configuration. */
	host_exit();
	assert_false(host_initialized());
	cfg.mem_bytes = PMD_SIZE;
	assert_int_equal(host_init(&cfg), -EINVAL);
	assert_int_equal(host_test_setup_mem(TEST_MEM), 0);
}

/* Allocate until the host runs out: every frame, none more, all kernel's. */
static unsigned long alloc_every_frame(struct page **pages)
{
	struct host_mem_stats st;
	unsigned long n = 0;

	while ((pages[n] = alloc_page()))
		n++;
	assert_int_equal(n, NR_FRAMES);
	host_mem_get_stats(&st);
	assert_int_equal(st.frames_free, 0);
	assert_int_equal(st.frames_kernel, NR_FRAMES);
	return n;
}

static void test_exhaustion_and_recovery(void **state)
{
	struct page **pages = calloc(NR_FRAMES + 1, sizeof(*pages));
	struct host_mem_stats st;
	unsigned long n, hva, pfn;

	(void)state;
	assert_non_null(pages);
	n = alloc_every_frame(pages);
	host_mem_get_stats(&st);
	assert_int_equal(st.alloc_failures, 1);
	assert_null(alloc_huge_block());

	/* The fault path reports it instead of crashing. */
	hva = host_mmap(host_current_mm, 4 * PAGE_SIZE, VM_READ | VM_WRITE);
	assert_false(IS_ERR_HVA(hva));
	assert_int_equal(hva_to_pfn(host_current_mm, hva, FOLL_WRITE, &pfn, NULL),
			 -ENOMEM);
	/* A read still works: the zero frame needs no memory. */
	assert_int_equal(hva_to_pfn(host_current_mm, hva, 0, &pfn, NULL), 0);
	assert_int_equal(pfn, zero_pfn);
	put_page(pfn_to_page(pfn));

	/* Give one back: the write fault succeeds now. */
	put_page(pages[--n]);
	assert_int_equal(hva_to_pfn(host_current_mm, hva, FOLL_WRITE, &pfn, NULL), 0);
	assert_true(pfn != zero_pfn);
	put_page(pfn_to_page(pfn));

	while (n)
		put_page(pages[--n]);
	assert_int_equal(host_munmap(host_current_mm, hva, 4 * PAGE_SIZE), 0);
	host_mem_get_stats(&st);
	assert_int_equal(st.frames_free, NR_FRAMES);
	assert_int_equal(st.frames_kernel, 0);
	assert_int_equal(st.frames_anon, 0);
	assert_int_equal(st.poison_violations, 0);
	free(pages);
}

/*
 * Frames freed by another thread sit in that thread's per-CPU cache: they
 * are free (counted so), and running out of memory drains them first.
 */
struct cacher {
	unsigned long n;
};

static void *cacher_fn(void *arg)
{
	struct cacher *c = arg;
	struct page *p[64];

	for (unsigned long i = 0; i < c->n; i++)
		p[i] = alloc_page();
	for (unsigned long i = 0; i < c->n; i++)
		if (p[i])
			put_page(p[i]);
	return NULL;
}

static void test_exhaustion_drains_cpu_caches(void **state)
{
	struct page **pages = calloc(NR_FRAMES + 1, sizeof(*pages));
	struct cacher c = { .n = 64 };
	struct host_mem_stats st;
	unsigned long n;

	(void)state;
	assert_non_null(pages);
	{
		pthread_t t;

		assert_int_equal(pthread_create(&t, NULL, cacher_fn, &c), 0);
		assert_int_equal(pthread_join(t, NULL), 0);
	}
	host_mem_get_stats(&st);
	assert_int_equal(st.frames_free, NR_FRAMES);
	assert_int_equal(st.frames_kernel, 0);
	/* Every frame can be had, including those cached by the other thread. */
	n = alloc_every_frame(pages);
	while (n)
		put_page(pages[--n]);
	host_mem_get_stats(&st);
	assert_int_equal(st.frames_free, NR_FRAMES);
	assert_int_equal(st.frames_kernel, 0);
	free(pages);
}

static void test_refcount_and_poison(void **state)
{
	struct host_mem_stats st;
	struct page *p, *q;
	unsigned long pfn, before;

	(void)state;
	p = alloc_page();
	assert_non_null(p);
	pfn = page_to_pfn(p);
	assert_int_equal(page_count(p), 1);
	assert_true(frame_read64(pfn, 8) == 0);
	before = free_frames();

	get_page(p);
	assert_int_equal(page_count(p), 2);
	put_page(p);
	assert_int_equal(free_frames(), before);
	assert_true(get_page_unless_zero(p));
	put_page(p);
	put_page(p);			/* the last one: freed */
	assert_int_equal(free_frames(), before + 1);
	assert_false(get_page_unless_zero(p));
	assert_int_equal(page_count(p), 0);
	assert_true(atomic_load(&p->flags) & PG_poisoned);

	/* A stale translation writes into the freed frame ... */
	frame_write64(pfn, 128, 0x1234);
	/* ... and the next allocation of it (the free list is LIFO) tells. */
	fprintf(stderr, "# a poison violation report for pfn %#lx follows:\n", pfn);
	q = alloc_page();
	assert_ptr_equal(q, p);
	host_mem_get_stats(&st);
	assert_int_equal(st.poison_violations, 1);
	assert_true(frame_read64(pfn, 128) == 0);	/* zeroed all the same */

	/* Freed and reallocated untouched: no violation. */
	put_page(q);
	q = alloc_page();
	assert_ptr_equal(q, p);
	host_mem_get_stats(&st);
	assert_int_equal(st.poison_violations, 1);
	put_page(q);
}

static void test_frame_helpers(void **state)
{
	struct page *a = alloc_page(), *b = alloc_page();
	unsigned long pa = page_to_pfn(a), pb = page_to_pfn(b);
	uint64_t old;

	(void)state;
	assert_true(frame_equal(pa, pb));
	frame_write64(pa, PAGE_SIZE - 8, 42);
	assert_false(frame_equal(pa, pb));
	frame_copy(pb, pa);
	assert_true(frame_equal(pa, pb));
	assert_true(frame_read64(pb, PAGE_SIZE - 8) == 42);
	old = 42;
	assert_true(frame_cmpxchg64(pb, PAGE_SIZE - 8, &old, 43) ||
		    frame_cmpxchg64(pb, PAGE_SIZE - 8, &old, 43));
	frame_zero(pb);
	assert_true(frame_read64(pb, PAGE_SIZE - 8) == 0);
	put_page(a);
	put_page(b);
}

static void test_huge_blocks(void **state)
{
	struct host_mem_stats st0, st;
	struct page *blk, *p;
	unsigned long pfn;

	(void)state;
	host_mem_get_stats(&st0);
	blk = alloc_huge_block();
	assert_non_null(blk);
	pfn = page_to_pfn(blk);
	assert_int_equal(pfn % PTRS_PER_PMD, 0);
	for (unsigned int i = 0; i < PTRS_PER_PMD; i++) {
		assert_int_equal(page_count(blk + i), 1);
		assert_true(atomic_load(&blk[i].flags) & PG_huge);
	}
	host_mem_get_stats(&st);
	assert_int_equal(st.huge_blocks_free, st0.huge_blocks_free - 1);

	/* Freed frame by frame, the block comes back whole. */
	for (unsigned int i = 0; i < PTRS_PER_PMD; i++)
		put_page(blk + i);
	host_mem_get_stats(&st);
	assert_int_equal(st.huge_blocks_free, st0.huge_blocks_free);
	assert_int_equal(st.frames_free, st0.frames_free);

	/* A 4 KiB allocation with no free 4 KiB frame splits a block. */
	p = alloc_page();
	host_mem_get_stats(&st);
	assert_int_equal(st.huge_blocks_free, st0.huge_blocks_free - 1);
	assert_int_equal(st.frames_free, st0.frames_free - 1);
	put_page(p);
	host_mem_get_stats(&st);
	assert_int_equal(st.frames_free, st0.frames_free);

	/* Exhaust the blocks: THP allocation fails, 4 KiB frames remain. */
	while ((blk = alloc_huge_block()))
		;
	host_mem_get_stats(&st);
	assert_int_equal(st.huge_blocks_free, 0);
	assert_true(st.huge_alloc_failures >= 1);
	assert_int_equal(st.frames_free, PTRS_PER_PMD);
	p = alloc_page();
	assert_non_null(p);
	put_page(p);
	/* Give everything back (all blocks but the split one are PG_huge). */
	for (pfn = 0; pfn < host_nr_frames - 1; pfn++)
		if (page_count(pfn_to_page(pfn)))
			put_page(pfn_to_page(pfn));
	host_mem_get_stats(&st);
	assert_int_equal(st.frames_free, st0.frames_free);
	assert_int_equal(st.frames_kernel, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_init_exit),
		HOST_TEST(test_exhaustion_and_recovery),
		HOST_TEST(test_exhaustion_drains_cpu_caches),
		HOST_TEST(test_refcount_and_poison),
		HOST_TEST(test_frame_helpers),
		HOST_TEST(test_huge_blocks),
	};

	return cmocka_run_group_tests_name("host_physmem", tests, NULL, NULL);
}
