// SPDX-License-Identifier: MIT
/*
 * Report plumbing (counting, de-duplication, output, stacks) and the reports
 * that do not need the dependency graph: wait context, might_sleep, nest
 * lock, bad unlock, assertions, suspicious RCU, locks held at thread exit
 * and held-stack overflow.
 *
 * Every report is printed under graph_mutex, so reports of several threads
 * never interleave.  Unlike the kernel, which stops after its first splat,
 * the validator keeps going and prints each distinct problem once (the
 * de-duplication key is the report kind plus the classes involved, and the
 * code site where that matters).
 */
#include <execinfo.h>
#include <stdlib.h>
#include <string.h>

#include "lockdep/lockdep_internal.h"

static FILE *report_stream;		/* NULL: stderr */
static enum lockdep_report_mode report_mode;
static _Atomic bool undocumented_is_error;
static _Atomic unsigned long by_kind[LDR_NR], nr_errors, nr_warnings;
static uint64_t dedupe[LOCKDEP_DEDUPE_SIZE];
static unsigned int nr_dedupe;

FILE *lockdep_out(void)
{
	return report_stream ? report_stream : stderr;
}

void lockdep_set_report_stream(FILE *f)
{
	pthread_mutex_lock(&graph_mutex);
	report_stream = f;
	pthread_mutex_unlock(&graph_mutex);
}

void lockdep_set_report_mode(enum lockdep_report_mode mode)
{
	pthread_mutex_lock(&graph_mutex);
	report_mode = mode;
	pthread_mutex_unlock(&graph_mutex);
}

void lockdep_set_undocumented_is_error(bool yes)
{
	atomic_store(&undocumented_is_error, yes);
}

unsigned long lockdep_report_count(void)
{
	return atomic_load(&nr_errors);
}

unsigned long lockdep_warning_count(void)
{
	return atomic_load(&nr_warnings);
}

void lockdep_report_stats(struct lockdep_stats *st)
{
	st->errors = atomic_load(&nr_errors);
	st->warnings = atomic_load(&nr_warnings);
	for (int i = 0; i < LDR_NR; i++)
		st->by_kind[i] = atomic_load(&by_kind[i]);
}

/* Under graph_mutex. */
void lockdep_report_reset(void)
{
	memset(dedupe, 0, sizeof(dedupe));
	nr_dedupe = 0;
	for (int i = 0; i < LDR_NR; i++)
		atomic_store(&by_kind[i], 0);
	atomic_store(&nr_errors, 0);
	atomic_store(&nr_warnings, 0);
}

uint64_t lockdep_dedupe_hash(enum lockdep_report_kind kind,
			     const unsigned int *classes, int n,
			     const void *extra)
{
	uint64_t h = lockdep_chain_mix(LOCKDEP_INITIAL_CHAIN_KEY, (uint32_t)kind);

	for (int i = 0; i < n; i++)
		h = lockdep_chain_mix(h, classes[i]);
	h = lockdep_chain_mix(h, (uint32_t)(uintptr_t)extra);
	return lockdep_chain_mix(h, (uint32_t)((uintptr_t)extra >> 32));
}

/* Under graph_mutex: true if @hash was reported before (records it if not). */
static bool dedupe_seen(uint64_t hash)
{
	unsigned int i = (unsigned int)hash & (LOCKDEP_DEDUPE_SIZE - 1);

	for (;;) {
		if (dedupe[i] == hash)
			return true;
		if (!dedupe[i])
			break;
		i = (i + 1) & (LOCKDEP_DEDUPE_SIZE - 1);
	}
	if (nr_dedupe < LOCKDEP_DEDUPE_SIZE * 3 / 4) {
		dedupe[i] = hash;
		nr_dedupe++;
	}
	return false;
}

/*
 * Under graph_mutex.  An error found while acquiring is remembered for the
 * thread's bailout hook even when it is a repeat: the hook exists to stop a
 * thread before a real deadlock, and a repeat would deadlock just as well.
 * Warnings (undocumented orders) do not stop anybody.
 */
enum lockdep_report_verdict lockdep_report_begin(enum lockdep_report_kind kind,
						 uint64_t hash)
{
	struct lockdep_task *t = &lockdep_curr;
	bool error = kind != LDR_UNDOCUMENTED ||
		     atomic_load_explicit(&undocumented_is_error, memory_order_relaxed);

	if (t->acquiring && !t->pending && error)
		t->pending = (int)kind + 1;
	if (hash && dedupe_seen(hash))
		return REPORT_DUPLICATE;
	atomic_fetch_add(&by_kind[kind], 1);
	atomic_fetch_add(error ? &nr_errors : &nr_warnings, 1);
	return report_mode == LOCKDEP_REPORT_QUIET ? REPORT_COUNT_ONLY : REPORT_PRINT;
}

void lockdep_report_end(void)
{
	fflush(lockdep_out());
	if (report_mode == LOCKDEP_REPORT_ABORT)
		abort();
}

void lockdep_print_banner(FILE *f, const char *title)
{
	size_t n = strlen(title) > 54 ? strlen(title) : 54;
	char line[256];

	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memset(line, '=', n);
	line[n] = '\0';
	fprintf(f, "\n%s\n%s\nukvm %s lockdep\n", line, title, UKVM_VERSION);
	memset(line, '-', n);
	fprintf(f, "%s\n", line);
}

void lockdep_print_site(FILE *f, const struct lockdep_site *site)
{
	if (site)
		fprintf(f, "%s (%s:%d)", site->func, site->file, site->line);
	else
		fprintf(f, "?");
}

const char *lockdep_mode_char(int read, bool sync)
{
	if (sync)
		return "s";
	return read == 2 ? "R" : read ? "r" : "w";
}

const char *lockdep_mode_verb(int read, bool sync)
{
	if (sync)
		return "sync";
	return read ? "rlock" : "lock";
}

void lockdep_print_hlock_sync(FILE *f, const struct held_lock *hl, bool waits,
			      bool sync)
{
	const struct lock_class *c = hlock_class(hl);
	char name[160];

	lockdep_class_name(c, name, sizeof(name));
	fprintf(f, "(%s){%s}", name, lockdep_mode_char(hl->read, sync));
	if (waits)
		fprintf(f, "-{%d:%d}", c->wait_inner, c->wait_outer);
	fprintf(f, "%s, at: ", hl->trylock ? " [trylock]" : "");
	lockdep_print_site(f, hl->site);
	fprintf(f, "\n");
}

void lockdep_print_hlock(FILE *f, const struct held_lock *hl, bool waits)
{
	lockdep_print_hlock_sync(f, hl, waits, false);
}

static const char *wait_name(unsigned int w)
{
	static const char *const names[LD_WAIT_MAX + 1] = {
		"INV", "FREE", "SPIN", "CONFIG", "SLEEP", "any",
	};

	return w <= LD_WAIT_MAX ? names[w] : "?";
}

void lockdep_print_held_locks_of(FILE *f, struct lockdep_task *t, bool waits)
{
	if (!t->depth) {
		fprintf(f, "no locks held by %s/%d.\n", t->name, (int)t->tid);
		return;
	}
	fprintf(f, "%d lock%s held by %s/%d:\n", t->depth,
		t->depth > 1 ? "s" : "", t->name, (int)t->tid);
	for (int i = 0; i < t->depth; i++) {
		fprintf(f, " #%d: ", i);
		lockdep_print_hlock(f, &t->held[i], waits);
	}
}

/*
 * A short backtrace that starts at the caller of the validator's entry
 * point (t->cur_ip, the return address of lock_acquire() & co.), not inside
 * the validator.  Only taken on slow paths.
 */
int lockdep_save_trace(void **buf, int max)
{
	void *raw[64];
	int n = backtrace(raw, 64), from = 1, cnt;
	void *ip = lockdep_curr.cur_ip;

	for (int i = 0; ip && i < n; i++)
		if (raw[i] == ip) {
			from = i;
			break;
		}
	cnt = n - from < max ? n - from : max;
	if (cnt < 0)
		cnt = 0;
	memcpy(buf, raw + from, (size_t)cnt * sizeof(void *));
	return cnt;
}

void lockdep_print_backtrace(FILE *f, void *const *trace, int n,
			     const char *indent)
{
	char **sym = n > 0 ? backtrace_symbols(trace, n) : NULL;

	for (int i = 0; i < n; i++)
		fprintf(f, "%s%s\n", indent, sym ? sym[i] : "?");
	free(sym);
}

void lockdep_print_stack_indent(FILE *f, const char *indent)
{
	void *trace[16];
	int n = lockdep_save_trace(trace, 16);

	lockdep_print_backtrace(f, trace, n, indent);
}

void lockdep_print_stack(FILE *f)
{
	lockdep_print_stack_indent(f, " ");
}

/* Take the graph mutex for a report outside the chain-miss path. */
static void report_lock(struct lockdep_task *t)
{
	t->recursion++;
	pthread_mutex_lock(&graph_mutex);
}

static void report_unlock(struct lockdep_task *t)
{
	pthread_mutex_unlock(&graph_mutex);
	t->recursion--;
}

static void print_task_line(FILE *f, struct lockdep_task *t, const char *what)
{
	fprintf(f, "%s/%d %s:\n", t->name, (int)t->tid, what);
}

static void print_tail(FILE *f, struct lockdep_task *t, bool waits)
{
	fprintf(f, "\n");
	lockdep_print_held_locks_of(f, t, waits);
	fprintf(f, "\nstack backtrace:\n");
	lockdep_print_stack(f);
}

/* The held lock whose inner wait type is the current bound. */
static int bound_holder(struct lockdep_task *t, unsigned int bound)
{
	for (int i = 0; i < t->depth; i++)
		if (t->held[i].wait_bound == bound)
			return i;
	return -1;
}

void lockdep_report_wait_context(struct lockdep_task *t,
				 struct held_lock *next, bool sync, int outer)
{
	unsigned int bound = t->held[t->depth - 1].wait_bound;
	int h = bound_holder(t, bound);
	unsigned int cls[2] = { next->class_idx, h >= 0 ? t->held[h].class_idx : 0 };
	FILE *f;

	report_lock(t);
	if (lockdep_report_begin(LDR_WAIT_CONTEXT,
			lockdep_dedupe_hash(LDR_WAIT_CONTEXT, cls, 2, NULL)) == REPORT_PRINT) {
		f = lockdep_out();
		lockdep_print_banner(f, "BUG: Invalid wait context");
		print_task_line(f, t, sync ? "is trying to wait for" : "is trying to lock");
		fprintf(f, " ");
		lockdep_print_hlock_sync(f, next, true, sync);
		fprintf(f, "which needs wait type %d (%s)%s, but the context allows at most %u (%s).\n"
			   "\nother info that might help us debug this:\ncontext-{%u:%u}\n",
			outer, wait_name((unsigned int)outer),
			sync ? ": a sync sleeps" : "", bound, wait_name(bound),
			bound, bound);
		if (h >= 0) {
			fprintf(f, "set by #%d: ", h);
			lockdep_print_hlock(f, &t->held[h], true);
		}
		print_tail(f, t, true);
		lockdep_report_end();
	}
	report_unlock(t);
}

void lockdep_report_might_sleep(struct lockdep_task *t,
				const struct lockdep_site *site)
{
	unsigned int bound = t->held[t->depth - 1].wait_bound;
	int h = bound_holder(t, bound);
	unsigned int cls[1] = { h >= 0 ? t->held[h].class_idx : 0 };
	FILE *f;

	report_lock(t);
	if (lockdep_report_begin(LDR_MIGHT_SLEEP,
			lockdep_dedupe_hash(LDR_MIGHT_SLEEP, cls, 1, site)) == REPORT_PRINT) {
		char title[512];

		f = lockdep_out();
		snprintf(title, sizeof(title),
			 "BUG: sleeping function called from invalid context at %s:%d",
			 site ? site->file : "?", site ? site->line : 0);
		lockdep_print_banner(f, title);
		fprintf(f, "in %s, by %s/%d: a held lock does not allow sleeping\n"
			   "(context-{%u:%u}, at most %s; sleeping needs %d, SLEEP)\n",
			site ? site->func : "?", t->name, (int)t->tid, bound,
			bound, wait_name(bound), LD_WAIT_SLEEP);
		print_tail(f, t, true);
		lockdep_report_end();
	}
	report_unlock(t);
}

void lockdep_report_nest_not_held(struct lockdep_task *t,
				  struct held_lock *next)
{
	unsigned int cls[1] = { next->class_idx };
	FILE *f;

	report_lock(t);
	if (lockdep_report_begin(LDR_NEST_NOT_HELD,
			lockdep_dedupe_hash(LDR_NEST_NOT_HELD, cls, 1,
					    next->site)) == REPORT_PRINT) {
		f = lockdep_out();
		lockdep_print_banner(f, "WARNING: Nested lock was not taken");
		print_task_line(f, t, "is trying to lock");
		fprintf(f, " ");
		lockdep_print_hlock(f, next, false);
		fprintf(f, "\nbut its nest lock (%s) is not held: nesting several %s is only safe under it.\n",
			lockdep_map_name(next->nest_lock), hlock_class(next)->name);
		print_tail(f, t, false);
		lockdep_report_end();
	}
	report_unlock(t);
}

void lockdep_report_bad_unlock(struct lockdep_task *t,
			       const struct lockdep_map *lock,
			       const struct lockdep_site *site)
{
	FILE *f;

	report_lock(t);
	if (lockdep_report_begin(LDR_BAD_UNLOCK,
			lockdep_dedupe_hash(LDR_BAD_UNLOCK, NULL, 0, site)) == REPORT_PRINT) {
		f = lockdep_out();
		lockdep_print_banner(f, "WARNING: bad unlock balance detected!");
		print_task_line(f, t, "is trying to release lock");
		fprintf(f, " (%s) at: ", lockdep_map_name(lock));
		lockdep_print_site(f, site);
		fprintf(f, "\nbut this thread does not hold it.\n");
		print_tail(f, t, false);
		lockdep_report_end();
	}
	report_unlock(t);
}

void lockdep_report_held_at_exit(struct lockdep_task *t)
{
	unsigned int cls[MAX_LOCK_DEPTH];
	FILE *f;

	for (int i = 0; i < t->depth; i++)
		cls[i] = t->held[i].class_idx;
	t->cur_ip = NULL;
	report_lock(t);
	if (lockdep_report_begin(LDR_HELD_AT_EXIT,
			lockdep_dedupe_hash(LDR_HELD_AT_EXIT, cls, t->depth,
					    NULL)) == REPORT_PRINT) {
		f = lockdep_out();
		lockdep_print_banner(f, "WARNING: thread exited with locks held");
		fprintf(f, "%s/%d is exiting while holding locks: they are never released.\n",
			t->name, (int)t->tid);
		fprintf(f, "\n");
		lockdep_print_held_locks_of(f, t, false);
		lockdep_report_end();
	}
	report_unlock(t);
}

void lockdep_report_assert(struct lockdep_task *t, const char *what,
			   const struct lockdep_map *lock,
			   const struct lockdep_site *site)
{
	FILE *f;

	report_lock(t);
	if (lockdep_report_begin(LDR_ASSERT,
			lockdep_dedupe_hash(LDR_ASSERT, NULL, 0, site)) == REPORT_PRINT) {
		char title[512];

		f = lockdep_out();
		if (!strncmp(what, "not ", 4))
			snprintf(title, sizeof(title), "WARNING: lock %s held (it must not be) at %s (%s:%d)",
				 lockdep_map_name(lock), site ? site->func : "?",
				 site ? site->file : "?", site ? site->line : 0);
		else
			snprintf(title, sizeof(title), "WARNING: lock %s not %s at %s (%s:%d)",
				 lockdep_map_name(lock), what, site ? site->func : "?",
				 site ? site->file : "?", site ? site->line : 0);
		lockdep_print_banner(f, title);
		fprintf(f, "lockdep_assert_%s%s() failed in %s/%d.\n",
			what, "", t->name, (int)t->tid);
		print_tail(f, t, false);
		lockdep_report_end();
	}
	report_unlock(t);
}

void lockdep_report_rcu(struct lockdep_task *t, const char *what,
			const struct lockdep_site *site)
{
	FILE *f;

	report_lock(t);
	if (lockdep_report_begin(LDR_SUSPICIOUS_RCU,
			lockdep_dedupe_hash(LDR_SUSPICIOUS_RCU, NULL, 0, site)) == REPORT_PRINT) {
		f = lockdep_out();
		lockdep_print_banner(f, "WARNING: suspicious RCU usage");
		lockdep_print_site(f, site);
		fprintf(f, ": %s!\n\nother info that might help us debug this:\n", what);
		print_tail(f, t, false);
		lockdep_report_end();
	}
	report_unlock(t);
}

void lockdep_report_depth_overflow(struct lockdep_task *t,
				   struct held_lock *next)
{
	FILE *f;

	report_lock(t);
	f = lockdep_out();
	fprintf(f, "BUG: MAX_LOCK_DEPTH too low!\n"
		   "%s/%d tried to hold more than %d locks; the next one was:\n ",
		t->name, (int)t->tid, MAX_LOCK_DEPTH);
	lockdep_print_hlock(f, next, false);
	lockdep_print_held_locks_of(f, t, false);
	fprintf(f, "turning off the locking correctness validator.\n");
	fflush(f);
	abort();
}
