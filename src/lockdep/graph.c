// SPDX-License-Identifier: MIT
/*
 * The dependency graph over lock classes and the chain-miss slow path.
 *
 * A held-lock sequence never seen before is validated here, under
 * graph_mutex, in lockdep's order: the same-class check against the held
 * stack, then for every dependency the acquisition adds (from the top held
 * lock, and through consecutive trylocks below it, to the new lock) the
 * documented-order check and a breadth-first search for a cycle that the
 * new edge would close.  BFS rather than DFS so that the cycle reported is
 * a shortest one.
 *
 * Edges carry lockdep's four kinds (lockdep_internal.h).  A path counts
 * only if it is "strong": it never enters a recursive reader (-(xR)->) and
 * immediately leaves it through a shared hold (-(Sx)->), because a
 * recursive reader is never blocked by other readers.  The search state is
 * therefore (class, "arrived only through -(xR)-> edges").
 */
#include <string.h>

#include "lockdep/lockdep_internal.h"
#include "lockdep/order.h"

static struct lock_dep deps[MAX_LOCKDEP_ENTRIES];
static int nr_deps;
static unsigned int bfs_generation;
static int bfs_queue[2 * (MAX_LOCKDEP_KEYS + 1)];

unsigned long lockdep_nr_deps(void)
{
	return (unsigned long)nr_deps;
}

struct lock_dep *lockdep_dep(int idx)
{
	return idx >= 0 && idx < nr_deps ? &deps[idx] : NULL;
}

void lockdep_graph_reset(void)
{
	nr_deps = 0;
}

static struct lock_dep *find_dep(unsigned int from, unsigned int to)
{
	for (int e = lock_classes[from].first_dep; e >= 0; e = deps[e].next_dep)
		if (deps[e].to == to)
			return &deps[e];
	return NULL;
}

static bool bfs_visit(unsigned int cls, int xr, int parent)
{
	struct lock_class *c = &lock_classes[cls];

	if (c->bfs_gen[xr] == bfs_generation)
		return false;
	c->bfs_gen[xr] = bfs_generation;
	c->bfs_parent[xr] = parent;
	return true;
}

/*
 * Shortest strong path from @next's class to @prev's class along existing
 * edges that, with prev -> next added, is a deadlock.  Returns its length
 * and the edges (from next on) in @path, or 0.
 */
static int bfs_cycle(const struct held_lock *prev, const struct held_lock *next,
		     int *path, int max)
{
	unsigned int target = prev->class_idx;
	int head = 0, tail = 0, found = -1, len = 0;

	if (!++bfs_generation)
		bfs_generation = 1;
	/* A recursive reader: its own reader holds cannot block us. */
	bfs_visit(next->class_idx, next->read == 2, -1);
	bfs_queue[tail++] = (int)next->class_idx * 2 + (next->read == 2);
	while (head < tail && found < 0) {
		int st = bfs_queue[head++];
		unsigned int c = (unsigned int)st / 2;

		for (int e = lock_classes[c].first_dep; e >= 0; e = deps[e].next_dep) {
			unsigned int bits = deps[e].dep;
			int xr;

			if (st & 1)
				bits &= DEP_OUT_EXCL;
			if (!bits)
				continue;
			xr = !(bits & DEP_INTO_N);
			if (!bfs_visit(deps[e].to, xr, e * 2 + (st & 1)))
				continue;
			if (deps[e].to == target && (!prev->read || !xr)) {
				found = (int)deps[e].to * 2 + xr;
				break;
			}
			bfs_queue[tail++] = (int)deps[e].to * 2 + xr;
		}
	}
	if (found < 0)
		return 0;
	for (int st = found, p; (p = lock_classes[st / 2].bfs_parent[st & 1]) >= 0;
	     st = (int)deps[p / 2].from * 2 + (p & 1))
		len++;
	if (len > max)
		return 0;
	for (int st = found, p, k = len;
	     (p = lock_classes[st / 2].bfs_parent[st & 1]) >= 0;
	     st = (int)deps[p / 2].from * 2 + (p & 1))
		path[--k] = p / 2;
	return len;
}

static __attribute__((noinline)) int new_dep(struct held_lock *prev,
					     struct held_lock *next, bool sync,
					     unsigned int bit)
{
	struct lock_class *from = hlock_class(prev);
	struct lock_dep *d;

	if (nr_deps >= MAX_LOCKDEP_ENTRIES) {
		lockdep_off_broken("BUG: MAX_LOCKDEP_ENTRIES too low!");
		return -1;
	}
	d = &deps[nr_deps];
	memset(d, 0, sizeof(*d));
	d->from = prev->class_idx;
	d->to = next->class_idx;
	d->dep = (uint8_t)bit;
	d->prev_read = prev->read;
	d->next_read = next->read;
	d->next_sync = sync;
	d->prev_site = prev->site;
	d->next_site = next->site;
	snprintf(d->task, sizeof(d->task), "%s", lockdep_curr.name);
	d->nr_trace = (uint8_t)lockdep_save_trace(d->trace, LOCKDEP_TRACE_DEPTH);
	d->next_dep = from->first_dep;
	from->first_dep = nr_deps;
	return nr_deps++;
}

static __attribute__((noinline)) void add_dep(struct lockdep_task *t,
					      struct held_lock *prev,
					      struct held_lock *next, bool sync)
{
	unsigned int bit = dep_bit(prev->read, next->read);
	struct lock_dep *d;
	int path[64], len;

	/* Same-class pairs were settled by check_same_class(). */
	if (prev->class_idx == next->class_idx)
		return;
	d = find_dep(prev->class_idx, next->class_idx);
	if (d && (d->dep & bit))
		return;
	if (atomic_load_explicit(&lockdep_order_on, memory_order_relaxed))
		lockdep_check_order(t, prev, next, sync);
	len = bfs_cycle(prev, next, path, 64);
	if (len)
		lockdep_print_circular(t, prev, next, sync, path, len);
	if (d)
		d->dep |= (uint8_t)bit;
	else
		new_dep(prev, next, sync, bit);
}

/*
 * lockdep's check_deadlock(): may @next's class nest in a held one of the
 * same class?  Returns 1 to add dependencies, 0 if it must add none (the
 * nest lock serialises this class).
 */
static int check_same_class(struct lockdep_task *t, struct held_lock *next,
			    bool sync)
{
	struct held_lock *nest = NULL;

	for (int i = 0; i < t->depth; i++) {
		struct held_lock *prev = &t->held[i];

		if (next->nest_lock && prev->instance == next->nest_lock)
			nest = prev;
		if (prev->class_idx != next->class_idx)
			continue;
		/* A recursive reader nests in any reader of its class. */
		if (next->read == 2 && prev->read && !sync)
			continue;
		if (nest)
			return 0;
		lockdep_print_recursive(t, prev, next, sync);
		return 1;
	}
	return 1;
}

/* lockdep's check_prevs_add(): edges from the top, through trylocks. */
static void add_prev_deps(struct lockdep_task *t, struct held_lock *next,
			  bool sync)
{
	for (int i = t->depth - 1; i >= 0; i--) {
		struct held_lock *prev = &t->held[i];

		if (prev->check)
			add_dep(t, prev, next, sync);
		if (!prev->trylock)
			break;
	}
}

void lockdep_validate_chain(struct lockdep_task *t, struct held_lock *next,
			    uint64_t chain_key, bool sync)
{
	struct lock_class *c = hlock_class(next);

	t->recursion++;
	pthread_mutex_lock(&graph_mutex);
	/* Another thread may have validated this very chain meanwhile. */
	if (!lockdep_chain_lookup(chain_key)) {
		if (atomic_load_explicit(&lockdep_order_on, memory_order_relaxed))
			lockdep_check_class_documented(t, c);
		if (check_same_class(t, next, sync))
			add_prev_deps(t, next, sync);
		c->used = true;
		for (int i = 0; i < t->depth; i++)
			hlock_class(&t->held[i])->used = true;
		lockdep_chain_insert(chain_key);
	}
	pthread_mutex_unlock(&graph_mutex);
	t->recursion--;
}
