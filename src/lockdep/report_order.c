// SPDX-License-Identifier: MIT
/*
 * The validator against the documented order (WITNESS / Go lockrank style):
 * every lock class must be declared, and every new dependency A -> B is
 * classified by order_graph.c as documented, undocumented (a warning: the
 * file or the code needs a look) or a violation (an error, reported the
 * first time it is seen, without waiting for the reverse order to happen).
 * Called under graph_mutex from the chain-miss path.
 */
#include "lockdep/lockdep_internal.h"
#include "lockdep/order.h"

void lockdep_check_class_documented(struct lockdep_task *t,
				    struct lock_class *c)
{
	unsigned int gen = lockdep_order_generation();
	unsigned int cls[1] = { c->idx };
	FILE *f;

	if (!gen || c->order_gen == gen || (c->key && c->key->local))
		return;
	c->order_gen = gen;
	if (lockdep_order_has_class(c->name))
		return;
	if (lockdep_report_begin(LDR_UNKNOWN_CLASS,
			lockdep_dedupe_hash(LDR_UNKNOWN_CLASS, cls, 1, NULL)) != REPORT_PRINT)
		return;
	f = lockdep_out();
	lockdep_print_banner(f, "WARNING: lock class not in the documented order");
	fprintf(f, "lock class %s (%s) is not in the documented order (%s, variant %s)\n",
		c->name, lockdep_lock_type_name(c->lock_type),
		lockdep_order_origin(), lockdep_order_variant());
	fprintf(f, "first taken by %s/%d at ", t->name, (int)t->tid);
	lockdep_print_site(f, t->cur_site);
	fprintf(f, "\ndeclare it with a 'class' statement and give it its place in the order.\n"
		   "\nstack backtrace:\n");
	lockdep_print_stack(f);
	lockdep_report_end();
}

static void print_pair(FILE *f, struct held_lock *prev, struct held_lock *next,
		       bool sync)
{
	fprintf(f, " 1st ");
	lockdep_print_hlock(f, prev, false);
	fprintf(f, " 2nd ");
	lockdep_print_hlock_sync(f, next, false, sync);
}

static void report_violation(struct lockdep_task *t, struct held_lock *prev,
			     struct held_lock *next, bool sync, int bmode)
{
	const char *a = hlock_class(prev)->name, *b = hlock_class(next)->name;
	FILE *f = lockdep_out();

	lockdep_print_banner(f, "WARNING: lock order violates the documented order");
	fprintf(f, "%s/%d took %s%s while holding %s%s, which %s (variant %s) forbids:\n",
		t->name, (int)t->tid, b, lockdep_order_mode_suffix(bmode), a,
		lockdep_order_mode_suffix(prev->read), lockdep_order_origin(),
		lockdep_order_variant());
	print_pair(f, prev, next, sync);
	fprintf(f, "\n");
	lockdep_order_explain(f, a, prev->read, b, bmode, "  ");
	if (lockdep_order_is_leaf(a))
		fprintf(f, "\nadd a rule out of %s to lock-order.txt, or fix the code.\n\n", a);
	else
		fprintf(f, "\nso %s -> %s can deadlock against code that follows the document.\n\n",
			a, b);
	lockdep_print_held_locks_of(f, t, false);
	fprintf(f, "\nstack backtrace:\n");
	lockdep_print_stack(f);
	lockdep_report_end();
}

static void report_undocumented(struct lockdep_task *t, struct held_lock *prev,
				struct held_lock *next, bool sync, int bmode)
{
	const char *a = hlock_class(prev)->name, *b = hlock_class(next)->name;
	FILE *f = lockdep_out();
	char title[400];

	snprintf(title, sizeof(title), "WARNING: undocumented lock order %s%s -> %s%s",
		 a, lockdep_order_mode_suffix(prev->read), b,
		 lockdep_order_mode_suffix(bmode));
	lockdep_print_banner(f, title);
	fprintf(f, "%s/%d:\n", t->name, (int)t->tid);
	print_pair(f, prev, next, sync);
	fprintf(f, "\nno chain of rules of %s (variant %s) leads from %s to %s, and none forbids it:\n"
		   "add a rule to lock-order.txt or fix the code.\n",
		lockdep_order_origin(), lockdep_order_variant(), a, b);
	lockdep_report_end();
}

void lockdep_check_order(struct lockdep_task *t, struct held_lock *prev,
			 struct held_lock *next, bool sync)
{
	const char *a = hlock_class(prev)->name, *b = hlock_class(next)->name;
	int bmode = sync ? LOM_SYNC : next->read;
	unsigned int cls[2] = { prev->class_idx, next->class_idx };
	enum lock_order_verdict v;
	enum lockdep_report_kind kind;

	if (!lockdep_order_generation())
		return;
	/* A local class has no place in the order: pairs with it are not checked. */
	if ((hlock_class(prev)->key && hlock_class(prev)->key->local) ||
	    (hlock_class(next)->key && hlock_class(next)->key->local))
		return;
	v = lockdep_order_classify(a, prev->read, b, bmode);
	if (v != LOV_VIOLATION && v != LOV_UNDOCUMENTED)
		return;
	kind = v == LOV_VIOLATION ? LDR_ORDER_VIOLATION : LDR_UNDOCUMENTED;
	if (lockdep_report_begin(kind, lockdep_dedupe_hash(kind, cls, 2,
			(void *)(uintptr_t)(prev->read * 4 + bmode))) != REPORT_PRINT)
		return;
	if (v == LOV_VIOLATION)
		report_violation(t, prev, next, sync, bmode);
	else
		report_undocumented(t, prev, next, sync, bmode);
}
