// SPDX-License-Identifier: MIT
/*
 * Concurrency stress of the primary MMU: worker threads run a random mix of
 * migration, swap out/in, KSM merge, THP split, madvise(DONTNEED), mprotect,
 * aging, host_access and get_user_pages (fast and slow, writes through the
 * returned pfn) on one shared THP-backed region, for a fixed number of
 * iterations.
 *
 * Each page has one owner thread, the only one that changes its contents
 * (writes, DONTNEED, mprotect); everybody else only runs operations that
 * must preserve contents.  So at every point where the owner looks, a page
 * holds exactly the last value its owner wrote -- whatever migrated, swapped,
 * merged or split it meanwhile.  Pages are filled with a few distinct
 * values, so that KSM finds identical pages and later writes copy them.
 *
 * At the end: contents once more, every notifier start had its end, no
 * frame, swap slot or reference leaked, no write into a freed frame
 * (poisoning is on), no validator report.
 */
#include <pthread.h>
#include <stdlib.h>

#include "host_test.h"

#define MM host_current_mm
#define NR_THREADS	4
#define REGION		(2 * PMD_SIZE)
#define NR_PAGES	(REGION / PAGE_SIZE)
#define WORDS		(PAGE_SIZE / 8)

static unsigned long region;
static _Atomic uint64_t expected[NR_PAGES];
static struct test_notifier tn;

struct worker {
	pthread_t thread;
	unsigned int id;
	uint64_t rnd;
	unsigned long iters;
	uint64_t buf[WORDS];
	unsigned long ops[16];
};

static uint64_t next_rand(struct worker *w)
{
	w->rnd ^= w->rnd << 13;
	w->rnd ^= w->rnd >> 7;
	w->rnd ^= w->rnd << 17;
	return w->rnd;
}

/*
 * Half of the picks go to a few hot pages, so that operations on the same
 * page really meet (migration waits, pinned aborts, KSM/COW races).
 */
#define HOT_PAGES 32

static unsigned long pick(struct worker *w, unsigned long n)
{
	uint64_t r = next_rand(w);

	return (r & 1) ? (r >> 1) % HOT_PAGES : (r >> 1) % n;
}

static unsigned long own_page(struct worker *w)
{
	return pick(w, NR_PAGES) / NR_THREADS * NR_THREADS + w->id;
}

static unsigned long page_hva(unsigned long p)
{
	return region + p * PAGE_SIZE;
}

/* Read the page through host_access() and compare with its owner's value. */
static void verify_page(struct worker *w, unsigned long p)
{
	uint64_t v = atomic_load(&expected[p]);

	T_CHECK(host_access(MM, page_hva(p), w->buf, PAGE_SIZE, false) == 0);
	for (unsigned int i = 0; i < WORDS; i++) {
		if (w->buf[i] != v) {
			T_CHECK(w->buf[i] == v);
			fprintf(stderr, "# page %lu word %u: %#llx, expected %#llx\n",
				p, i, (unsigned long long)w->buf[i],
				(unsigned long long)v);
			return;
		}
	}
}

static void write_page(struct worker *w, unsigned long p, uint64_t v)
{
	for (unsigned int i = 0; i < WORDS; i++)
		w->buf[i] = v;
	T_CHECK(host_access(MM, page_hva(p), w->buf, PAGE_SIZE, true) == 0);
	atomic_store(&expected[p], v);
}

/* Like KVM: get the pfn, write through it while holding the reference. */
static void write_through_pfn(unsigned long p, uint64_t v)
{
	unsigned long pfn;
	bool writable = false;

	T_CHECK(hva_to_pfn(MM, page_hva(p), FOLL_WRITE, &pfn, &writable) == 0);
	T_CHECK(writable);
	for (unsigned int i = 0; i < WORDS; i++)
		frame_write64(pfn, i * 8, v);
	atomic_store(&expected[p], v);
	put_page(pfn_to_page(pfn));
}

static void check_pfn_contents(unsigned long p, unsigned int foll)
{
	unsigned long pfn;
	int ret = hva_to_pfn(MM, page_hva(p), foll, &pfn, NULL);

	T_CHECK(ret == 0 || ((foll & (FOLL_FAST_ONLY | FOLL_NOWAIT)) && ret == -EAGAIN));
	if (ret)
		return;
	T_CHECK(frame_read64(pfn, 8 * (p % WORDS)) == atomic_load(&expected[p]));
	put_page(pfn_to_page(pfn));
}

static bool ok_or(int ret, int a, int b, int c)
{
	return ret == 0 || ret == a || ret == b || ret == c;
}

static _Atomic unsigned int ready;

static void *worker_fn(void *arg)
{
	struct worker *w = arg;

	/* Start together, so that the operations really overlap. */
	atomic_fetch_add(&ready, 1);
	while (atomic_load(&ready) < NR_THREADS)
		sched_yield();

	for (unsigned long it = 0; it < w->iters; it++) {
		unsigned int op = next_rand(w) % 14;
		unsigned long p = own_page(w);
		unsigned long any = pick(w, NR_PAGES);
		uint64_t v = next_rand(w) % 3 + 1;
		int ret;

		w->ops[op]++;
		switch (op) {
		case 0:
		case 1:
			write_page(w, p, v);
			break;
		case 2:
			verify_page(w, p);
			break;
		case 3:
			write_through_pfn(p, v);
			break;
		case 4:
			T_CHECK(host_madvise_dontneed(MM, page_hva(p), PAGE_SIZE) == 0);
			atomic_store(&expected[p], 0);
			break;
		case 5:
			ret = host_migrate_page(MM, page_hva(any));
			T_CHECK(ok_or(ret, -EAGAIN, -ENOENT, -ENOENT));
			break;
		case 6:
			ret = host_swap_out(MM, page_hva(any));
			T_CHECK(ok_or(ret, -EAGAIN, -ENOENT, -ENOSPC));
			break;
		case 7:
			ret = host_swap_in(MM, page_hva(any));
			T_CHECK(ok_or(ret, -ENOENT, -ENOENT, -ENOENT));
			break;
		case 8:
			ret = host_ksm_merge(MM, page_hva(any), page_hva(pick(w, NR_PAGES)));
			T_CHECK(ok_or(ret, -EAGAIN, -ENOENT, -EINVAL));
			break;
		case 9:
			ret = host_thp_split(MM, page_hva(any));
			T_CHECK(ok_or(ret, -ENOENT, -ENOENT, -ENOENT));
			break;
		case 10:
			check_pfn_contents(p, 0);
			check_pfn_contents(p, FOLL_FAST_ONLY);
			check_pfn_contents(p, FOLL_NOWAIT);
			break;
		case 11:
			host_clear_young(MM, page_hva(any), 16 * PAGE_SIZE);
			host_test_young(MM, page_hva(any), PAGE_SIZE);
			break;
		case 12:
			/* Read-only for a moment: the owner's reads still work. */
			T_CHECK(host_mprotect(MM, page_hva(p), PAGE_SIZE, VM_READ) == 0);
			verify_page(w, p);
			T_CHECK(hva_to_pfn(MM, page_hva(p), FOLL_WRITE, &(unsigned long){0},
					   NULL) == -EFAULT);
			T_CHECK(host_mprotect(MM, page_hva(p), PAGE_SIZE,
					      VM_READ | VM_WRITE) == 0);
			break;
		default:
			verify_page(w, any - any % NR_THREADS + w->id);
			break;
		}
	}
	return NULL;
}

static void test_stress(void **state)
{
	static struct worker workers[NR_THREADS];
	unsigned long before = free_frames();
	struct host_mem_stats ms;
	struct host_mm_stats st;
	unsigned long totals[16] = { 0 };

	(void)state;
	region = host_mmap(MM, REGION, VM_READ | VM_WRITE | VM_THP);
	assert_false(IS_ERR_HVA(region));
	for (unsigned long p = 0; p < NR_PAGES; p++)
		atomic_store(&expected[p], 0);
	atomic_store(&ready, 0);
	test_notifier_register(&tn, MM);

	for (unsigned int i = 0; i < NR_THREADS; i++) {
		workers[i].id = i;
		workers[i].rnd = 0x9e3779b97f4a7c15ULL * (i + 1);
		workers[i].iters = SCALE(30000);
		memset(workers[i].ops, 0, sizeof(workers[i].ops));
		assert_int_equal(ukvm_thread_create(&workers[i].thread, "host-stress",
						    worker_fn, &workers[i]), 0);
	}
	for (unsigned int i = 0; i < NR_THREADS; i++) {
		pthread_join(workers[i].thread, NULL);
		for (int k = 0; k < 16; k++)
			totals[k] += workers[i].ops[k];
	}
	assert_int_equal(atomic_exchange(&host_test_failures, 0), 0);

	/* Everything once more, from this thread. */
	for (unsigned long p = 0; p < NR_PAGES; p++) {
		uint64_t v = atomic_load(&expected[p]);

		for (unsigned int off = 0; off < PAGE_SIZE; off += 1024)
			assert_int_equal(get64(MM, page_hva(p) + off), v);
	}
	host_mm_get_stats(MM, &st);
	fprintf(stderr, "# faults %lu cow %lu migrations %lu swapouts %lu swapins %lu "
		"ksm %lu splits %lu pinned %lu waits %lu invalidations %lu\n",
		st.faults, st.cow, st.migrations, st.swapouts, st.swapins,
		st.ksm_merges, st.thp_splits, st.pinned_aborts, st.migration_waits,
		st.notifier_starts);
	assert_true(st.migrations > 0 && st.swapouts > 0 && st.cow > 0);
	assert_int_equal(st.notifier_starts, st.notifier_ends);
	assert_int_equal(atomic_load(&tn.starts), atomic_load(&tn.ends));
	assert_int_equal(atomic_load(&tn.active), 0);

	assert_int_equal(host_munmap(MM, region, REGION), 0);
	test_notifier_unregister(&tn, MM);
	host_mem_get_stats(&ms);
	assert_int_equal(ms.frames_free, before);
	assert_int_equal(ms.frames_anon, 0);
	assert_int_equal(ms.swap_slots_used, 0);
	assert_int_equal(ms.poison_violations, 0);
	for (unsigned long pfn = 0; pfn < host_nr_frames - 1; pfn++)
		if (page_count(pfn_to_page(pfn)))
			fail_msg("pfn %#lx still has %d references", pfn,
				 page_count(pfn_to_page(pfn)));
	assert_int_equal(page_count(pfn_to_page(zero_pfn)), 1);
	assert_int_equal(atomic_load(&pfn_to_page(zero_pfn)->mapcount), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HOST_TEST(test_stress),
	};

	return cmocka_run_group_tests_name("host_stress", tests, NULL, NULL);
}
