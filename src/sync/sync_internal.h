/* SPDX-License-Identifier: MIT */
/*
 * Helpers private to src/sync: futex wait/wake, cpu_relax(), and the
 * ThreadSanitizer annotations.
 *
 * Futexes only ever put a thread to sleep or wake it: every happens-before
 * edge between threads comes from the C11 atomic (or pthread) operations
 * around them, because ThreadSanitizer does not see the futex syscall.
 */
#ifndef UKVM_SYNC_SYNC_INTERNAL_H
#define UKVM_SYNC_SYNC_INTERNAL_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "lockdep/lockdep.h"

#if UKVM_TSAN
#include <sanitizer/tsan_interface.h>
#define sync_tsan_acquire(addr) __tsan_acquire((void *)(addr))
#define sync_tsan_release(addr) __tsan_release((void *)(addr))
#else
#define sync_tsan_acquire(addr) do { (void)(addr); } while (0)
#define sync_tsan_release(addr) do { (void)(addr); } while (0)
#endif

/* A spin-wait hint: tell the core (and its SMT sibling) that we are polling. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/*
 * Sleep while *@uaddr == @val (the kernel re-checks the value atomically with
 * queueing us, so a wake-up sent after the caller changed the word is never
 * lost).  Returns 0, or -errno: -EAGAIN (value already differs), -EINTR,
 * -ETIMEDOUT.  @timeout is relative, NULL means forever.
 */
static inline int futex_wait(_Atomic uint32_t *uaddr, uint32_t val,
			     const struct timespec *timeout)
{
	long r = syscall(SYS_futex, (uint32_t *)uaddr, FUTEX_WAIT_PRIVATE, val,
			 timeout, NULL, 0);

	return r < 0 ? -errno : 0;
}

/* Wake up to @nr threads sleeping on @uaddr; returns how many were woken. */
static inline int futex_wake(_Atomic uint32_t *uaddr, int nr)
{
	long r = syscall(SYS_futex, (uint32_t *)uaddr, FUTEX_WAKE_PRIVATE, nr,
			 NULL, NULL, 0);

	return r < 0 ? -errno : (int)r;
}

/*
 * Report a misuse of a primitive (destroying a held lock, cleaning up an SRCU
 * domain with readers inside): through the validator when it runs, so that it
 * is counted (LDR_ASSERT) and printed with the held locks; on stderr when the
 * validator is compiled out or switched off.
 */
static inline void sync_report_misuse(const char *what,
				      const struct lockdep_map *map,
				      const struct lockdep_site *site)
{
	if (UKVM_LOCKDEP && lockdep_enabled())
		lockdep_assert_failed(what, map, site);
	else
		fprintf(stderr, "ukvm: BUG: %s\n", what);
}

#endif /* UKVM_SYNC_SYNC_INTERNAL_H */
