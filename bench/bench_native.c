// SPDX-License-Identifier: MIT
/*
 * Native references measured in the same run as the ukvm figures: the
 * kernel's own anonymous page fault (perf-anchors.md Appendix A: one shared
 * MAP_PRIVATE|MAP_ANONYMOUS mapping, MADV_NOHUGEPAGE, pinned threads writing
 * one byte per 4 KiB page of their share, released by a barrier) and the
 * kernel's madvise(MADV_DONTNEED) of one touched page.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "bench/bench_vm.h"

struct native_run {
	uint8_t *mem;
	uint64_t pages_per_thread;
	int threads;
	pthread_barrier_t start;
	uint64_t t0, t_end[BENCH_MAX_THREADS];
};

struct native_thread {
	struct native_run *nr;
	int id;
};

static void *native_touch(void *arg)
{
	struct native_thread *t = arg;
	struct native_run *nr = t->nr;
	volatile uint8_t *p = nr->mem + ((uint64_t)t->id * nr->pages_per_thread << 12);

	bench_pin(t->id);
	pthread_barrier_wait(&nr->start);
	if (t->id == 0)
		nr->t0 = bench_now_ns();
	for (uint64_t i = 0; i < nr->pages_per_thread; i++)
		p[i << 12] = 1;
	nr->t_end[t->id] = bench_now_ns();
	return NULL;
}

/* One run: aggregate faults per second (NAN if mmap fails). */
static double native_fault_once(int threads, uint64_t pages_per_thread)
{
	struct native_run nr = { .pages_per_thread = pages_per_thread,
				 .threads = threads };
	struct native_thread t[BENCH_MAX_THREADS];
	pthread_t tid[BENCH_MAX_THREADS];
	size_t len = (size_t)(pages_per_thread * (uint64_t)threads) << 12;
	uint64_t end = 0;

	nr.mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (nr.mem == MAP_FAILED)
		return NAN;
	madvise(nr.mem, len, MADV_NOHUGEPAGE);
	pthread_barrier_init(&nr.start, NULL, (unsigned int)threads);
	for (int i = 0; i < threads; i++) {
		t[i] = (struct native_thread){ .nr = &nr, .id = i };
		pthread_create(&tid[i], NULL, native_touch, &t[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		if (nr.t_end[i] > end)
			end = nr.t_end[i];
	}
	pthread_barrier_destroy(&nr.start);
	munmap(nr.mem, len);
	return (double)(pages_per_thread * (uint64_t)threads) * 1e9 /
	       (double)(end - nr.t0);
}

double native_fault_rate(const struct bench_opts *opts, int threads,
			 uint64_t pages_per_thread)
{
	double v[BENCH_MAX_RUNS];

	if (threads > BENCH_MAX_THREADS)
		threads = BENCH_MAX_THREADS;
	native_fault_once(threads, pages_per_thread / 8 + 1);	/* warm-up */
	for (int r = 0; r < opts->runs; r++)
		v[r] = native_fault_once(threads, pages_per_thread) / threads;
	return bench_median(v, opts->runs);
}

double native_dontneed_ns(const struct bench_opts *opts, uint64_t pages)
{
	double v[BENCH_MAX_RUNS];
	size_t len = (size_t)pages << 12;

	for (int r = 0; r < opts->runs; r++) {
		volatile uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint64_t t0;

		if (p == MAP_FAILED)
			return NAN;
		madvise((void *)p, len, MADV_NOHUGEPAGE);
		for (uint64_t i = 0; i < pages; i++)
			p[i << 12] = 1;
		t0 = bench_now_ns();
		for (uint64_t i = 0; i < pages; i++)
			madvise((void *)(p + (i << 12)), 4096, MADV_DONTNEED);
		v[r] = (double)(bench_now_ns() - t0) / (double)pages;
		munmap((void *)p, len);
	}
	return bench_median(v, opts->runs);
}
