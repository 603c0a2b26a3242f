/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the src/sync unit tests: cmocka includes, thread
 * start/join, handshakes, checks usable from worker threads, and iteration
 * counts sized for the build variant (sanitizers are 5-20x slower).
 *
 * Tests are deterministic: threads wait for each other through atomics
 * (spin with sched_yield()), never through sleeps, and nothing asserts on
 * time.
 */
#ifndef UKVM_TESTS_SYNC_TEST_H
#define UKVM_TESTS_SYNC_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "sync/bug.h"
#include "sync/sync.h"

#if defined(__SANITIZE_ADDRESS__)
#define SYNC_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SYNC_TEST_ASAN 1
#endif
#endif
#ifndef SYNC_TEST_ASAN
#define SYNC_TEST_ASAN 0
#endif

/* Scale an iteration count down for the sanitizer builds. */
#if UKVM_TSAN
#define SCALE(n) ((n) / 10 ? (n) / 10 : 1)
#elif SYNC_TEST_ASAN
#define SCALE(n) ((n) / 4 ? (n) / 4 : 1)
#else
#define SCALE(n) (n)
#endif

/*
 * cmocka's assertions longjmp() and may only be used in the test's own
 * thread.  Worker threads record failures here; the test asserts zero.
 */
extern _Atomic unsigned long sync_test_failures;

#define T_CHECK(cond)                                                         \
	do {                                                                  \
		if (!(cond)) {                                                \
			if (atomic_fetch_add(&sync_test_failures, 1) < 10)    \
				fprintf(stderr, "# %s:%d: check failed: %s\n", \
					__FILE__, __LINE__, #cond);           \
		}                                                             \
	} while (0)

#define assert_no_thread_failures()                                           \
	assert_int_equal(atomic_exchange(&sync_test_failures, 0), 0)

/*
 * The end of a test of the layers above src/sync: nothing reported, neither
 * validator errors and warnings nor invariant failures nor failures of the
 * test's worker threads.
 */
#define assert_nothing_reported()                                             \
	do {                                                                  \
		assert_int_equal(lockdep_report_count(), 0);                  \
		assert_int_equal(lockdep_warning_count(), 0);                 \
		assert_int_equal(ukvm_invariant_failures(), 0);               \
		assert_no_thread_failures();                                  \
	} while (0)

/* Wait (yielding the CPU) until @cond is true. */
#define WAIT_UNTIL(cond)                                                      \
	do {                                                                  \
		while (!(cond))                                               \
			sched_yield();                                        \
	} while (0)

/* A one-way flag for handshakes between threads. */
struct flag {
	_Atomic int v;
};

static inline void flag_set(struct flag *f)
{
	atomic_store_explicit(&f->v, 1, memory_order_release);
}

static inline bool flag_is_set(struct flag *f)
{
	return atomic_load_explicit(&f->v, memory_order_acquire);
}

static inline void flag_wait(struct flag *f)
{
	WAIT_UNTIL(flag_is_set(f));
}

/* Start @n threads running @fn(@args + i * @size); join them all. */
void start_threads(pthread_t *tids, int n, const char *name,
		   void *(*fn)(void *), void *args, size_t size);
void join_threads(pthread_t *tids, int n);

/* Start one registered thread (asserts on failure). */
pthread_t start_thread(const char *name, void *(*fn)(void *), void *arg);
void join_thread(pthread_t tid);

/*
 * Use-after-free torture of a read-side primitive (RCU, SRCU): readers load
 * a shared pointer inside read-side sections and check that the object is
 * live (b == a, not poisoned), preempted inside now and then; writers
 * replace it and retire the old object through the primitive.
 */
#define UAF_POISON 0x6b6b6b6b6b6b6b6bUL

struct uaf_obj {
	unsigned long a, b;		/* b == a while live */
	struct rcu_head head;		/* for call_rcu() */
};

struct uaf_ops {
	/* Enter a read-side section: what leave() is given back. */
	int (*enter)(void);
	void (*leave)(int idx);
	/* Load the protected pointer at @pp, inside a read-side section. */
	struct uaf_obj *(*deref)(struct uaf_obj **pp);
	/*
	 * Writer @id replaced @old in its iteration @i: have it freed with
	 * uaf_obj_poison_free() once no reader can hold it (now or later).
	 */
	void (*retire)(struct uaf_obj *old, long id, long i);
};

struct uaf_result {
	unsigned long reads;		/* read-side sections of all readers */
	unsigned long replaced;		/* objects retired by all writers */
};

/* Poison @o, then free it. */
void uaf_obj_poison_free(struct uaf_obj *o);
/*
 * @nr_readers readers run until @nr_writers writers have each replaced the
 * object @iters times; the last object is freed.  Asserts that the threads
 * saw no failure and that readers did read.  One torture at a time.
 */
void uaf_torture(const struct uaf_ops *ops, int nr_readers, int nr_writers,
		 long iters, struct uaf_result *res);

/* cmocka group setup/teardown: register the test's main thread. */
int sync_test_group_setup(void **state);
int sync_test_group_teardown(void **state);

#endif /* UKVM_TESTS_SYNC_TEST_H */
