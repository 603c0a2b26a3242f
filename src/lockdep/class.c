// SPDX-License-Identifier: MIT
/*
 * Lock classes: (key address, subclass) -> struct lock_class.
 *
 * Classes live in a static array and are never freed, so a pointer to one
 * stays valid for the life of the process; lockdep_reset() forgets their
 * edges but keeps them.  Lookup is lock-free: classhash[] is an
 * open-addressed table of atomic pointers that are only ever set (under
 * graph_mutex, with a release store, after the class is filled in), and
 * each lockdep_map caches the classes of subclass 0 and 1, so the hash is
 * walked about once per lock object.
 */
#include <stdlib.h>
#include <string.h>

#include "lockdep/lockdep_internal.h"
#include "lockdep/order.h"

struct lock_class lock_classes[MAX_LOCKDEP_KEYS + 1];
_Atomic unsigned int nr_lock_classes;
static struct lock_class *_Atomic classhash[CLASSHASH_SIZE];

static unsigned int class_hash(const struct lock_class_key *key,
			       unsigned int subclass)
{
	uint64_t h = (uintptr_t)key + subclass;

	h *= 0x9e3779b97f4a7c15ull;
	return (unsigned int)(h >> 40) & (CLASSHASH_SIZE - 1);
}

static struct lock_class *class_lookup(const struct lock_class_key *key,
				       unsigned int subclass)
{
	unsigned int h = class_hash(key, subclass);

	for (;;) {
		struct lock_class *c = atomic_load_explicit(&classhash[h],
						memory_order_acquire);

		if (!c)
			return NULL;
		if (c->key == key && c->subclass == subclass)
			return c;
		h = (h + 1) & (CLASSHASH_SIZE - 1);
	}
}

/*
 * A map without a key is a statically defined lock whose own address
 * identifies the class (kernel semantics for static locks).
 */
static const struct lock_class_key *map_key(const struct lockdep_map *map)
{
	return map->key ? map->key : (const struct lock_class_key *)map;
}

const char *lockdep_map_name(const struct lockdep_map *map)
{
	if (map->key && map->key->name)
		return map->key->name;
	return map->name ? map->name : "(unnamed)";
}

/* Under graph_mutex. */
static struct lock_class *class_register(struct lockdep_map *map,
					 unsigned int subclass)
{
	const struct lock_class_key *key = map_key(map);
	unsigned int idx, h;
	struct lock_class *c = class_lookup(key, subclass);

	if (c)
		return c;
	idx = atomic_load_explicit(&nr_lock_classes, memory_order_relaxed) + 1;
	if (idx > MAX_LOCKDEP_KEYS) {
		lockdep_off_broken("BUG: MAX_LOCKDEP_KEYS too low!");
		return NULL;
	}
	c = &lock_classes[idx];
	c->key = key;
	c->name = lockdep_map_name(map);
	c->subclass = subclass;
	c->idx = idx;
	c->wait_inner = map->wait_inner;
	c->wait_outer = map->wait_outer;
	c->lock_type = map->lock_type;
	c->first_dep = -1;
	c->bfs_parent[0] = c->bfs_parent[1] = -1;
	atomic_store_explicit(&nr_lock_classes, idx, memory_order_release);
	h = class_hash(key, subclass);
	while (atomic_load_explicit(&classhash[h], memory_order_relaxed))
		h = (h + 1) & (CLASSHASH_SIZE - 1);
	atomic_store_explicit(&classhash[h], c, memory_order_release);
	return c;
}

/* The class of @map for @subclass; NULL if the validator just gave up. */
struct lock_class *lockdep_map_class(struct lockdep_map *map,
				     unsigned int subclass)
{
	const struct lock_class_key *key = map_key(map);
	struct lock_class *c;

	if (subclass >= MAX_LOCKDEP_SUBCLASSES)
		subclass = MAX_LOCKDEP_SUBCLASSES - 1;
	c = class_lookup(key, subclass);
	if (!c) {
		lockdep_curr.recursion++;
		pthread_mutex_lock(&graph_mutex);
		c = class_register(map, subclass);
		if (c && atomic_load_explicit(&lockdep_order_on, memory_order_relaxed))
			lockdep_check_class_documented(&lockdep_curr, c);
		pthread_mutex_unlock(&graph_mutex);
		lockdep_curr.recursion--;
		if (!c)
			return NULL;
	}
	if (subclass < 2)
		atomic_store_explicit(&map->class_cache[subclass], c,
				      memory_order_release);
	return c;
}

void lockdep_class_name(const struct lock_class *c, char *buf, size_t len)
{
	if (c->subclass)
		snprintf(buf, len, "%s/%u", c->name, c->subclass);
	else
		snprintf(buf, len, "%s", c->name);
}

/* Under graph_mutex: drop every class's edges (lockdep_reset()). */
void lockdep_classes_forget_graph(void)
{
	unsigned int n = atomic_load_explicit(&nr_lock_classes,
					      memory_order_relaxed);

	for (unsigned int i = 1; i <= n; i++) {
		lock_classes[i].first_dep = -1;
		lock_classes[i].used = false;
		lock_classes[i].order_gen = 0;
		lock_classes[i].bfs_gen[0] = lock_classes[i].bfs_gen[1] = 0;
	}
}

void lockdep_init_map_type(struct lockdep_map *lock, const char *name,
			   const struct lock_class_key *key, int subclass,
			   enum lockdep_wait_type inner,
			   enum lockdep_wait_type outer,
			   enum lockdep_lock_type type)
{
	lock->name = name;
	lock->key = key;
	lock->wait_inner = (uint8_t)inner;
	lock->wait_outer = (uint8_t)outer;
	lock->lock_type = (uint8_t)type;
	atomic_store_explicit(&lock->class_cache[0], NULL, memory_order_relaxed);
	atomic_store_explicit(&lock->class_cache[1], NULL, memory_order_relaxed);
	/* Register now so a class exists even if the lock is never taken. */
	if (subclass > 0 && atomic_load_explicit(&lockdep_epoch,
						 memory_order_relaxed))
		lockdep_map_class(lock, (unsigned int)subclass);
}
