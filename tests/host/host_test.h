/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the src/host unit tests: cmocka includes, a host per
 * test (64 MiB, poisoning on), a recording MMU notifier, checks usable from
 * worker threads, and iteration counts sized for the build variant.
 *
 * Deterministic: no sleeps, nothing asserts on time; threads hand over
 * through atomics.  Every test ends with no validator report and no
 * validator warning (every order the host takes is documented) and no host
 * WARNING.
 */
#ifndef UKVM_TESTS_HOST_TEST_H
#define UKVM_TESTS_HOST_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "host/host_internal.h"
#include "lockdep/lockdep.h"
#include "sync/sync.h"

#if defined(__SANITIZE_ADDRESS__)
#define HOST_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOST_TEST_ASAN 1
#endif
#endif
#ifndef HOST_TEST_ASAN
#define HOST_TEST_ASAN 0
#endif

#if UKVM_TSAN
#define SCALE(n) ((n) / 10 ? (n) / 10 : 1)
#elif HOST_TEST_ASAN
#define SCALE(n) ((n) / 4 ? (n) / 4 : 1)
#else
#define SCALE(n) (n)
#endif

#define TEST_MEM	(64UL << 20)
#define TEST_SWAP	(8UL << 20)
#define TEST_CPUS	4

extern _Atomic unsigned long host_test_failures;

/* cmocka asserts only in the test's thread: workers count failures here. */
#define T_CHECK(cond)                                                         \
	do {                                                                  \
		if (!(cond)) {                                                \
			if (atomic_fetch_add(&host_test_failures, 1) < 10)    \
				fprintf(stderr, "# %s:%d: check failed: %s\n", \
					__FILE__, __LINE__, #cond);           \
		}                                                             \
	} while (0)

/* cmocka setup/teardown: a fresh host per test, checked at the end. */
int host_test_setup(void **state);
int host_test_teardown(void **state);
#define HOST_TEST(f) cmocka_unit_test_setup_teardown(f, host_test_setup, host_test_teardown)
/* The same with another memory size (1 GiB tests). */
int host_test_setup_mem(size_t mem_bytes);

/* A secondary MMU that records what it is told. */
struct test_notifier {
	struct mmu_notifier mn;
	_Atomic long starts, ends, releases;
	_Atomic long young_calls;
	_Atomic long active;		/* starts - ends right now */
	_Atomic unsigned long last_start, last_end;
	_Atomic int last_event;
	_Atomic bool young;		/* what the aging callbacks answer */
	/* Optional hooks run inside invalidate_range_start / _end. */
	void (*on_start)(struct test_notifier *tn,
			 const struct mmu_notifier_range *r);
	void (*on_end)(struct test_notifier *tn,
		       const struct mmu_notifier_range *r);
};

void test_notifier_register(struct test_notifier *tn, struct host_mm *mm);
void test_notifier_unregister(struct test_notifier *tn, struct host_mm *mm);

/* Write/read one 64-bit value at @hva through host_access(). */
void put64(struct host_mm *mm, unsigned long hva, uint64_t v);
uint64_t get64(struct host_mm *mm, unsigned long hva);
/* The pfn mapped at @hva right now (hva_to_pfn(0) + put_page). */
unsigned long pfn_of(struct host_mm *mm, unsigned long hva);
/* The raw host pte of a 4 KiB-mapped @hva. */
uint64_t raw_pte(struct host_mm *mm, unsigned long hva);
unsigned long free_frames(void);

#endif /* UKVM_TESTS_HOST_TEST_H */
