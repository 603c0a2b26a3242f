/* SPDX-License-Identifier: MIT */
/*
 * Private to src/lockdep: the validator's data structures.
 *
 * Concurrency rules (the validator is itself lock-checked by TSan):
 *  - the per-thread state (struct lockdep_task) is only touched by its
 *    thread, except the statistics counters, which are atomics written by
 *    their thread alone and summed by lockdep_get_stats();
 *  - classes are published once, with a release store, into classhash[] and
 *    map->class_cache[]; their identity and wait types never change after
 *    that, so the fast path reads them without a lock;
 *  - the chain-key cache is an open-addressed table of atomics: lock-free
 *    lookups, insertions under graph_mutex;
 *  - everything else (edges, BFS state, report de-duplication, the report
 *    stream) belongs to graph_mutex, a raw pthread mutex that is never
 *    itself validated.
 */
#ifndef UKVM_LOCKDEP_INTERNAL_H
#define UKVM_LOCKDEP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "lockdep/lockdep.h"

#define CLASSHASH_SIZE		16384	/* > 2 * MAX_LOCKDEP_KEYS */
#define MAX_LOCKDEP_ENTRIES	16384	/* direct dependencies */
#define CHAINHASH_SIZE		65536
#define MAX_LOCKDEP_CHAINS	(CHAINHASH_SIZE / 2)
#define LOCKDEP_TRACE_DEPTH	8
#define LOCKDEP_TASK_NAME	32
#define LOCKDEP_DEDUPE_SIZE	4096

/*
 * Edge kinds, one bit each (lockdep's four "-(XY)->" kinds).  X is how the
 * earlier lock is held (Exclusive or Shared), Y how the later one is taken
 * (Recursive reader or Non-recursive/writer).
 */
#define DEP_SR		(1u << 0)
#define DEP_ER		(1u << 1)
#define DEP_SN		(1u << 2)
#define DEP_EN		(1u << 3)
#define DEP_OUT_EXCL	(DEP_ER | DEP_EN)	/* -(E*)-> */
#define DEP_INTO_N	(DEP_SN | DEP_EN)	/* -(*N)-> */

static inline unsigned int dep_bit(int prev_read, int next_read)
{
	unsigned int bit = 0;

	if (!prev_read)
		bit |= 1;	/* prev exclusive */
	if (next_read != 2)
		bit |= 2;	/* next non-recursive */
	return 1u << bit;
}

struct lock_class {
	const struct lock_class_key *key;
	const char *name;
	unsigned int subclass;
	unsigned int idx;		/* index in lock_classes[], never 0 */
	uint8_t wait_inner;
	uint8_t wait_outer;
	uint8_t lock_type;

	/* Below: under graph_mutex. */
	int first_dep;			/* forward edge list, -1 if none */
	unsigned int order_gen;		/* order generation last checked */
	unsigned int bfs_gen[2];	/* [arrived only via -(xR)->] */
	int bfs_parent[2];		/* edge that reached this state */
	bool used;			/* seen in a validated chain */
};

/* A direct dependency "from is held while to is acquired". */
struct lock_dep {
	uint16_t from, to;
	uint8_t dep;			/* DEP_* bits seen so far */
	uint8_t prev_read, next_read;	/* modes when first seen */
	bool next_sync;
	int next_dep;			/* next edge out of @from */
	const struct lockdep_site *prev_site, *next_site;
	char task[LOCKDEP_TASK_NAME];
	uint8_t nr_trace;
	void *trace[LOCKDEP_TRACE_DEPTH];
};

struct held_lock {
	uint64_t prev_chain_key;
	struct lockdep_map *instance;
	struct lockdep_map *nest_lock;
	const struct lockdep_site *site;
	uint16_t class_idx;
	uint8_t read;			/* 0, 1 or 2 */
	uint8_t trylock;
	uint8_t check;
	uint8_t wait_bound;		/* strictest inner type, this and below */
};

struct lockdep_task {
	uint64_t curr_chain_key;
	int depth;
	int recursion;			/* >0: inside the validator */
	unsigned int epoch;		/* lockdep_epoch this stack belongs to */
	bool lenient;			/* stack was dropped: no unbalance reports */
	bool registered;
	bool acquiring;			/* reports now belong to an acquisition */
	int pending;			/* first such report kind + 1, or 0 */
	void *cur_ip;			/* return address of the entry point */
	const struct lockdep_site *cur_site;	/* site of the acquisition */
	pid_t tid;
	lockdep_bailout_fn bailout;
	void *bailout_arg;
	_Atomic unsigned long hits, misses;
	struct lockdep_task *next_task, *prev_task;
	char name[LOCKDEP_TASK_NAME];
	struct held_lock held[MAX_LOCK_DEPTH];
};

extern __thread struct lockdep_task lockdep_curr;

/* 0: validation off; otherwise the epoch of the current "on" period. */
extern _Atomic unsigned int lockdep_epoch;
extern _Atomic int lockdep_order_on;
extern _Atomic unsigned long lockdep_max_depth_seen;

extern struct lock_class lock_classes[MAX_LOCKDEP_KEYS + 1];
extern _Atomic unsigned int nr_lock_classes;
extern pthread_mutex_t graph_mutex;

/* core.c */
void lockdep_task_attach(struct lockdep_task *t);
void lockdep_fold_task_stats(unsigned long *hits, unsigned long *misses);
void lockdep_off_broken(const char *why);
unsigned long lockdep_nr_static_keys(void);

/* class.c */
struct lock_class *lockdep_map_class(struct lockdep_map *map,
				     unsigned int subclass);
static inline struct lock_class *hlock_class(const struct held_lock *hl)
{
	return &lock_classes[hl->class_idx];
}
void lockdep_class_name(const struct lock_class *c, char *buf, size_t len);
const char *lockdep_map_name(const struct lockdep_map *map);
void lockdep_classes_forget_graph(void);

/* chain.c */
static inline uint64_t lockdep_chain_mix(uint64_t key, uint32_t id)
{
	uint64_t k = key + (uint64_t)id * 0x9e3779b97f4a7c15ull;

	k ^= k >> 31;
	k *= 0xbf58476d1ce4e5b9ull;
	k ^= k >> 29;
	k *= 0x94d049bb133111ebull;
	k ^= k >> 32;
	return k ? k : 1;
}
#define LOCKDEP_INITIAL_CHAIN_KEY 0x6a09e667f3bcc909ull
static inline uint32_t hlock_id(unsigned int class_idx, int read, bool sync)
{
	return class_idx | (uint32_t)read << 13 | (uint32_t)sync << 15;
}
extern _Atomic uint64_t lockdep_chainhash[CHAINHASH_SIZE];
/* Lock-free: a few relaxed loads (keys are only ever added under graph_mutex). */
static inline bool lockdep_chain_lookup(uint64_t key)
{
	unsigned int h = (unsigned int)key & (CHAINHASH_SIZE - 1);

	for (;;) {
		uint64_t v = atomic_load_explicit(&lockdep_chainhash[h],
						  memory_order_relaxed);

		if (__builtin_expect(v == key, 1))
			return true;
		if (!v)
			return false;
		h = (h + 1) & (CHAINHASH_SIZE - 1);
	}
}
int lockdep_chain_insert(uint64_t key);	/* under graph_mutex; -ENOSPC */
void lockdep_chains_reset(void);
unsigned long lockdep_nr_chains(void);

/* graph.c: the chain-miss slow path (reports go to t->pending). */
void lockdep_validate_chain(struct lockdep_task *t, struct held_lock *next,
			   uint64_t chain_key, bool sync);
void lockdep_graph_reset(void);
unsigned long lockdep_nr_deps(void);
struct lock_dep *lockdep_dep(int idx);

/* report.c */
enum lockdep_report_verdict {
	REPORT_DUPLICATE,	/* seen before: not counted, not printed */
	REPORT_COUNT_ONLY,	/* QUIET mode: counted, not printed */
	REPORT_PRINT,		/* counted, print it, then report_end() */
};
uint64_t lockdep_dedupe_hash(enum lockdep_report_kind kind,
			     const unsigned int *classes, int n,
			     const void *extra);
enum lockdep_report_verdict lockdep_report_begin(enum lockdep_report_kind kind,
						 uint64_t hash);
void lockdep_report_end(void);
void lockdep_report_reset(void);
FILE *lockdep_out(void);
void lockdep_print_banner(FILE *f, const char *title);
void lockdep_print_site(FILE *f, const struct lockdep_site *site);
void lockdep_print_hlock(FILE *f, const struct held_lock *hl, bool waits);
void lockdep_print_hlock_sync(FILE *f, const struct held_lock *hl, bool waits,
			      bool sync);
void lockdep_print_held_locks_of(FILE *f, struct lockdep_task *t, bool waits);
void lockdep_print_backtrace(FILE *f, void *const *trace, int n,
			     const char *indent);
void lockdep_print_stack(FILE *f);
void lockdep_print_stack_indent(FILE *f, const char *indent);
int lockdep_save_trace(void **buf, int max);
const char *lockdep_mode_char(int read, bool sync);
const char *lockdep_mode_verb(int read, bool sync);
/* Report helpers for the checks of core.c. */
void lockdep_report_wait_context(struct lockdep_task *t,
				 struct held_lock *next, bool sync, int outer);
void lockdep_report_nest_not_held(struct lockdep_task *t,
				  struct held_lock *next);
void lockdep_report_depth_overflow(struct lockdep_task *t,
				   struct held_lock *next)
	__attribute__((noreturn));
void lockdep_report_bad_unlock(struct lockdep_task *t,
			       const struct lockdep_map *lock,
			       const struct lockdep_site *site);
void lockdep_report_held_at_exit(struct lockdep_task *t);
void lockdep_report_might_sleep(struct lockdep_task *t,
				const struct lockdep_site *site);
void lockdep_report_assert(struct lockdep_task *t, const char *what,
			   const struct lockdep_map *lock,
			   const struct lockdep_site *site);
void lockdep_report_rcu(struct lockdep_task *t, const char *what,
			const struct lockdep_site *site);
void lockdep_report_stats(struct lockdep_stats *st);

/* report_graph.c: the reports the chain-miss path produces. */
void lockdep_print_circular(struct lockdep_task *t, struct held_lock *prev,
			    struct held_lock *next, bool sync,
			    const int *path, int len);
void lockdep_print_recursive(struct lockdep_task *t, struct held_lock *prev,
			     struct held_lock *next, bool sync);

/* order checks of graph.c (report_graph.c prints them). */
void lockdep_check_class_documented(struct lockdep_task *t,
				    struct lock_class *c);
void lockdep_check_order(struct lockdep_task *t, struct held_lock *prev,
			 struct held_lock *next, bool sync);

#endif /* UKVM_LOCKDEP_INTERNAL_H */
