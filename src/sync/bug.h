/* SPDX-License-Identifier: MIT */
/*
 * Assertions of ukvm.
 *
 *  UKVM_BUG_ON(c)    a broken internal contract after which continuing is
 *                    unsafe: report and abort() (debug_checks builds only).
 *  UKVM_WARN_ON(c)   evaluates c (always); if true, reports once per site and
 *                    counts an invariant failure; returns c.
 *  UKVM_INVARIANT(c, fmt, ...)  an invariant of kvm-brief.md Appendix B:
 *                    in debug_checks builds, if c is false, reports (first
 *                    few per site) and counts it; compiled out otherwise.
 *
 * ukvm_invariant_failures() is what `ukvm run` and the tests read: every
 * verified run must end with 0.
 */
#ifndef UKVM_SYNC_BUG_H
#define UKVM_SYNC_BUG_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"

struct ukvm_bug_site {
	const char *file;
	int line;
	const char *cond;
	_Atomic unsigned int hits;
};

void ukvm_bug(const char *file, int line, const char *cond) __attribute__((noreturn));
void ukvm_invariant_failed(struct ukvm_bug_site *site, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
unsigned long ukvm_invariant_failures(void);
void ukvm_invariant_reset(void);

#if UKVM_DEBUG_CHECKS
#define UKVM_BUG_ON(c)                                                        \
	do {                                                                  \
		if (__builtin_expect(!!(c), 0))                               \
			ukvm_bug(__FILE__, __LINE__, #c);                     \
	} while (0)
#define UKVM_INVARIANT(c, ...)                                                \
	do {                                                                  \
		if (__builtin_expect(!(c), 0)) {                              \
			static struct ukvm_bug_site __s = {                   \
				__FILE__, __LINE__, #c, 0 };                  \
			ukvm_invariant_failed(&__s, __VA_ARGS__);             \
		}                                                             \
	} while (0)
#else
#define UKVM_BUG_ON(c)		do { (void)sizeof(c); } while (0)
#define UKVM_INVARIANT(c, ...)	do { (void)sizeof(c); } while (0)
#endif

#define UKVM_WARN_ON(c)                                                       \
	({                                                                    \
		bool __w = !!(c);                                             \
		if (__builtin_expect(__w, 0)) {                               \
			static struct ukvm_bug_site __s = {                   \
				__FILE__, __LINE__, #c, 0 };                  \
			ukvm_invariant_failed(&__s, "%s", #c);                \
		}                                                             \
		__w;                                                          \
	})

#endif /* UKVM_SYNC_BUG_H */
