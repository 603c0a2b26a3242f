// SPDX-License-Identifier: MIT
/* Assertion reporting for UKVM_BUG_ON / UKVM_WARN_ON / UKVM_INVARIANT. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "lockdep/lockdep.h"
#include "sync/bug.h"

static _Atomic unsigned long invariant_failures;

/* Print the first few failures of a site in full, then only count them. */
#define REPORTS_PER_SITE 3

void ukvm_bug(const char *file, int line, const char *cond)
{
	fprintf(stderr, "BUG: ukvm internal contract broken at %s:%d: %s\n",
		file, line, cond);
	lockdep_print_held_locks(stderr);
	fflush(stderr);
	abort();
}

void ukvm_invariant_failed(struct ukvm_bug_site *site, const char *fmt, ...)
{
	unsigned int n = atomic_fetch_add(&site->hits, 1);
	va_list ap;

	atomic_fetch_add(&invariant_failures, 1);
	if (n >= REPORTS_PER_SITE)
		return;
	fprintf(stderr, "WARNING: invariant failed at %s:%d (%s): ",
		site->file, site->line, site->cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", n + 1 == REPORTS_PER_SITE ?
		" (further failures here are only counted)" : "");
}

unsigned long ukvm_invariant_failures(void)
{
	return atomic_load(&invariant_failures);
}

void ukvm_invariant_reset(void)
{
	atomic_store(&invariant_failures, 0);
}
