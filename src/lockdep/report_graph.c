// SPDX-License-Identifier: MIT
/*
 * The two reports of the dependency graph: a cycle (possible circular
 * locking dependency) and a same-class nesting (possible recursive
 * locking).  Both are printed under graph_mutex by graph.c.
 *
 * A circular report walks the cycle backwards from the held lock, printing
 * for each class the acquisition that first created the edge into it (with
 * the stack saved then), down to "#0", the acquisition in progress.  The
 * CPU0/CPU1 scenario uses lockdep's three classes: target (the held lock),
 * source (the lock being acquired) and parent (the class before target on
 * the cycle).
 */
#include <stdlib.h>
#include <string.h>

#include "lockdep/lockdep_internal.h"

static void cname(const struct lock_class *c, char *buf, size_t len)
{
	lockdep_class_name(c, buf, len);
}

static void print_edge_entry(FILE *f, const struct lock_dep *d, int depth)
{
	char to[160], from[160];

	cname(&lock_classes[d->to], to, sizeof(to));
	cname(&lock_classes[d->from], from, sizeof(from));
	fprintf(f, "\n-> #%d (%s){%s}:\n", depth, to,
		lockdep_mode_char(d->next_read, d->next_sync));
	fprintf(f, "       %s first at ", d->next_sync ? "synced" : "taken");
	lockdep_print_site(f, d->next_site);
	fprintf(f, " by %s\n       while holding (%s){%s}, taken at ", d->task,
		from, lockdep_mode_char(d->prev_read, false));
	lockdep_print_site(f, d->prev_site);
	fprintf(f, "\n");
	lockdep_print_backtrace(f, d->trace, d->nr_trace, "       ");
}

static void print_scenario(FILE *f, const struct held_lock *prev,
			   const struct held_lock *next, bool sync,
			   const struct lock_dep *last, int len)
{
	char src[160], tgt[160], par[160];

	cname(hlock_class(next), src, sizeof(src));
	cname(hlock_class(prev), tgt, sizeof(tgt));
	cname(&lock_classes[last->from], par, sizeof(par));
	if (len > 1)
		fprintf(f, "Chain exists of:\n  %s --> %s --> %s\n\n", src, par, tgt);
	fprintf(f, " Possible unsafe locking scenario:\n\n"
		   "       CPU0                    CPU1\n"
		   "       ----                    ----\n");
	fprintf(f, "  %s(%s);\n", lockdep_mode_verb(prev->read, false), tgt);
	fprintf(f, "                               %s(%s);\n",
		lockdep_mode_verb(last->prev_read, false), par);
	fprintf(f, "                               %s(%s);\n",
		lockdep_mode_verb(last->next_read, last->next_sync), tgt);
	fprintf(f, "  %s(%s);\n", lockdep_mode_verb(next->read, sync), src);
	fprintf(f, "\n *** DEADLOCK ***\n\n");
}

static int cmp_uint(const void *a, const void *b)
{
	unsigned int x = *(const unsigned int *)a, y = *(const unsigned int *)b;

	return x < y ? -1 : x > y;
}

void lockdep_print_circular(struct lockdep_task *t, struct held_lock *prev,
			    struct held_lock *next, bool sync,
			    const int *path, int len)
{
	unsigned int cls[65];
	FILE *f;

	/* The same cycle found from any of its edges is one problem. */
	cls[0] = next->class_idx;
	for (int i = 0; i < len && i < 64; i++)
		cls[i + 1] = lockdep_dep(path[i])->to;
	qsort(cls, (size_t)len + 1, sizeof(cls[0]), cmp_uint);
	if (lockdep_report_begin(LDR_CIRCULAR,
			lockdep_dedupe_hash(LDR_CIRCULAR, cls, len + 1, NULL)) != REPORT_PRINT)
		return;
	f = lockdep_out();
	lockdep_print_banner(f, "WARNING: possible circular locking dependency detected");
	fprintf(f, "%s/%d is trying to %s lock:\n ", t->name, (int)t->tid,
		sync ? "synchronize with" : "acquire");
	lockdep_print_hlock_sync(f, next, true, sync);
	fprintf(f, "\nbut task is already holding lock:\n ");
	lockdep_print_hlock(f, prev, true);
	fprintf(f, "\nwhich lock already depends on the new lock.\n"
		   "\nthe existing dependency chain (in reverse order) is:\n");
	for (int k = len; k >= 1; k--)
		print_edge_entry(f, lockdep_dep(path[k - 1]), k);
	fprintf(f, "\n-> #0 (%s){%s}:\n       now at ", hlock_class(next)->name,
		lockdep_mode_char(next->read, sync));
	lockdep_print_site(f, next->site);
	fprintf(f, "\n");
	lockdep_print_stack_indent(f, "       ");
	fprintf(f, "\nother info that might help us debug this:\n\n");
	print_scenario(f, prev, next, sync, lockdep_dep(path[len - 1]), len);
	lockdep_print_held_locks_of(f, t, false);
	fprintf(f, "\nstack backtrace:\n");
	lockdep_print_stack(f);
	lockdep_report_end();
}

void lockdep_print_recursive(struct lockdep_task *t, struct held_lock *prev,
			     struct held_lock *next, bool sync)
{
	unsigned int cls[1] = { next->class_idx };
	char name[160];
	FILE *f;

	if (lockdep_report_begin(LDR_RECURSIVE,
			lockdep_dedupe_hash(LDR_RECURSIVE, cls, 1, NULL)) != REPORT_PRINT)
		return;
	f = lockdep_out();
	cname(hlock_class(next), name, sizeof(name));
	lockdep_print_banner(f, "WARNING: possible recursive locking detected");
	fprintf(f, "%s/%d is trying to %s lock:\n ", t->name, (int)t->tid,
		sync ? "synchronize with" : "acquire");
	lockdep_print_hlock_sync(f, next, true, sync);
	fprintf(f, "\nbut task is already holding lock:\n ");
	lockdep_print_hlock(f, prev, true);
	fprintf(f, "\nother info that might help us debug this:\n"
		   " Possible unsafe locking scenario:\n\n"
		   "       CPU0\n"
		   "       ----\n");
	fprintf(f, "  %s(%s);\n", lockdep_mode_verb(prev->read, false), name);
	fprintf(f, "  %s(%s);\n", lockdep_mode_verb(next->read, sync), name);
	fprintf(f, "\n *** DEADLOCK ***\n\n May be due to missing lock nesting notation\n\n");
	lockdep_print_held_locks_of(f, t, false);
	fprintf(f, "\nstack backtrace:\n");
	lockdep_print_stack(f);
	lockdep_report_end();
}
