// SPDX-License-Identifier: MIT
/*
 * The documented order for people: a table (`ukvm locks --order`) and a
 * Graphviz graph (`ukvm locks --dot/--png`), both generated from the loaded
 * order so that the picture can never drift from what the validator checks.
 */
#include <stdlib.h>
#include <string.h>

#include "lockdep/lockdep.h"
#include "lockdep/order_internal.h"

/*
 * Kahn's algorithm over the rules that let something nest (a :sync target
 * is never held, so "A => S:sync" does not place S below A).  Classes on a
 * cycle, or after one, keep their file order.
 */
static int *lo_ranks(const struct lock_order *o)
{
	int n = o->nr_classes, next = 0;
	int *indeg = calloc((size_t)n + 1, sizeof(int));
	int *rank = malloc(((size_t)n + 1) * sizeof(int));
	bool progress = true;

	if (!indeg || !rank)
		abort();
	for (int i = 0; i < n; i++)
		rank[i] = -1;
	for (int a = 0; a < n; a++)
		for (int b = 0; b < n; b++)
			if (a != b && o->pair[a * n + b].chainable)
				indeg[b]++;
	while (progress) {
		progress = false;
		for (int a = 0; a < n; a++) {
			if (rank[a] >= 0 || indeg[a])
				continue;
			rank[a] = next++;
			progress = true;
			for (int b = 0; b < n; b++)
				if (a != b && o->pair[a * n + b].chainable)
					indeg[b]--;
		}
	}
	for (int a = 0; a < n; a++)
		if (rank[a] < 0)
			rank[a] = next++;
	free(indeg);
	return rank;
}

static const int *lo_sort_rank;
static const struct lock_order *lo_sort_order;

static int lo_rule_cmp(const void *pa, const void *pb)
{
	const struct lo_rule *a = &lo_sort_order->rules[*(const int *)pa];
	const struct lo_rule *b = &lo_sort_order->rules[*(const int *)pb];

	if (lo_sort_rank[a->outer] != lo_sort_rank[b->outer])
		return lo_sort_rank[a->outer] - lo_sort_rank[b->outer];
	if (lo_sort_rank[a->inner] != lo_sort_rank[b->inner])
		return lo_sort_rank[a->inner] - lo_sort_rank[b->inner];
	return a->line - b->line;
}

static void lo_table_classes(FILE *f, const struct lock_order *o)
{
	for (int s = -1; s < o->nr_sections; s++) {
		bool any = false;

		for (int i = 0; i < o->nr_classes; i++) {
			const struct lo_class *c = &o->classes[i];

			if (c->section != s)
				continue;
			if (!any)
				fprintf(f, "\n%s\n  %-34s %-12s %-7s %-4s %s\n",
					s < 0 ? "(before any section)" : o->sections[s],
					"CLASS", "TYPE", "SCOPE", "LEAF",
					"PROTECTS [SRC]");
			any = true;
			fprintf(f, "  %-34s %-12s %-7s %-4s %s%s%s%s\n", c->name,
				lo_type_name(c->type),
				c->scope ? c->scope : "global",
				o->has_out[i] ? "" : "leaf",
				c->protects ? c->protects : "",
				c->src ? " [" : "", c->src ? c->src : "",
				c->src ? "]" : "");
		}
	}
}

void lockdep_order_print_table(FILE *f)
{
	const struct lock_order *o;
	int *rank, *idx, n = 0;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	o = lo_cur;
	if (!o) {
		pthread_mutex_unlock(&order_mutex);
		fprintf(f, "no documented order loaded\n");
		return;
	}
	fprintf(f, "Documented lock order: %s (variant %s)\n", o->origin,
		o->variant);
	lo_table_classes(f, o);
	rank = lo_ranks(o);
	idx = malloc(((size_t)o->nr_rules + 1) * sizeof(int));
	if (!idx)
		abort();
	for (int i = 0; i < o->nr_rules; i++)
		if (o->rules[i].active)
			idx[n++] = i;
	lo_sort_rank = rank;
	lo_sort_order = o;
	qsort(idx, (size_t)n, sizeof(int), lo_rule_cmp);
	fprintf(f, "\nRules (OUTER => INNER: INNER may be taken while OUTER is held), outermost first:\n");
	for (int i = 0; i < n; i++) {
		const struct lo_rule *r = &o->rules[idx[i]];
		char lhs[160];

		snprintf(lhs, sizeof(lhs), "%s%s => %s%s",
			 o->classes[r->outer].name,
			 lockdep_order_mode_suffix(r->omode),
			 o->classes[r->inner].name,
			 lockdep_order_mode_suffix(r->imode));
		fprintf(f, "  %-64s line %-4d %s\n", lhs, r->line,
			r->src ? r->src : "");
	}
	fprintf(f, "\n%d classes, %d rules; everything without a rule out of it is a leaf.\n",
		o->nr_classes, n);
	free(rank);
	free(idx);
	pthread_mutex_unlock(&order_mutex);
}

static const char *lo_shape(int type)
{
	switch (type) {
	case LD_TYPE_MUTEX:		return "box";
	case LD_TYPE_RWSEM:		return "box3d";
	case LD_TYPE_SPINLOCK:		return "ellipse";
	case LD_TYPE_RAW_SPINLOCK:	return "octagon";
	case LD_TYPE_RWLOCK:		return "diamond";
	case LD_TYPE_SRCU:		return "hexagon";
	case LD_TYPE_RCU:		return "doubleoctagon";
	case LD_TYPE_MAP:		return "note";
	default:			return "plaintext";
	}
}

static void lo_dot_class(FILE *f, const struct lock_order *o, int i)
{
	const struct lo_class *c = &o->classes[i];

	fprintf(f, "    \"%s\" [shape=%s%s%s];\n", c->name, lo_shape(c->type),
		o->has_out[i] ? "" : ", style=filled, fillcolor=\"#eeeeee\"",
		c->type < 0 ? ", color=red, fontcolor=red" : "");
}

static const char *lo_mode_word(int mode)
{
	static const char *const w[] = { "w", "r", "R", "sync" };

	return mode >= 0 && mode <= LOM_SYNC ? w[mode] : "?";
}

/*
 * One edge per ordered pair, whatever the modes: dashed when every rule
 * goes into a recursive reader, blue when every rule is a sync, labelled
 * with the modes unless all are plain exclusive.
 */
static void lo_dot_pair(FILE *f, const struct lock_order *o, int a, int b)
{
	char label[96] = "", tip[256] = "";
	bool all_rr = true, all_sync = true, plain = true;

	for (int i = 0; i < o->nr_rules; i++) {
		const struct lo_rule *r = &o->rules[i];
		size_t n = strlen(label);

		if (!r->active || r->outer != a || r->inner != b)
			continue;
		all_rr &= r->imode == LOM_RREAD;
		all_sync &= r->imode == LOM_SYNC;
		plain &= r->omode == LOM_EXCL && r->imode == LOM_EXCL;
		snprintf(label + n, sizeof(label) - n, "%s%s=>%s", n ? "," : "",
			 lo_mode_word(r->omode), lo_mode_word(r->imode));
		n = strlen(tip);
		snprintf(tip + n, sizeof(tip) - n, "%sline %d%s%s", n ? "; " : "",
			 r->line, r->src ? ": " : "", r->src ? r->src : "");
	}
	fprintf(f, "  \"%s\" -> \"%s\" [tooltip=\"%s\"%s%s%s%s%s];\n",
		o->classes[a].name, o->classes[b].name, tip,
		all_rr ? ", style=dashed" : "",
		all_sync ? ", color=blue, fontcolor=blue" : "",
		plain ? "" : ", label=\"", plain ? "" : label, plain ? "" : "\"");
}

void lockdep_order_write_dot(FILE *f)
{
	static const char *const scopes[] = { "global", "vm", "vcpu", "percpu", "mm" };
	const struct lock_order *o;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	o = lo_cur;
	fprintf(f, "// generated by `ukvm locks --dot` from %s: do not edit\n"
		   "digraph lock_order {\n"
		   "  label=\"documented lock order (%s, variant %s)\\n"
		   "A -> B: B may be taken while A is held; dashed: into a recursive "
		   "reader; blue: a grace-period wait (sync); grey: leaf\";\n"
		   "  labelloc=t; rankdir=TB; newrank=true;\n"
		   "  node [fontname=\"Helvetica\", fontsize=10];\n"
		   "  edge [fontname=\"Helvetica\", fontsize=8];\n",
		o ? o->origin : "none", o ? o->origin : "none",
		o ? o->variant : "none");
	for (size_t s = 0; o && s < sizeof(scopes) / sizeof(scopes[0]); s++) {
		fprintf(f, "  subgraph cluster_%s {\n    label=\"scope: %s\"; style=rounded; color=grey;\n",
			scopes[s], scopes[s]);
		for (int i = 0; i < o->nr_classes; i++) {
			const char *sc = o->classes[i].scope;

			if (!strcmp(sc ? sc : "global", scopes[s]))
				lo_dot_class(f, o, i);
		}
		fprintf(f, "  }\n");
	}
	for (int a = 0; o && a < o->nr_classes; a++)
		for (int b = 0; b < o->nr_classes; b++)
			if (o->pair[a * o->nr_classes + b].rule >= 0)
				lo_dot_pair(f, o, a, b);
	fprintf(f, "}\n");
	pthread_mutex_unlock(&order_mutex);
}
