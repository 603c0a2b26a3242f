// SPDX-License-Identifier: MIT
/*
 * Self-test cases, part 2: wait contexts, assertions, the documented order,
 * the held stack (bad unlock, out-of-order release, exit with locks held,
 * overflow) and the chain cache.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lockdep/selftest_internal.h"

ST_KEY(kmutex, "mutex", LD_TYPE_MUTEX);
ST_KEY(kspin, "spin", LD_TYPE_SPINLOCK);
ST_KEY(kraw, "raw", LD_TYPE_RAW_SPINLOCK);
ST_KEY(krcu, "rcu_read_lock", LD_TYPE_RCU);
ST_KEY(ksrcu, "srcu", LD_TYPE_SRCU);
ST_KEY(kA, "A", LD_TYPE_MUTEX);
ST_KEY(kB, "B", LD_TYPE_MUTEX);
ST_KEY(kC, "C", LD_TYPE_MUTEX);
ST_KEY(kD, "D", LD_TYPE_MUTEX);
ST_KEY(kE, "E", LD_TYPE_MUTEX);
ST_KEY(kL, "L", LD_TYPE_MUTEX);
ST_KEY(kZ, "Z", LD_TYPE_MUTEX);

static struct lockdep_map mtx, spin, raw, rcu, srcu, A, B, C, D, E, L, Z;
/* The assertion macros want a lock object with a dep_map. */
static struct { struct lockdep_map dep_map; } W;

static void st_init_maps(void)
{
	st_map(&mtx, &kmutex);
	st_map(&spin, &kspin);
	st_map(&raw, &kraw);
	st_map(&rcu, &krcu);
	st_map(&srcu, &ksrcu);
	st_map(&A, &kA);
	st_map(&B, &kB);
	st_map(&C, &kC);
	st_map(&D, &kD);
	st_map(&E, &kE);
	st_map(&L, &kL);
	st_map(&Z, &kZ);
	st_map(&W.dep_map, &kmutex);
}

static bool case_mutex_in_spin(struct st_ctx *ctx)
{
	st_init_maps();
	st_lock(&spin);
	st_lock(&mtx);
	st_unlock(&mtx);
	st_unlock(&spin);
	if (!strstr(st_text(ctx), "-{4:4}"))
		return st_fail(ctx, "the report lacks the {inner:outer} wait types");
	return true;
}

static bool case_spin_in_raw(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_lock(&raw);
	st_lock(&spin);
	st_unlock(&spin);
	st_unlock(&raw);
	return true;
}

static bool case_sleep_in_rcu(struct st_ctx *ctx)
{
	st_init_maps();
	st_Rlock(&rcu);
	might_sleep();
	st_unlock(&rcu);
	if (!strstr(st_text(ctx), "BUG: sleeping function called from invalid context at"))
		return st_fail(ctx, "no might_sleep banner");
	return true;
}

static bool case_sync_in_spin(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_lock(&spin);
	st_sync(&srcu);
	st_unlock(&spin);
	return true;
}

static bool case_trylock_exempt(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_lock(&spin);
	st_trylock(&mtx);
	st_unlock(&mtx);
	st_unlock(&spin);
	return true;
}

static bool case_assert_fails(struct st_ctx *ctx)
{
	st_init_maps();
	lockdep_assert_held(&W);
	if (!strstr(st_text(ctx), "WARNING: lock mutex not held at case_assert_fails"))
		return st_fail(ctx, "unexpected assertion text");
	return true;
}

static bool case_assert_ok(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_lock(&W.dep_map);
	lockdep_assert_held(&W);
	lockdep_assert_held_write(&W);
	st_unlock(&W.dep_map);
	lockdep_assert_not_held(&W);
	return true;
}

static bool case_assert_read(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_lock(&W.dep_map);
	lockdep_assert_held_read(&W);
	st_unlock(&W.dep_map);
	return true;
}

static bool case_rcu_suspicious(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	if (lock_is_held_type(&rcu, 1) == LOCK_STATE_NOT_HELD)
		lockdep_rcu_suspicious("rcu_dereference_check() outside a reader",
				       LOCKDEP_SITE);
	return true;
}

static const char order_abc[] =
	"class A mutex\nclass B mutex\nclass C mutex\nclass D mutex\n"
	"class E mutex\nclass F mutex\nclass L mutex leaf\nclass Z2 mutex\n"
	"order A => B\norder B => C src=\"selftest\"\norder C => D\norder E => F\n";

/* B => C makes B no leaf, so B -> A is judged by the cycle A => B closes. */
static bool case_order_violation(struct st_ctx *ctx)
{
	const char *t;

	st_init_maps();
	st_lock(&B);
	st_lock(&A);
	st_unlock(&A);
	st_unlock(&B);
	t = st_text(ctx);
	if (!strstr(t, "WARNING: lock order violates the documented order") ||
	    !strstr(t, "A => B"))
		return st_fail(ctx, "the report does not quote the rule A => B");
	return true;
}

static bool case_order_leaf(struct st_ctx *ctx)
{
	st_init_maps();
	st_lock(&L);
	st_lock(&A);
	st_unlock(&A);
	st_unlock(&L);
	if (!strstr(st_text(ctx), "L is a leaf"))
		return st_fail(ctx, "the report does not say L is a leaf");
	return true;
}

static bool case_order_undocumented(struct st_ctx *ctx)
{
	st_init_maps();
	st_lock(&E);
	st_lock(&A);
	st_unlock(&A);
	st_unlock(&E);
	if (!strstr(st_text(ctx), "WARNING: undocumented lock order E -> A"))
		return st_fail(ctx, "no undocumented-order banner");
	return true;
}

static bool case_order_documented(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_lock(&A);
	st_lock(&D);	/* A => B => C => D */
	st_unlock(&D);
	st_unlock(&A);
	return true;
}

static bool case_unknown_class(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_lock(&Z);
	st_unlock(&Z);
	return true;
}

static bool case_bad_unlock(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_unlock(&A);
	return true;
}

static bool case_out_of_order(struct st_ctx *ctx)
{
	st_init_maps();
	st_lock(&A);
	st_lock(&B);
	st_lock(&C);
	st_unlock(&B);
	if (lock_is_held_type(&B, -1) != LOCK_STATE_NOT_HELD ||
	    lock_is_held_type(&C, -1) != LOCK_STATE_HELD || lockdep_depth() != 2)
		return st_fail(ctx, "held stack wrong after releasing the middle lock");
	st_lock(&D);
	st_unlock(&A);
	st_unlock(&D);
	st_unlock(&C);
	return true;
}

static void exit_holding(void *arg)
{
	(void)arg;
	st_lock(&A);
}

static bool case_held_at_exit(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_thread("leaker", exit_holding, NULL);
	return true;
}

static bool case_sync_not_pushed(struct st_ctx *ctx)
{
	st_init_maps();
	st_sync(&srcu);
	if (lockdep_depth() != 0)
		return st_fail(ctx, "a sync stayed on the held stack");
	return true;
}

static bool case_chain_cache(struct st_ctx *ctx)
{
	struct lockdep_stats s1, s2;

	st_init_maps();
	for (int round = 0; round < 2; round++) {
		if (round)
			lockdep_get_stats(&s1);
		st_lock(&A);
		st_lock(&B);
		st_unlock(&B);
		st_unlock(&A);
	}
	lockdep_get_stats(&s2);
	if (s2.chain_hits - s1.chain_hits != 2 || s2.chain_misses != s1.chain_misses)
		return st_fail(ctx, "the second identical sequence missed the cache");
	if (s2.dependencies != s1.dependencies || s2.chains != s1.chains ||
	    s2.dependencies != 1 || s2.chains != 2)
		return st_fail(ctx, "the second identical sequence added something");
	return true;
}

/* In a child process: it must abort() with the overflow message. */
static bool case_depth_overflow(struct st_ctx *ctx)
{
	static struct lockdep_map many[MAX_LOCK_DEPTH + 1];
	char buf[8192];
	int fds[2], status;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	st_init_maps();
	if (pipe(fds))
		return st_fail(ctx, "pipe failed");
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct rlimit nocore = { 0, 0 };
		FILE *f = fdopen(fds[1], "w");

		setrlimit(RLIMIT_CORE, &nocore);
		close(fds[0]);
		lockdep_set_report_stream(f);
		for (int i = 0; i <= MAX_LOCK_DEPTH; i++) {
			st_map(&many[i], &kA);
			st_trylock(&many[i]);
		}
		_exit(0);
	}
	close(fds[1]);
	while (got < sizeof(buf) - 1 &&
	       (n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fds[0]);
	waitpid(pid, &status, 0);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		return st_fail(ctx, "the child did not abort");
	if (!strstr(buf, "BUG: MAX_LOCK_DEPTH too low!"))
		return st_fail(ctx, "the child did not print the MAX_LOCK_DEPTH message");
	return true;
}

const struct st_case st_cases_more[] = {
	{ "wait-mutex-in-spinlock", ST_KIND(LDR_WAIT_CONTEXT), NULL, case_mutex_in_spin },
	{ "wait-spinlock-in-raw_spinlock", ST_KIND(LDR_WAIT_CONTEXT), NULL, case_spin_in_raw },
	{ "wait-might_sleep-in-rcu", ST_KIND(LDR_MIGHT_SLEEP), NULL, case_sleep_in_rcu },
	{ "wait-synchronize_srcu-in-spinlock", ST_KIND(LDR_WAIT_CONTEXT), NULL, case_sync_in_spin },
	{ "wait-trylock-exempt", ST_NONE, NULL, case_trylock_exempt },
	{ "assert_held-fails", ST_KIND(LDR_ASSERT), NULL, case_assert_fails },
	{ "assert_held-passes", ST_NONE, NULL, case_assert_ok },
	{ "assert_held_read-on-write", ST_KIND(LDR_ASSERT), NULL, case_assert_read },
	{ "suspicious-rcu", ST_KIND(LDR_SUSPICIOUS_RCU), NULL, case_rcu_suspicious },
	{ "order-violation", ST_KIND(LDR_ORDER_VIOLATION), order_abc, case_order_violation },
	{ "order-leaf-violation", ST_KIND(LDR_ORDER_VIOLATION), order_abc, case_order_leaf },
	{ "order-undocumented", ST_KIND(LDR_UNDOCUMENTED), order_abc, case_order_undocumented },
	{ "order-documented-chain", ST_NONE, order_abc, case_order_documented },
	{ "order-unknown-class", ST_KIND(LDR_UNKNOWN_CLASS), order_abc, case_unknown_class },
	{ "bad-unlock", ST_KIND(LDR_BAD_UNLOCK), NULL, case_bad_unlock },
	{ "out-of-order-release", ST_NONE, NULL, case_out_of_order },
	{ "held-at-thread-exit", ST_KIND(LDR_HELD_AT_EXIT), NULL, case_held_at_exit },
	{ "sync-is-never-held", ST_NONE, NULL, case_sync_not_pushed },
	{ "chain-cache-hit", ST_NONE, NULL, case_chain_cache },
	{ "depth-overflow", ST_ABORT, NULL, case_depth_overflow },
};
const int st_nr_cases_more = sizeof(st_cases_more) / sizeof(st_cases_more[0]);
