/* SPDX-License-Identifier: MIT */
/* Private to the self-test files: the case table and its helpers. */
#ifndef UKVM_LOCKDEP_SELFTEST_INTERNAL_H
#define UKVM_LOCKDEP_SELFTEST_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "lockdep/lockdep.h"

#define ST_NONE		0u
#define ST_KIND(k)	(1u << (k))
#define ST_ABORT	(1u << 31)	/* the case's child process must abort() */

struct st_ctx {
	char *text;		/* the reports printed so far (flushed) */
	const char *why;	/* set by a case whose own check failed */
};

struct st_case {
	const char *name;
	unsigned int expect;	/* ST_KIND() bits, ST_NONE or ST_ABORT */
	const char *order;	/* documented order for the case, NULL: off */
	bool (*run)(struct st_ctx *ctx);
};

extern const struct st_case st_cases_basic[];
extern const int st_nr_cases_basic;
extern const struct st_case st_cases_more[];
extern const int st_nr_cases_more;

/* A bare map of a lock type, with that type's wait types. */
void st_map(struct lockdep_map *m, struct lock_class_key *key);
/* Run @fn(@arg) on a new thread named @name and wait for it. */
void st_thread(const char *name, void (*fn)(void *arg), void *arg);
/* The report text captured so far (NUL-terminated, owned by the harness). */
const char *st_text(struct st_ctx *ctx);
bool st_fail(struct st_ctx *ctx, const char *why);

#define ST_KEY(var, nm, ty) \
	static struct lock_class_key var = { .name = (nm), .type = (ty) }

/* Shorthands over the two entry points (sites are real: reports show them). */
#define st_lock(m)		lock_acquire((m), 0, 0, 0, 1, NULL, LOCKDEP_SITE)
#define st_lock_nested(m, s)	lock_acquire((m), (s), 0, 0, 1, NULL, LOCKDEP_SITE)
#define st_lock_nest(m, n)	lock_acquire((m), 0, 0, 0, 1, (n), LOCKDEP_SITE)
#define st_rlock(m)		lock_acquire((m), 0, 0, 1, 1, NULL, LOCKDEP_SITE)
#define st_Rlock(m)		lock_acquire((m), 0, 0, 2, 1, NULL, LOCKDEP_SITE)
#define st_trylock(m)		lock_acquire((m), 0, 1, 0, 1, NULL, LOCKDEP_SITE)
#define st_sync(m)		lock_sync((m), 0, 0, 1, NULL, LOCKDEP_SITE)
#define st_unlock(m)		lock_release((m), LOCKDEP_SITE)

#endif /* UKVM_LOCKDEP_SELFTEST_INTERNAL_H */
