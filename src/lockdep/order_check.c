// SPDX-License-Identifier: MIT
/*
 * Consistency of the documented order (`ukvm locks --check`, the order
 * tests): the file must be usable as the reference the code is checked
 * against, so every way it can silently stop meaning what it says is an
 * error here.
 */
#include <stdlib.h>
#include <string.h>

#include "lockdep/lockdep_internal.h"
#include "lockdep/order_internal.h"

/* Which modes make sense for a type (":r" on a mutex is a typo). */
static bool lo_mode_fits(int type, int mode)
{
	switch (type) {
	case LD_TYPE_RWLOCK:
	case LD_TYPE_RWSEM:
		return mode == LOM_EXCL || mode == LOM_READ;
	case LD_TYPE_SRCU:
	case LD_TYPE_RCU:
		return mode == LOM_RREAD || mode == LOM_SYNC;
	case LD_TYPE_MAP:
		return true;
	default:
		return mode == LOM_EXCL;
	}
}

static int lo_check_names(FILE *f, const struct lock_order *o)
{
	int bad = 0;

	for (int i = 0; i < o->nr_classes; i++) {
		const struct lo_class *c = &o->classes[i];

		if (c->type >= 0)
			continue;
		fprintf(f, "%s:%d: rule names '%s', which no class statement declares\n",
			o->origin, c->line, c->name);
		bad++;
	}
	return bad;
}

static int lo_check_rules(FILE *f, const struct lock_order *o)
{
	int bad = 0;

	for (int i = 0; i < o->nr_rules; i++) {
		const struct lo_rule *r = &o->rules[i];
		const struct lo_class *oc = &o->classes[r->outer];
		const struct lo_class *ic = &o->classes[r->inner];

		if (!r->active)
			continue;
		if (oc->leaf_attr) {
			fprintf(f, "%s:%d: '%s' is declared leaf (line %d) but this rule takes '%s' inside it\n",
				o->origin, r->line, oc->name, oc->line, ic->name);
			bad++;
		}
		if (r->outer == r->inner) {
			fprintf(f, "%s:%d: rule orders '%s' against itself (use a subclass)\n",
				o->origin, r->line, oc->name);
			bad++;
		}
		if (oc->type >= 0 && !lo_mode_fits(oc->type, r->omode)) {
			fprintf(f, "%s:%d: mode '%s' does not fit '%s', a %s\n",
				o->origin, r->line,
				lockdep_order_mode_suffix(r->omode), oc->name,
				lo_type_name(oc->type));
			bad++;
		}
		if (ic->type >= 0 && !lo_mode_fits(ic->type, r->imode)) {
			fprintf(f, "%s:%d: mode '%s' does not fit '%s', a %s\n",
				o->origin, r->line,
				lockdep_order_mode_suffix(r->imode), ic->name,
				lo_type_name(ic->type));
			bad++;
		}
	}
	return bad;
}

/*
 * A strong cycle among the rules means the document itself describes a
 * deadlock.  Each cycle is printed once: by its lowest-numbered rule (the
 * lowest rule on any cycle always finds a cycle made of rules >= itself).
 */
static int lo_check_cycles(FILE *f, const struct lock_order *o)
{
	int path[64], bad = 0;

	for (int i = 0; i < o->nr_rules; i++) {
		const struct lo_rule *r = &o->rules[i];
		int len, min = i;

		if (!r->active || r->outer == r->inner)
			continue;
		len = lo_strong_path(o, r->inner,
				     r->imode == LOM_SYNC ? LOM_EXCL : r->imode,
				     r->outer, r->omode, path, 63);
		if (!len)
			continue;
		for (int k = 0; k < len; k++)
			if (path[k] < min)
				min = path[k];
		if (min != i)
			continue;
		fprintf(f, "%s:%d: the documented order has a deadlock cycle:\n",
			o->origin, r->line);
		lo_print_rule(f, o, i, "    ");
		for (int k = 0; k < len; k++)
			lo_print_rule(f, o, path[k], "    ");
		bad++;
	}
	return bad;
}

struct lo_key_check {
	FILE *f;
	const struct lock_order *o;
	int bad;
	const char *seen[512];
	int nr_seen;
};

static void lo_check_key(const struct lock_class_key *key, void *arg)
{
	struct lo_key_check *kc = arg;
	const char *name = key->name ? key->name : "(null)";
	int idx;

	for (int i = 0; i < kc->nr_seen; i++)
		if (!strcmp(kc->seen[i], name))
			return;
	if (kc->nr_seen < 512)
		kc->seen[kc->nr_seen++] = name;
	idx = lo_find(kc->o, name);
	if (idx < 0 || kc->o->classes[idx].type < 0) {
		fprintf(kc->f, "lock class '%s' (%s) is compiled in but not declared in %s\n",
			name, lo_type_name(key->type), kc->o->origin);
		kc->bad++;
	} else if (kc->o->classes[idx].type != key->type) {
		fprintf(kc->f, "%s:%d: '%s' is declared %s but compiled in as a %s\n",
			kc->o->origin, kc->o->classes[idx].line, name,
			lo_type_name(kc->o->classes[idx].type),
			lo_type_name(key->type));
		kc->bad++;
	}
}

int lockdep_order_check(FILE *f, bool keys)
{
	struct lo_key_check kc = { .f = f };
	int bad;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	if (!lo_cur) {
		pthread_mutex_unlock(&order_mutex);
		fprintf(f, "no documented order could be loaded\n");
		return 1;
	}
	bad = lo_check_names(f, lo_cur);
	bad += lo_check_rules(f, lo_cur);
	bad += lo_check_cycles(f, lo_cur);
	if (keys) {
		kc.o = lo_cur;
		lockdep_for_each_static_key(lo_check_key, &kc);
		bad += kc.bad;
	}
	pthread_mutex_unlock(&order_mutex);
	return bad;
}
