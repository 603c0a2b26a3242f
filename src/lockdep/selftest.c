// SPDX-License-Identifier: MIT
/*
 * Self-test harness: runs the case tables of selftest_cases*.c, each in a
 * fresh validator state (lockdep_reset(), the case's own documented order
 * or none, reports captured in a memory stream), and compares the set of
 * report kinds the case produced with the one it expects, in the spirit of
 * lib/locking-selftest.c.  Cross-thread cases run their threads one after
 * the other on real pthreads, so every interleaving is deterministic.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lockdep/order.h"
#include "lockdep/selftest.h"
#include "lockdep/selftest_internal.h"

static FILE *st_stream;
static char *st_buf;
static size_t st_len;

static const char *const kind_names[LDR_NR] = {
	[LDR_CIRCULAR] = "circular",
	[LDR_RECURSIVE] = "recursive",
	[LDR_WAIT_CONTEXT] = "wait-context",
	[LDR_MIGHT_SLEEP] = "might-sleep",
	[LDR_ASSERT] = "assert",
	[LDR_BAD_UNLOCK] = "bad-unlock",
	[LDR_NEST_NOT_HELD] = "nest-not-held",
	[LDR_ORDER_VIOLATION] = "violation",
	[LDR_UNKNOWN_CLASS] = "unknown-class",
	[LDR_SUSPICIOUS_RCU] = "suspicious-rcu",
	[LDR_HELD_AT_EXIT] = "held-at-exit",
	[LDR_UNDOCUMENTED] = "undocumented",
};

void st_map(struct lockdep_map *m, struct lock_class_key *key)
{
	static const uint8_t waits[LD_TYPE_NR][2] = {
		[LD_TYPE_MUTEX] = { LD_WAIT_SLEEP, LD_WAIT_SLEEP },
		[LD_TYPE_RWSEM] = { LD_WAIT_SLEEP, LD_WAIT_SLEEP },
		[LD_TYPE_SPINLOCK] = { LD_WAIT_CONFIG, LD_WAIT_CONFIG },
		[LD_TYPE_RWLOCK] = { LD_WAIT_CONFIG, LD_WAIT_CONFIG },
		[LD_TYPE_RAW_SPINLOCK] = { LD_WAIT_SPIN, LD_WAIT_SPIN },
		[LD_TYPE_SRCU] = { LD_WAIT_SLEEP, LD_WAIT_FREE },
		[LD_TYPE_RCU] = { LD_WAIT_CONFIG, LD_WAIT_FREE },
		[LD_TYPE_MAP] = { LD_WAIT_SLEEP, LD_WAIT_FREE },
	};

	lockdep_init_map_type(m, key->name, key, 0, waits[key->type][0],
			      waits[key->type][1], key->type);
}

struct st_thread_arg {
	const char *name;
	void (*fn)(void *arg);
	void *arg;
};

static void *st_thread_fn(void *p)
{
	struct st_thread_arg *a = p;

	lockdep_set_task_name(a->name);
	a->fn(a->arg);
	return NULL;
}

void st_thread(const char *name, void (*fn)(void *arg), void *arg)
{
	struct st_thread_arg a = { name, fn, arg };
	pthread_t th;

	if (pthread_create(&th, NULL, st_thread_fn, &a))
		abort();
	pthread_join(th, NULL);
}

const char *st_text(struct st_ctx *ctx)
{
	fflush(st_stream);
	ctx->text = st_buf;
	return st_buf ? st_buf : "";
}

bool st_fail(struct st_ctx *ctx, const char *why)
{
	ctx->why = why;
	return false;
}

static void kinds_str(unsigned int mask, char *buf, size_t len)
{
	buf[0] = '\0';
	if (mask & ST_ABORT)
		snprintf(buf, len, "abort");
	for (int k = 0; k < LDR_NR; k++)
		if (mask & ST_KIND(k))
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s",
				 buf[0] ? "+" : "", kind_names[k]);
	if (!buf[0])
		snprintf(buf, len, "none");
}

static unsigned int st_got(void)
{
	struct lockdep_stats st;
	unsigned int mask = 0;

	lockdep_get_stats(&st);
	for (int k = 0; k < LDR_NR; k++)
		if (st.by_kind[k])
			mask |= ST_KIND(k);
	return mask;
}

static void st_prepare(const struct st_case *c)
{
	char err[1024];

	lockdep_reset();
	lockdep_set_report_mode(LOCKDEP_REPORT_CONTINUE);
	lockdep_set_undocumented_is_error(false);
	if (c->order) {
		if (lockdep_order_load_text(c->order, c->name, "current", err,
					    sizeof(err)))
			fprintf(stderr, "selftest %s: bad order text:\n%s", c->name, err);
		lockdep_order_set_enabled(true);
	} else {
		lockdep_order_set_enabled(false);
	}
	st_buf = NULL;
	st_len = 0;
	st_stream = open_memstream(&st_buf, &st_len);
	if (!st_stream)
		abort();
	lockdep_set_report_stream(st_stream);
}

static void st_show_text(FILE *out, bool tap)
{
	char *line = st_buf, *nl;

	for (; line && *line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		fprintf(out, "%s    %s\n", tap ? "#" : "", line);
		if (!nl)
			break;
	}
}

/* Returns true if the case passed. */
static bool st_run_one(const struct st_case *c, int n, FILE *out, bool tap,
		       bool verbose)
{
	struct st_ctx ctx = { 0 };
	char exp[96], got[96];
	unsigned int mask;
	bool extra, ok;

	st_prepare(c);
	extra = c->run(&ctx);
	mask = st_got();
	if (c->expect & ST_ABORT)
		mask = extra ? (mask | ST_ABORT) : mask;
	lockdep_set_report_stream(NULL);
	fclose(st_stream);
	if (lockdep_depth() && !ctx.why)
		ctx.why = "the case left locks held";
	ok = mask == c->expect && (extra || (c->expect & ST_ABORT)) && !ctx.why;
	kinds_str(c->expect, exp, sizeof(exp));
	kinds_str(mask, got, sizeof(got));
	if (tap)
		fprintf(out, "%sok %d - %s # expect=%s got=%s%s%s\n", ok ? "" : "not ",
			n, c->name, exp, got, ctx.why ? ": " : "",
			ctx.why ? ctx.why : "");
	else
		fprintf(out, "%-34s expect=%-14s got=%-14s %s%s%s\n", c->name, exp,
			got, ok ? "ok" : "FAILED", ctx.why ? ": " : "",
			ctx.why ? ctx.why : "");
	if (verbose || (!ok && !tap))
		st_show_text(out, tap);
	free(st_buf);
	st_buf = NULL;
	return ok;
}

int lockdep_selftest_nr_cases(void)
{
	return st_nr_cases_basic + st_nr_cases_more;
}

static bool st_match(const struct st_case *c, const char *filter)
{
	return !filter || strstr(c->name, filter);
}

int lockdep_selftest(FILE *out, bool tap, bool verbose, const char *filter)
{
	const struct st_case *tables[2] = { st_cases_basic, st_cases_more };
	const int sizes[2] = { st_nr_cases_basic, st_nr_cases_more };
	int n = 0, failed = 0, total = 0;

	for (int t = 0; t < 2; t++)
		for (int i = 0; i < sizes[t]; i++)
			total += st_match(&tables[t][i], filter);
	if (tap)
		fprintf(out, "1..%d\n", total);
	for (int t = 0; t < 2; t++)
		for (int i = 0; i < sizes[t]; i++)
			if (st_match(&tables[t][i], filter))
				failed += !st_run_one(&tables[t][i], ++n, out,
						      tap, verbose);
	if (!tap)
		fprintf(out, "%s: %d of %d self-test cases passed\n",
			failed ? "FAILED" : "Good", n - failed, n);
	/* Leave a clean validator with the built-in order behind. */
	lockdep_reset();
	lockdep_order_load_text(ukvm_lock_order_text, "src/lockdep/lock-order.txt",
				"current", NULL, 0);
	lockdep_order_set_enabled(true);
	return failed;
}
