/* SPDX-License-Identifier: MIT */
/*
 * The harness behind `ukvm race`.
 *
 * Actors.  Every thread of a scenario (a vCPU, the VMM, the host kernel) is
 * an actor: a ukvm thread with a thread-local identity that runs the jobs
 * the script posts to it, one at a time.  The race-point handler installed
 * with ukvm_race_arm() sees every RACE_POINT() any thread reaches; for an
 * actor it counts the hit, runs the actor's hook, and — if the script armed
 * a stop for that point — parks the actor there until the script releases
 * it.  Nothing else decides the interleaving: no sleeps, no timing.
 *
 * The script (the main thread) waits for exact states: an actor parked at a
 * point, an actor idle again, or a predicate over the state of the code under
 * test (a queued rwsem writer, a memslot writer waiting for the notifier
 * count, a dependency the validator recorded for a thread that is about to
 * block).  All handshakes go through one pthread mutex and condition
 * variable (or atomics), so ThreadSanitizer sees every hand-over.
 *
 * Output.  A scenario prints its CPU0/CPU1 table (what locking.rst's table
 * would show), the steps as they happen, and the outcome with its evidence:
 * which check caught what, with numbers.
 */
#ifndef UKVM_TOOLS_RACE_HARNESS_H
#define UKVM_TOOLS_RACE_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sync/race.h"

#define RACE_MAX_ACTORS		6
#define RACE_MAX_COLS		4
#define RACE_MAX_EVIDENCE	24

struct race_ctx;
struct race_actor;

typedef void (*race_job_fn)(struct race_actor *a, void *arg);
/* Called on the actor's thread at every race point it reaches, before a
 * possible stop; no harness lock is held. */
typedef void (*race_hook_fn)(struct race_actor *a, enum ukvm_race_point rp,
			     void *arg);

struct race_actor {
	struct race_ctx *ctx;
	char name[32];			/* thread (and validator task) name */
	const char *label;		/* "CPU0 (host)": used in the steps */
	pthread_t thread;
	bool started;

	/* Under ctx->mu. */
	race_job_fn job;
	void *job_arg;
	unsigned long posted, done;	/* jobs posted / finished */
	bool quit;
	int stop_rp, stop_nth;		/* armed stop (-1: none) */
	int parked;			/* point + 1 while parked, else 0 */
	bool release;
	unsigned int hits[RP_NR];
	unsigned int shown[RP_NR];	/* --verbose: hits printed */

	race_hook_fn hook;		/* set before a job is posted */
	void *hook_arg;
};

/* What a run showed. */
enum race_verdict {
	RACE_CORRECT,		/* the protection held: the outcome is correct */
	RACE_BUG,		/* the bug happened and a check caught it */
	RACE_BROKEN,		/* neither: set-up failed, or wrong on both counts */
	RACE_SKIPPED,
};

struct race_ctx {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct race_actor actors[RACE_MAX_ACTORS];
	int nr_actors;

	const char *name;
	bool unsafe, verbose, quiet, tap;
	FILE *out;			/* stdout */
	int step;			/* steps printed so far */

	/* The validator's reports of this run, captured. */
	FILE *lockdep_stream;
	char *lockdep_text;
	size_t lockdep_len;
	unsigned long poison_base;	/* host poison violations before the run */

	unsigned long setup_errors, setup_warnings;	/* reports before the race */
	bool validator_shown, poison_shown;	/* already in the evidence */

	char *evidence[RACE_MAX_EVIDENCE];
	int nr_evidence;
	const char *what;		/* what the script is waiting for (watchdog) */
};

/* ---- life of a run ---- */

/* Reset the validator, the invariant counters and the knobs; capture reports. */
void race_ctx_init(struct race_ctx *ctx, const char *name, bool unsafe,
		   bool verbose, bool quiet, bool tap);
/*
 * The machine state is set up: from here on only what the scenario's
 * threads do counts for the validator (the set-up's reports are kept for
 * race_common_checks(), its dependencies forgotten, so that a report names
 * the threads of the race).
 */
void race_setup_done(struct race_ctx *ctx);
/* Join every actor, disarm, clear the knobs, stop capturing; free evidence. */
void race_ctx_fini(struct race_ctx *ctx);
/* Stop capturing the validator's output (the text stays in lockdep_text). */
void race_ctx_end_capture(struct race_ctx *ctx);

/* ---- actors ---- */

struct race_actor *race_actor_new(struct race_ctx *ctx, const char *name,
				  const char *label);
/* Arm a stop at the @nth next hit of @rp (counting from now). */
void race_stop_at(struct race_actor *a, enum ukvm_race_point rp, int nth);
void race_post(struct race_actor *a, race_job_fn fn, void *arg);
/* Wait until @a is parked at @rp; false (and a message) if its job ended. */
bool race_wait_parked(struct race_actor *a, enum ukvm_race_point rp);
void race_continue(struct race_actor *a);
void race_wait_idle(struct race_actor *a);
bool race_actor_idle(struct race_actor *a);
unsigned int race_hits(struct race_actor *a, enum ukvm_race_point rp);
/* The actor running on this thread, or NULL. */
struct race_actor *race_self(void);

/* Wait (yielding) until @pred(@arg) holds; @what names it for the watchdog. */
void race_wait_until(struct race_ctx *ctx, bool (*pred)(void *arg), void *arg,
		     const char *what);

/*
 * True once the validator has recorded the dependency @from -> @to (class
 * names): the acquisition of @to by a thread holding @from was validated,
 * and that thread now blocks in it (or is about to).  False without lockdep.
 */
bool race_dep_recorded(const char *from, const char *to);
void race_wait_dep(struct race_ctx *ctx, const char *from, const char *to);

/* ---- output ---- */

void race_step(struct race_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void race_evidence(struct race_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One row of a CPU0/CPU1 table: @col is the column, -1 for a full-width row.
 * @unsafe_text replaces @text in the unsafe run (NULL: the same text). */
struct race_table_row {
	int col;
	const char *text;
	const char *unsafe_text;
};

struct race_table {
	int nr_cols;
	const char *cols[RACE_MAX_COLS];
	const struct race_table_row *rows;
	int nr_rows;
};

void race_print_table(FILE *f, const struct race_table *t, bool unsafe,
		      const char *prefix);
/* Print @text line by line, each line preceded by @prefix. */
void race_print_prefixed(FILE *f, const char *text, const char *prefix);

/*
 * Evidence every run reports: the validator's errors and warnings, the
 * UKVM_INVARIANT failures, the host's poison violations (the first and the
 * last unless the scenario reported them itself: validator_shown,
 * poison_shown).  Returns true if all are zero.
 */
bool race_common_checks(struct race_ctx *ctx);
/* --verbose: how often each actor reached each race point. */
void race_print_hits(struct race_ctx *ctx, const char *prefix);
unsigned long race_poison_violations(struct race_ctx *ctx);

#endif /* UKVM_TOOLS_RACE_HARNESS_H */
