// SPDX-License-Identifier: MIT
/*
 * Actors, the race-point handler, stop-at-point / continue and the waits of
 * the `ukvm race` scripts (see race_harness.h).
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "host/host.h"
#include "lockdep/lockdep.h"
#include "race_harness.h"
#include "sync/bug.h"
#include "sync/thread.h"

#if UKVM_LOCKDEP
#include "lockdep/lockdep_internal.h"
#endif

/*
 * A run that does not reach the state the script waits for is broken (a bug
 * in ukvm or in the script): after this long, say what was awaited and
 * stop.  It never decides an interleaving.
 */
#define RACE_WATCHDOG_SEC 120

/* --verbose prints this many hits of each point by each actor. */
#define RACE_SHOWN_HITS 3

static __thread struct race_actor *current_actor;

struct race_actor *race_self(void)
{
	return current_actor;
}

static void deadline_in(struct timespec *ts, int sec)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += sec;
}

static void __attribute__((noreturn)) race_stuck(struct race_ctx *ctx)
{
	fflush(ctx->out);
	fprintf(stderr, "ukvm race %s: stuck for %d s waiting for: %s\n",
		ctx->name, RACE_WATCHDOG_SEC, ctx->what ? ctx->what : "?");
	for (int i = 0; i < ctx->nr_actors; i++) {
		struct race_actor *a = &ctx->actors[i];

		fprintf(stderr, "  %s: %s%s\n", a->name,
			a->parked ? "parked at " : (a->posted != a->done ? "running" : "idle"),
			a->parked ? ukvm_race_point_names[a->parked - 1] : "");
	}
	_exit(1);
}

/* Under ctx->mu: wait for a change of the shared state. */
static void ctx_wait(struct race_ctx *ctx)
{
	struct timespec ts;

	deadline_in(&ts, RACE_WATCHDOG_SEC);
	if (pthread_cond_timedwait(&ctx->cv, &ctx->mu, &ts) == ETIMEDOUT)
		race_stuck(ctx);
}

/* ---- the handler ---- */

static void race_handler(enum ukvm_race_point rp, void *arg)
{
	struct race_actor *a = current_actor;
	struct race_ctx *ctx = arg;
	bool stop;

	if (!a || a->ctx != ctx)
		return;
	if (a->hook)
		a->hook(a, rp, a->hook_arg);

	pthread_mutex_lock(&ctx->mu);
	a->hits[rp]++;
	stop = a->stop_rp == (int)rp && --a->stop_nth == 0;
	if (stop) {
		a->stop_rp = -1;
		a->parked = (int)rp + 1;
		a->release = false;
		pthread_cond_broadcast(&ctx->cv);
	}
	pthread_mutex_unlock(&ctx->mu);

	/* The first few hits of each point, as they happen; then only counts. */
	if (ctx->verbose && a->shown[rp] < RACE_SHOWN_HITS) {
		a->shown[rp]++;
		fprintf(ctx->out, "%s      . %s reached %s (%s)%s%s\n", ctx->tap ? "# " : "",
			a->name, ukvm_race_point_names[rp], ukvm_race_point_descs[rp],
			stop ? ": stopped" : "", a->shown[rp] == RACE_SHOWN_HITS ?
			"; further hits only counted" : "");
	}
	if (!stop)
		return;

	pthread_mutex_lock(&ctx->mu);
	while (!a->release)
		ctx_wait(ctx);
	a->parked = 0;
	pthread_cond_broadcast(&ctx->cv);
	pthread_mutex_unlock(&ctx->mu);
}

/* ---- actors ---- */

static void *actor_main(void *p)
{
	struct race_actor *a = p;
	struct race_ctx *ctx = a->ctx;

	current_actor = a;
	pthread_mutex_lock(&ctx->mu);
	for (;;) {
		race_job_fn fn;
		void *arg;

		while (!a->quit && a->posted == a->done)
			pthread_cond_wait(&ctx->cv, &ctx->mu);
		if (a->posted == a->done)
			break;
		fn = a->job;
		arg = a->job_arg;
		pthread_mutex_unlock(&ctx->mu);
		fn(a, arg);
		pthread_mutex_lock(&ctx->mu);
		a->done++;
		pthread_cond_broadcast(&ctx->cv);
	}
	pthread_mutex_unlock(&ctx->mu);
	current_actor = NULL;
	return NULL;
}

struct race_actor *race_actor_new(struct race_ctx *ctx, const char *name,
				  const char *label)
{
	struct race_actor *a;
	int r;

	if (ctx->nr_actors == RACE_MAX_ACTORS) {
		fprintf(stderr, "ukvm race: too many actors\n");
		abort();
	}
	a = &ctx->actors[ctx->nr_actors++];
	memset(a, 0, sizeof(*a));
	a->ctx = ctx;
	a->stop_rp = -1;
	a->label = label;
	snprintf(a->name, sizeof(a->name), "%s", name);
	r = ukvm_thread_create(&a->thread, a->name, actor_main, a);
	if (r) {
		fprintf(stderr, "ukvm race: thread %s: %s\n", name, strerror(-r));
		abort();
	}
	a->started = true;
	return a;
}

void race_stop_at(struct race_actor *a, enum ukvm_race_point rp, int nth)
{
	pthread_mutex_lock(&a->ctx->mu);
	a->stop_rp = (int)rp;
	a->stop_nth = nth;
	pthread_mutex_unlock(&a->ctx->mu);
}

void race_post(struct race_actor *a, race_job_fn fn, void *arg)
{
	struct race_ctx *ctx = a->ctx;

	pthread_mutex_lock(&ctx->mu);
	while (a->posted != a->done)
		ctx_wait(ctx);
	a->job = fn;
	a->job_arg = arg;
	a->posted++;
	pthread_cond_broadcast(&ctx->cv);
	pthread_mutex_unlock(&ctx->mu);
}

bool race_wait_parked(struct race_actor *a, enum ukvm_race_point rp)
{
	struct race_ctx *ctx = a->ctx;
	bool ok;

	pthread_mutex_lock(&ctx->mu);
	ctx->what = ukvm_race_point_names[rp];
	while (a->parked != (int)rp + 1 && a->posted != a->done)
		ctx_wait(ctx);
	ok = a->parked == (int)rp + 1;
	if (!ok)
		a->stop_rp = -1;
	ctx->what = NULL;
	pthread_mutex_unlock(&ctx->mu);
	if (!ok)
		race_evidence(ctx, "script: %s finished without reaching %s",
			      a->name, ukvm_race_point_names[rp]);
	return ok;
}

void race_continue(struct race_actor *a)
{
	pthread_mutex_lock(&a->ctx->mu);
	a->release = true;
	pthread_cond_broadcast(&a->ctx->cv);
	pthread_mutex_unlock(&a->ctx->mu);
}

void race_wait_idle(struct race_actor *a)
{
	struct race_ctx *ctx = a->ctx;

	pthread_mutex_lock(&ctx->mu);
	ctx->what = "an actor to finish its job";
	while (a->posted != a->done)
		ctx_wait(ctx);
	ctx->what = NULL;
	pthread_mutex_unlock(&ctx->mu);
}

void race_finish(struct race_ctx *ctx)
{
	pthread_mutex_lock(&ctx->mu);
	for (int i = 0; i < ctx->nr_actors; i++) {
		ctx->actors[i].stop_rp = -1;
		ctx->actors[i].release = true;
	}
	pthread_cond_broadcast(&ctx->cv);
	ctx->what = "the actors to finish";
	for (int i = 0; i < ctx->nr_actors; i++)
		while (ctx->actors[i].posted != ctx->actors[i].done)
			ctx_wait(ctx);
	ctx->what = NULL;
	pthread_mutex_unlock(&ctx->mu);
}

bool race_actor_idle(struct race_actor *a)
{
	bool idle;

	pthread_mutex_lock(&a->ctx->mu);
	idle = a->posted == a->done;
	pthread_mutex_unlock(&a->ctx->mu);
	return idle;
}

unsigned int race_hits(struct race_actor *a, enum ukvm_race_point rp)
{
	unsigned int n;

	pthread_mutex_lock(&a->ctx->mu);
	n = a->hits[rp];
	pthread_mutex_unlock(&a->ctx->mu);
	return n;
}

void race_wait_until(struct race_ctx *ctx, bool (*pred)(void *arg), void *arg,
		     const char *what)
{
	time_t limit = time(NULL) + RACE_WATCHDOG_SEC;

	ctx->what = what;
	while (!pred(arg)) {
		if (time(NULL) > limit)
			race_stuck(ctx);
		sched_yield();
	}
	ctx->what = NULL;
}

/* ---- the validator's graph ---- */

bool race_dep_recorded(const char *from, const char *to)
{
	bool found = false;

#if UKVM_LOCKDEP
	pthread_mutex_lock(&graph_mutex);
	for (unsigned long e = 0; e < lockdep_nr_deps() && !found; e++) {
		const struct lock_dep *d = lockdep_dep((int)e);

		found = !strcmp(lock_classes[d->from].name, from) &&
			!strcmp(lock_classes[d->to].name, to);
	}
	pthread_mutex_unlock(&graph_mutex);
#else
	(void)from;
	(void)to;
#endif
	return found;
}

struct dep_pair {
	const char *from, *to;
};

static bool dep_pred(void *arg)
{
	const struct dep_pair *p = arg;

	return race_dep_recorded(p->from, p->to);
}

void race_wait_dep(struct race_ctx *ctx, const char *from, const char *to)
{
	struct dep_pair p = { from, to };

	race_wait_until(ctx, dep_pred, &p, to);
}

/* ---- the run ---- */

void race_ctx_init(struct race_ctx *ctx, const char *name, bool unsafe,
		   bool verbose, bool quiet, bool tap)
{
	struct host_mem_stats st;

	memset(ctx, 0, sizeof(*ctx));
	pthread_mutex_init(&ctx->mu, NULL);
	pthread_cond_init(&ctx->cv, NULL);
	ctx->name = name;
	ctx->unsafe = unsafe;
	ctx->verbose = verbose;
	ctx->quiet = quiet;
	ctx->tap = tap;
	ctx->out = stdout;

	ukvm_unsafe_clear_all();
	ukvm_invariant_reset();
	lockdep_reset();
	ctx->lockdep_stream = open_memstream(&ctx->lockdep_text, &ctx->lockdep_len);
	if (ctx->lockdep_stream)
		lockdep_set_report_stream(ctx->lockdep_stream);
	host_mem_get_stats(&st);
	ctx->poison_base = st.poison_violations;
	ukvm_race_arm(race_handler, ctx);
}

void race_setup_done(struct race_ctx *ctx)
{
	ctx->setup_errors += lockdep_report_count();
	ctx->setup_warnings += lockdep_warning_count();
	lockdep_reset();
}

void race_ctx_end_capture(struct race_ctx *ctx)
{
	if (!ctx->lockdep_stream)
		return;
	lockdep_set_report_stream(NULL);
	fclose(ctx->lockdep_stream);
	ctx->lockdep_stream = NULL;
}

void race_ctx_fini(struct race_ctx *ctx)
{
	pthread_mutex_lock(&ctx->mu);
	for (int i = 0; i < ctx->nr_actors; i++) {
		ctx->actors[i].quit = true;
		ctx->actors[i].release = true;
	}
	pthread_cond_broadcast(&ctx->cv);
	pthread_mutex_unlock(&ctx->mu);
	for (int i = 0; i < ctx->nr_actors; i++)
		if (ctx->actors[i].started)
			pthread_join(ctx->actors[i].thread, NULL);
	ukvm_race_disarm();
	ukvm_unsafe_clear_all();
	race_ctx_end_capture(ctx);
	/* A scenario's deliberate cycles must not haunt what comes next. */
	lockdep_reset();
	free(ctx->lockdep_text);
	ctx->lockdep_text = NULL;
	for (int i = 0; i < ctx->nr_evidence; i++)
		free(ctx->evidence[i]);
	ctx->nr_evidence = 0;
	pthread_cond_destroy(&ctx->cv);
	pthread_mutex_destroy(&ctx->mu);
}

/* ---- output ---- */

void race_step(struct race_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	ctx->step++;
	if (ctx->quiet)
		return;
	fprintf(ctx->out, "%s%3d. ", ctx->tap ? "# " : "", ctx->step);
	va_start(ap, fmt);
	vfprintf(ctx->out, fmt, ap);
	va_end(ap);
	fputc('\n', ctx->out);
	fflush(ctx->out);
}

void race_evidence(struct race_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	if (ctx->nr_evidence == RACE_MAX_EVIDENCE)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (s)
		ctx->evidence[ctx->nr_evidence++] = s;
}

void race_print_hits(struct race_ctx *ctx, const char *prefix)
{
	fprintf(ctx->out, "%srace points reached:\n", prefix);
	for (int i = 0; i < ctx->nr_actors; i++) {
		struct race_actor *a = &ctx->actors[i];

		fprintf(ctx->out, "%s  %-24s", prefix, a->name);
		for (int rp = 0; rp < RP_NR; rp++)
			if (a->hits[rp])
				fprintf(ctx->out, " %s x%u", ukvm_race_point_names[rp],
					a->hits[rp]);
		fputc('\n', ctx->out);
	}
}

unsigned long race_poison_violations(struct race_ctx *ctx)
{
	struct host_mem_stats st;

	host_mem_get_stats(&st);
	return st.poison_violations - ctx->poison_base;
}

bool race_common_checks(struct race_ctx *ctx)
{
	unsigned long errors = lockdep_report_count() + ctx->setup_errors;
	unsigned long warnings = lockdep_warning_count() + ctx->setup_warnings;
	unsigned long inv = ukvm_invariant_failures(), poison = race_poison_violations(ctx);

	if (!ctx->validator_shown)
		race_evidence(ctx, "lock validator: %lu error report%s, %lu warning%s",
			      errors, errors == 1 ? "" : "s", warnings,
			      warnings == 1 ? "" : "s");
	race_evidence(ctx, "UKVM_INVARIANT (kvm-brief.md Appendix B): %lu failure%s in all",
		      inv, inv == 1 ? "" : "s");
	if (!ctx->poison_shown)
		race_evidence(ctx, "host poison check: %lu write%s into freed frames",
			      poison, poison == 1 ? "" : "s");
	return !errors && !warnings && !inv && !poison;
}

unsigned long race_validator_evidence(struct race_ctx *ctx, const char *note)
{
	struct lockdep_stats st;
	unsigned long circ, viol, errors, warnings;

	lockdep_get_stats(&st);
	circ = st.by_kind[LDR_CIRCULAR];
	viol = st.by_kind[LDR_ORDER_VIOLATION];
	errors = st.errors + ctx->setup_errors;
	warnings = st.warnings + ctx->setup_warnings;
	race_evidence(ctx, "lock validator: %lu circular-dependency report%s%s, %lu "
		      "documented-order violation%s (%lu error report%s, %lu warning%s "
		      "in all)", circ, circ == 1 ? "" : "s", note, viol, viol == 1 ? "" : "s",
		      errors, errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s");
	ctx->validator_shown = true;
	return circ;
}
