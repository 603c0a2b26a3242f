// SPDX-License-Identifier: MIT
/*
 * The documented order as a graph: what the rules allow, what they forbid.
 *
 * Two relations are derived from the active rules of the loaded variant:
 *  - "documented" (reach[]): B may be acquired while A is held if a chain
 *    of rules leads from A to B.  Modes are ignored, except that a chain
 *    never continues out of a :sync target: nothing is held inside a grace
 *    period, so "A => S:sync" and "S:R => B" do not let B nest in A.
 *  - "deadlock" (lo_strong_path()): the rules as a dependency graph with
 *    lockdep's four edge kinds, searched with the same strong-path rule as
 *    the observed graph.  Here a :sync target does continue the path: a
 *    grace period waits for readers, and readers wait for what they take.
 * An observed A -> B that is not documented is a violation when B reaches
 * A by a strong path that A -> B would close, or when A is a leaf.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockdep/lockdep_internal.h"
#include "lockdep/order_internal.h"

static int lo_build_hash(struct lock_order *o)
{
	o->hash_size = 2 * o->nr_classes + 1;
	o->hash = calloc((size_t)o->hash_size, sizeof(int));
	if (!o->hash)
		return -ENOMEM;
	for (int i = 0; i < o->nr_classes; i++) {
		unsigned int h = 5381;

		for (const char *c = o->classes[i].name; *c; c++)
			h = h * 33 + (unsigned char)*c;
		while (o->hash[h % (unsigned int)o->hash_size])
			h++;
		o->hash[h % (unsigned int)o->hash_size] = i + 1;
	}
	return 0;
}

static unsigned int lo_dep_bit(int omode, int imode)
{
	/* A sync acquires exclusively; it is never "held shared". */
	return dep_bit(omode == LOM_EXCL ? 0 : omode,
		       imode == LOM_SYNC ? 0 : imode);
}

/* Closure of the "documented" relation: one BFS per class. */
static void lo_closure(struct lock_order *o)
{
	int n = o->nr_classes;
	int *queue = malloc((size_t)(n + 1) * sizeof(int));
	uint8_t *seen = malloc((size_t)n);

	if (!queue || !seen)
		abort();
	for (int a = 0; a < n; a++) {
		int head = 0, tail = 0;

		memset(seen, 0, (size_t)n);
		queue[tail++] = a;
		seen[a] = 1;
		while (head < tail) {
			int c = queue[head++];

			for (int b = 0; b < n; b++) {
				struct lo_pair *pr = &o->pair[c * n + b];

				if (pr->rule < 0)
					continue;
				o->reach[a * n + b] = 1;
				if (pr->chainable && !seen[b]) {
					seen[b] = 1;
					queue[tail++] = b;
				}
			}
		}
	}
	free(queue);
	free(seen);
}

int lo_derive(struct lock_order *o)
{
	int n = o->nr_classes;

	o->pair = malloc((size_t)(n * n + 1) * sizeof(*o->pair));
	o->reach = calloc((size_t)(n * n + 1), 1);
	o->has_out = calloc((size_t)(n + 1), sizeof(bool));
	if (!o->pair || !o->reach || !o->has_out || lo_build_hash(o))
		return -ENOMEM;
	for (int i = 0; i < n * n; i++)
		o->pair[i] = (struct lo_pair){ .rule = -1 };
	for (int i = 0; i < o->nr_rules; i++) {
		struct lo_rule *r = &o->rules[i];
		struct lo_pair *pr = &o->pair[r->outer * n + r->inner];
		bool legacy = o->variant[0] == 'l';

		r->active = r->when == LO_WHEN_BOTH ||
			    (r->when == LO_WHEN_LEGACY) == legacy;
		if (!r->active)
			continue;
		pr->dep |= (uint8_t)lo_dep_bit(r->omode, r->imode);
		pr->chainable |= r->imode != LOM_SYNC;
		if (pr->rule < 0)
			pr->rule = i;
		o->has_out[r->outer] = true;
	}
	lo_closure(o);
	return 0;
}

/* The active rule that best explains an edge of kind @bits from a to b. */
static int lo_rule_for(const struct lock_order *o, int a, int b,
		       unsigned int bits)
{
	for (int i = 0; i < o->nr_rules; i++) {
		const struct lo_rule *r = &o->rules[i];

		if (r->active && r->outer == a && r->inner == b &&
		    (lo_dep_bit(r->omode, r->imode) & bits))
			return i;
	}
	return o->pair[a * o->nr_classes + b].rule;
}

/*
 * Shortest strong path from @from (acquired in @from_mode) to @to (held in
 * @to_mode), i.e. the rule chain that an observed to -> from would close
 * into a deadlock.  Fills @path with rule indices; returns the length or 0.
 */
int lo_strong_path(const struct lock_order *o, int from, int from_mode,
		   int to, int to_mode, int *path, int max)
{
	int n = o->nr_classes, found = -1, len = 0;
	int *queue = malloc((size_t)(2 * n + 1) * sizeof(int));
	int *parent = malloc((size_t)(2 * n + 1) * sizeof(int));
	int head = 0, tail = 0;

	if (!queue || !parent)
		abort();
	for (int i = 0; i < 2 * n; i++)
		parent[i] = -2;
	/* State = class * 2 + "arrived only through -(xR)-> edges". */
	queue[tail++] = from * 2 + (from_mode == LOM_RREAD);
	parent[queue[0]] = -1;
	while (head < tail && found < 0) {
		int st = queue[head++], c = st / 2;

		for (int b = 0; b < n && found < 0; b++) {
			unsigned int bits = o->pair[c * n + b].dep;
			int nst;

			if (st & 1)
				bits &= DEP_OUT_EXCL;
			if (!bits)
				continue;
			nst = b * 2 + !(bits & DEP_INTO_N);
			if (parent[nst] != -2)
				continue;
			parent[nst] = st;
			if (b == to && (to_mode == LOM_EXCL || (bits & DEP_INTO_N)))
				found = nst;
			queue[tail++] = nst;
		}
	}
	if (found >= 0) {
		int st, cnt = 0;

		for (st = found; parent[st] >= 0; st = parent[st])
			cnt++;
		len = cnt < max ? cnt : max;
		for (st = found; parent[st] >= 0; st = parent[st]) {
			int a = parent[st] / 2, b = st / 2;
			unsigned int bits = o->pair[a * n + b].dep;

			if (parent[st] & 1)
				bits &= DEP_OUT_EXCL;
			if (--cnt < max)
				path[cnt] = lo_rule_for(o, a, b, bits);
		}
	}
	free(queue);
	free(parent);
	return len;
}

/* Shortest documenting chain from @from to @to (rule indices). */
int lo_chain_path(const struct lock_order *o, int from, int to, int *path,
		  int max)
{
	int n = o->nr_classes, cnt = 0, head = 0, tail = 0, len;
	int *queue = malloc((size_t)(n + 1) * sizeof(int));
	int *parent = malloc((size_t)(n + 1) * sizeof(int));
	int end = -1;

	if (!queue || !parent)
		abort();
	for (int i = 0; i < n; i++)
		parent[i] = -2;
	parent[from] = -1;
	queue[tail++] = from;
	while (head < tail && end < 0) {
		int c = queue[head++];

		for (int b = 0; b < n; b++) {
			struct lo_pair *pr = &o->pair[c * n + b];

			if (pr->rule < 0)
				continue;
			if (b == to) {
				parent[n] = c;	/* last hop may be a :sync */
				end = n;
				break;
			}
			if (!pr->chainable || parent[b] != -2)
				continue;
			parent[b] = c;
			queue[tail++] = b;
		}
	}
	if (end < 0) {
		free(queue);
		free(parent);
		return 0;
	}
	for (int c = parent[n]; c >= 0; c = parent[c])
		cnt++;
	len = cnt < max ? cnt : max;
	for (int b = to, c = parent[n]; c >= 0; b = c, c = parent[c])
		if (--cnt < max)
			path[cnt] = o->pair[c * n + b].rule;
	free(queue);
	free(parent);
	return len;
}

void lo_print_rule(FILE *f, const struct lock_order *o, int rule,
		   const char *indent)
{
	const struct lo_rule *r = &o->rules[rule];

	fprintf(f, "%s%s%s => %s%s   [%s:%d%s%s%s]\n", indent,
		o->classes[r->outer].name, lockdep_order_mode_suffix(r->omode),
		o->classes[r->inner].name, lockdep_order_mode_suffix(r->imode),
		o->origin, r->line, r->src ? ", src=\"" : "",
		r->src ? r->src : "", r->src ? "\"" : "");
}

static enum lock_order_verdict lo_classify(const struct lock_order *o, int a,
					   int amode, int b, int bmode)
{
	int path[1];

	if (a < 0 || b < 0 || o->classes[a].type < 0 || o->classes[b].type < 0)
		return LOV_UNKNOWN;
	if (a == b)
		return LOV_DOCUMENTED;	/* same class: subclass nesting */
	if (o->reach[a * o->nr_classes + b])
		return LOV_DOCUMENTED;
	if (!o->has_out[a])
		return LOV_VIOLATION;
	if (lo_strong_path(o, b, bmode == LOM_SYNC ? LOM_EXCL : bmode, a, amode,
			   path, 1))
		return LOV_VIOLATION;
	return LOV_UNDOCUMENTED;
}

enum lock_order_verdict lockdep_order_classify(const char *a, int amode,
					       const char *b, int bmode)
{
	enum lock_order_verdict v = LOV_UNKNOWN;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	if (lo_cur)
		v = lo_classify(lo_cur, lo_find(lo_cur, a), amode,
				lo_find(lo_cur, b), bmode);
	pthread_mutex_unlock(&order_mutex);
	return v;
}

void lockdep_order_explain(FILE *f, const char *a, int amode, const char *b,
			   int bmode, const char *indent)
{
	struct lock_order *o;
	int ia, ib, path[64], len;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	o = lo_cur;
	ia = o ? lo_find(o, a) : -1;
	ib = o ? lo_find(o, b) : -1;
	if (ia < 0 || ib < 0) {
		pthread_mutex_unlock(&order_mutex);
		return;
	}
	if (!o->has_out[ia]) {
		fprintf(f, "%s%s is a leaf: no rule lets anything be acquired while it is held\n",
			indent, a);
		fprintf(f, "%s  class %s %s%s   [%s:%d]\n", indent, a,
			lo_type_name(o->classes[ia].type),
			o->classes[ia].leaf_attr ? " leaf" : "", o->origin,
			o->classes[ia].line);
	} else {
		len = lo_strong_path(o, ib, bmode == LOM_SYNC ? LOM_EXCL : bmode,
				     ia, amode, path, 64);
		fprintf(f, "%sthe documented order takes %s outside %s:\n",
			indent, b, a);
		for (int i = 0; i < len; i++)
			lo_print_rule(f, o, path[i], indent);
	}
	pthread_mutex_unlock(&order_mutex);
}

void lockdep_order_print_chain(FILE *f, const char *a, const char *b,
			       const char *indent)
{
	int path[64], len = 0, ia, ib;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	if (lo_cur) {
		ia = lo_find(lo_cur, a);
		ib = lo_find(lo_cur, b);
		if (ia >= 0 && ib >= 0)
			len = lo_chain_path(lo_cur, ia, ib, path, 64);
	}
	for (int i = 0; i < len; i++)
		lo_print_rule(f, lo_cur, path[i], indent);
	pthread_mutex_unlock(&order_mutex);
}

bool lockdep_order_has_class(const char *name)
{
	bool ret = false;
	int i;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	if (lo_cur) {
		i = lo_find(lo_cur, name);
		ret = i >= 0 && lo_cur->classes[i].type >= 0;
	}
	pthread_mutex_unlock(&order_mutex);
	return ret;
}

bool lockdep_order_is_leaf(const char *name)
{
	bool ret = false;
	int i;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	if (lo_cur) {
		i = lo_find(lo_cur, name);
		ret = i >= 0 && !lo_cur->has_out[i];
	}
	pthread_mutex_unlock(&order_mutex);
	return ret;
}

int lockdep_order_nr_classes(void)
{
	int n = 0;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	for (int i = 0; lo_cur && i < lo_cur->nr_classes; i++)
		n += lo_cur->classes[i].type >= 0;
	pthread_mutex_unlock(&order_mutex);
	return n;
}

int lockdep_order_nr_rules(void)
{
	int n = 0;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	for (int i = 0; lo_cur && i < lo_cur->nr_rules; i++)
		n += lo_cur->rules[i].active;
	pthread_mutex_unlock(&order_mutex);
	return n;
}

bool lockdep_order_has_rule(const char *outer, int omode, const char *inner,
			    int imode)
{
	bool ret = false;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	for (int i = 0; lo_cur && i < lo_cur->nr_rules && !ret; i++) {
		const struct lo_rule *r = &lo_cur->rules[i];

		ret = r->active && r->omode == omode && r->imode == imode &&
		      !strcmp(lo_cur->classes[r->outer].name, outer) &&
		      !strcmp(lo_cur->classes[r->inner].name, inner);
	}
	pthread_mutex_unlock(&order_mutex);
	return ret;
}

void lockdep_order_for_each_rule(lock_order_rule_fn fn, void *arg)
{
	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	for (int i = 0; lo_cur && i < lo_cur->nr_rules; i++) {
		const struct lo_rule *r = &lo_cur->rules[i];
		struct lock_order_rule_info info = {
			.outer = lo_cur->classes[r->outer].name,
			.inner = lo_cur->classes[r->inner].name,
			.omode = r->omode, .imode = r->imode,
			.src = r->src, .note = r->note, .line = r->line,
		};

		if (r->active)
			fn(&info, arg);
	}
	pthread_mutex_unlock(&order_mutex);
}
