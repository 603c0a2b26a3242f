/* SPDX-License-Identifier: MIT */
/*
 * ukvm lock validator: a userspace lockdep.
 *
 * Every lock primitive of src/sync embeds a struct lockdep_map and reports its
 * acquisitions and releases here.  The validator keeps, per thread, a stack of
 * held locks; across threads, a dependency graph over lock *classes* (one per
 * kind of lock, e.g. "&kvm->slots_lock" for the slots_lock of every VM) with
 * lockdep's four edge kinds; and the documented lock order of locking.rst
 * (src/lockdep/lock-order.txt), against which every observed dependency is
 * checked.
 *
 * Acquisition modes ("read" argument, as in the kernel):
 *   0  exclusive (mutex, spinlock, write side of rwlock/rwsem, synchronize_*)
 *   1  non-recursive shared: a reader that blocks behind a *waiting* writer
 *      (our fair rw_semaphore, cpus_read_lock(), read side of rwlock_t)
 *   2  recursive shared: a reader that only a write *holder* blocks
 *      (SRCU and RCU read-side critical sections)
 *
 * The common path of lock_acquire() is one chain-cache lookup: a held-lock
 * sequence is validated (recursion, documented order, cycles) only the first
 * time it is seen.
 *
 * Compile-time switch: UKVM_LOCKDEP (meson -Dlockdep=false) turns every entry
 * point below into an empty inline function and struct lockdep_map into an
 * empty struct: zero code on the lock paths.  Runtime switch:
 * lockdep_set_enabled().
 */
#ifndef UKVM_LOCKDEP_LOCKDEP_H
#define UKVM_LOCKDEP_LOCKDEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

/* Where a lock operation happened: captured at the call site, no runtime cost. */
struct lockdep_site {
	const char *func;
	const char *file;
	int line;
};

#if UKVM_LOCKDEP
#define LOCKDEP_SITE                                                          \
	({                                                                    \
		static const struct lockdep_site __lockdep_site = {           \
			__func__, __FILE__, __LINE__ };                       \
		&__lockdep_site;                                              \
	})
#else
#define LOCKDEP_SITE ((const struct lockdep_site *)NULL)
#endif

/*
 * Wait types (lockdep's LD_WAIT_*): what a context allows inside it.
 * Acquiring a lock whose outer type is larger than the smallest inner type
 * of the locks already held is an "Invalid wait context".
 */
enum lockdep_wait_type {
	LD_WAIT_INV = 0,	/* not checked */
	LD_WAIT_FREE,		/* wait-free: RCU/SRCU read_lock itself */
	LD_WAIT_SPIN,		/* raw_spinlock_t: never sleeps, even on PREEMPT_RT */
	LD_WAIT_CONFIG,		/* spinlock_t, rwlock_t, RCU read side */
	LD_WAIT_SLEEP,		/* mutex, rw_semaphore, SRCU read side, synchronize_* */
	LD_WAIT_MAX,
};

/* What kind of primitive a class is (reports, documented-order types). */
enum lockdep_lock_type {
	LD_TYPE_MUTEX,
	LD_TYPE_SPINLOCK,
	LD_TYPE_RAW_SPINLOCK,
	LD_TYPE_RWLOCK,
	LD_TYPE_RWSEM,
	LD_TYPE_SRCU,
	LD_TYPE_RCU,
	LD_TYPE_MAP,		/* a pseudo-lock: a wait modelled as a lock */
	LD_TYPE_NR,
};

#define MAX_LOCKDEP_SUBCLASSES	8
#define MAX_LOCK_DEPTH		48
#define MAX_LOCKDEP_KEYS	8191

/*
 * A lock class key.  Its *address* (plus the subclass) identifies a class.
 * The init macros of src/sync declare one static key per init call site, so
 * all locks initialised by the same line form one class (kernel semantics),
 * and place it in the "ukvm_lockdep_keys" linker section, so that every class
 * compiled into a binary can be enumerated (lockdep_for_each_static_key())
 * and checked against the documented order even if it is never taken.
 */
struct lock_class_key {
	const char *name;	/* class name, e.g. "&kvm->slots_lock" */
	uint8_t type;		/* enum lockdep_lock_type */
	uint8_t local;		/* not part of the documented design */
	char subkeys[MAX_LOCKDEP_SUBCLASSES];
} __attribute__((aligned(16)));

#define LOCKDEP_KEY_SECTION "ukvm_lockdep_keys"

/* Declare (at the call site) a static, registered class key. */
#define LOCKDEP_STATIC_KEY(_name, _type)                                      \
	({                                                                    \
		static struct lock_class_key __lockdep_key                    \
			__attribute__((section(LOCKDEP_KEY_SECTION), used)) = \
			{ .name = (_name), .type = (_type) };                 \
		&__lockdep_key;                                               \
	})

/* A file-scope registered key, for statically defined locks. */
#define DEFINE_LOCKDEP_KEY(_var, _name, _type)                                \
	struct lock_class_key _var                                            \
		__attribute__((section(LOCKDEP_KEY_SECTION), used)) =         \
		{ .name = (_name), .type = (_type) }

/*
 * A key for a lock that is not part of the design lock-order.txt documents
 * (a benchmark's or a test's own lock): outside the key section, so
 * `ukvm locks --check` does not ask for a declaration, and marked local, so
 * the documented-order checks skip it.  Cycles, wait contexts and
 * assertions are validated as for any other class.
 */
#define DEFINE_LOCKDEP_LOCAL_KEY(_var, _name, _type)                          \
	struct lock_class_key _var = { .name = (_name), .type = (_type),      \
				       .local = 1 }

struct lock_class;

#if UKVM_LOCKDEP
struct lockdep_map {
	const char *name;
	const struct lock_class_key *key;
	struct lock_class *_Atomic class_cache[2];	/* subclass 0 and 1 */
	uint8_t wait_inner;	/* enum lockdep_wait_type inside the lock */
	uint8_t wait_outer;	/* ... needed to take the lock */
	uint8_t lock_type;	/* enum lockdep_lock_type */
};
#define STATIC_LOCKDEP_MAP_INIT(_name, _key, _inner, _outer, _type)           \
	{ .name = (_name), .key = (_key), .wait_inner = (_inner),             \
	  .wait_outer = (_outer), .lock_type = (_type) }
#else
struct lockdep_map { };
#define STATIC_LOCKDEP_MAP_INIT(_name, _key, _inner, _outer, _type) { }
#endif

/* lock_is_held_type() results (kernel values). */
enum {
	LOCK_STATE_UNKNOWN = -1,	/* validator off: assertions pass */
	LOCK_STATE_NOT_HELD = 0,
	LOCK_STATE_HELD = 1,
};

/* Report kinds; every report increments its counter. */
enum lockdep_report_kind {
	LDR_CIRCULAR,		/* possible circular locking dependency */
	LDR_RECURSIVE,		/* possible recursive locking (same class) */
	LDR_WAIT_CONTEXT,	/* Invalid wait context */
	LDR_MIGHT_SLEEP,	/* sleeping function called from invalid context */
	LDR_ASSERT,		/* lockdep_assert_*() failed */
	LDR_BAD_UNLOCK,		/* bad unlock balance */
	LDR_NEST_NOT_HELD,	/* nest_lock was not taken */
	LDR_ORDER_VIOLATION,	/* contradicts the documented order */
	LDR_UNKNOWN_CLASS,	/* a lock class absent from the documented order */
	LDR_SUSPICIOUS_RCU,	/* rcu/srcu_dereference_check() outside protection */
	LDR_HELD_AT_EXIT,	/* thread exited holding locks */
	LDR_UNDOCUMENTED,	/* WARNING only: order the document does not state */
	LDR_NR,
};

/* What happens after a report has been printed. */
enum lockdep_report_mode {
	LOCKDEP_REPORT_CONTINUE,	/* default: count it, keep validating */
	LOCKDEP_REPORT_ABORT,		/* abort() (for debugging under gdb) */
	LOCKDEP_REPORT_QUIET,		/* count it, print nothing */
};

struct lockdep_stats {
	unsigned long classes;		/* registered classes (incl. subclasses) */
	unsigned long static_keys;	/* keys compiled into this binary */
	unsigned long dependencies;	/* direct edges in the observed graph */
	unsigned long chains;		/* distinct held-lock chains validated */
	unsigned long chain_hits;	/* acquisitions answered by the cache */
	unsigned long chain_misses;	/* acquisitions that ran the checks */
	unsigned long max_depth;	/* deepest held-lock stack seen */
	unsigned long errors;		/* reports of every kind but LDR_UNDOCUMENTED */
	unsigned long warnings;		/* LDR_UNDOCUMENTED reports */
	unsigned long by_kind[LDR_NR];
};

/*
 * Called (in the acquiring thread) after a report caused by that thread's
 * acquisition or sync, before the lock is pushed on its held stack; it may
 * longjmp() out (the acquisition is then simply not recorded).  It is also
 * called when the error is a repeat that de-duplication did not print (a
 * repeat deadlocks just as well), never for warnings (LDR_UNDOCUMENTED
 * unless lockdep_set_undocumented_is_error()), and never for a chain-cache
 * hit: a scenario replayed twice needs lockdep_reset() in between.
 */
typedef void (*lockdep_bailout_fn)(void *arg, enum lockdep_report_kind kind);

#if UKVM_LOCKDEP

void lockdep_init_map_type(struct lockdep_map *lock, const char *name,
			   const struct lock_class_key *key, int subclass,
			   enum lockdep_wait_type inner,
			   enum lockdep_wait_type outer,
			   enum lockdep_lock_type type);

/*
 * The two entry points every primitive maps onto.
 * @check: 0 records the lock as held (for assertions) without adding it to
 *         the dependency graph.
 * @nest_lock: the serialising lock that makes holding many instances of this
 *         class legal (kvm->lock for kvm_lock_all_vcpus()); must be held.
 * A trylock is pushed on the held stack but adds no dependency *into* itself;
 * later blocking acquisitions do add dependencies *from* it.
 */
void lock_acquire(struct lockdep_map *lock, unsigned int subclass, int trylock,
		  int read, int check, struct lockdep_map *nest_lock,
		  const struct lockdep_site *site);
void lock_release(struct lockdep_map *lock, const struct lockdep_site *site);

/*
 * An acquire immediately followed by a release, never pushed on the held
 * stack: synchronize_srcu()/synchronize_rcu() and waits modelled as locks.
 * Validated like an acquisition of mode @read.
 */
void lock_sync(struct lockdep_map *lock, unsigned int subclass, int read,
	       int check, struct lockdep_map *nest_lock,
	       const struct lockdep_site *site);

/* @read: -1 any mode, 0 held exclusive, 1 held shared (read 1 or 2). */
int lock_is_held_type(const struct lockdep_map *lock, int read);

/* might_sleep(): report if the current context does not allow sleeping. */
void lockdep_might_sleep(const struct lockdep_site *site);

/* Report helpers used by the assertion and dereference-check macros. */
void lockdep_assert_failed(const char *what, const struct lockdep_map *lock,
			   const struct lockdep_site *site);
void lockdep_rcu_suspicious(const char *what, const struct lockdep_site *site);

/* Per-thread state. */
void lockdep_set_task_name(const char *name);
const char *lockdep_task_name(void);
int lockdep_depth(void);
void lockdep_print_held_locks(FILE *f);
void lockdep_set_thread_bailout(lockdep_bailout_fn fn, void *arg);

/* Global control. */
void lockdep_set_enabled(bool on);
bool lockdep_enabled(void);
void lockdep_set_report_mode(enum lockdep_report_mode mode);
void lockdep_set_report_stream(FILE *f);	/* default stderr */
void lockdep_set_undocumented_is_error(bool yes);
void lockdep_reset(void);	/* forget graph, chains, reports (selftests) */
void lockdep_get_stats(struct lockdep_stats *st);
unsigned long lockdep_report_count(void);	/* errors */
unsigned long lockdep_warning_count(void);

/* The documented order (src/lockdep/lock-order.txt, see order.h). */
void lockdep_order_set_enabled(bool on);

/*
 * The observed graph: every class seen and every dependency recorded, each
 * tagged documented / undocumented / violation against the loaded order.
 * Text (like /proc/lockdep) and Graphviz, with the documented rules between
 * the classes seen drawn beside the observed edges.
 */
void lockdep_graph_print(FILE *f);
void lockdep_graph_write_dot(FILE *f);

#else /* !UKVM_LOCKDEP: every hook compiles to nothing */

static inline void lockdep_init_map_type(struct lockdep_map *lock,
		const char *name, const struct lock_class_key *key,
		int subclass, enum lockdep_wait_type inner,
		enum lockdep_wait_type outer, enum lockdep_lock_type type)
{
	(void)lock; (void)name; (void)key; (void)subclass;
	(void)inner; (void)outer; (void)type;
}
static inline void lock_acquire(struct lockdep_map *lock, unsigned int subclass,
		int trylock, int read, int check, struct lockdep_map *nest_lock,
		const struct lockdep_site *site)
{
	(void)lock; (void)subclass; (void)trylock; (void)read; (void)check;
	(void)nest_lock; (void)site;
}
static inline void lock_release(struct lockdep_map *lock,
		const struct lockdep_site *site)
{
	(void)lock; (void)site;
}
static inline void lock_sync(struct lockdep_map *lock, unsigned int subclass,
		int read, int check, struct lockdep_map *nest_lock,
		const struct lockdep_site *site)
{
	(void)lock; (void)subclass; (void)read; (void)check; (void)nest_lock;
	(void)site;
}
static inline int lock_is_held_type(const struct lockdep_map *lock, int read)
{
	(void)lock; (void)read;
	return LOCK_STATE_UNKNOWN;
}
static inline void lockdep_might_sleep(const struct lockdep_site *site) { (void)site; }
static inline void lockdep_assert_failed(const char *what,
		const struct lockdep_map *lock, const struct lockdep_site *site)
{
	(void)what; (void)lock; (void)site;
}
static inline void lockdep_rcu_suspicious(const char *what,
		const struct lockdep_site *site)
{
	(void)what; (void)site;
}
static inline void lockdep_set_task_name(const char *name) { (void)name; }
static inline const char *lockdep_task_name(void) { return "?"; }
static inline int lockdep_depth(void) { return 0; }
static inline void lockdep_print_held_locks(FILE *f) { (void)f; }
static inline void lockdep_set_thread_bailout(lockdep_bailout_fn fn, void *arg)
{
	(void)fn; (void)arg;
}
static inline void lockdep_set_enabled(bool on) { (void)on; }
static inline bool lockdep_enabled(void) { return false; }
static inline void lockdep_set_report_mode(enum lockdep_report_mode mode) { (void)mode; }
static inline void lockdep_set_report_stream(FILE *f) { (void)f; }
static inline void lockdep_set_undocumented_is_error(bool yes) { (void)yes; }
static inline void lockdep_reset(void) { }
static inline void lockdep_get_stats(struct lockdep_stats *st)
{
	*st = (struct lockdep_stats){ 0 };
}
static inline unsigned long lockdep_report_count(void) { return 0; }
static inline unsigned long lockdep_warning_count(void) { return 0; }
static inline void lockdep_order_set_enabled(bool on) { (void)on; }
static inline void lockdep_graph_print(FILE *f) { (void)f; }
static inline void lockdep_graph_write_dot(FILE *f) { (void)f; }

#endif /* UKVM_LOCKDEP */

/* Pseudo-locks ("maps"): waits and contexts modelled as locks. */
#define lock_map_acquire(l)	 lock_acquire((l), 0, 0, 0, 1, NULL, LOCKDEP_SITE)
#define lock_map_acquire_read(l) lock_acquire((l), 0, 0, 2, 1, NULL, LOCKDEP_SITE)
#define lock_map_release(l)	 lock_release((l), LOCKDEP_SITE)
#define lock_map_sync(l)	 lock_sync((l), 0, 0, 1, NULL, LOCKDEP_SITE)

/*
 * Locking contracts as code.  @l is any primitive of src/sync (they all embed
 * `dep_map`).  With the validator off or compiled out the state is UNKNOWN and
 * the assertion passes, but @l is still type-checked.
 */
#define lockdep_is_held(l)	lock_is_held_type(&(l)->dep_map, -1)
#define __lockdep_assert(cond_state, what, l)                                 \
	do {                                                                  \
		if ((cond_state))                                             \
			lockdep_assert_failed((what), &(l)->dep_map,          \
					      LOCKDEP_SITE);                  \
	} while (0)
#define lockdep_assert_held(l)                                                \
	__lockdep_assert(lock_is_held_type(&(l)->dep_map, -1) ==              \
			 LOCK_STATE_NOT_HELD, "held", (l))
#define lockdep_assert_not_held(l)                                            \
	__lockdep_assert(lock_is_held_type(&(l)->dep_map, -1) ==              \
			 LOCK_STATE_HELD, "not held", (l))
#define lockdep_assert_held_write(l)                                          \
	__lockdep_assert(lock_is_held_type(&(l)->dep_map, 0) ==               \
			 LOCK_STATE_NOT_HELD, "held for write", (l))
#define lockdep_assert_held_read(l)                                           \
	__lockdep_assert(lock_is_held_type(&(l)->dep_map, 1) ==               \
			 LOCK_STATE_NOT_HELD, "held for read", (l))

#define might_sleep()	lockdep_might_sleep(LOCKDEP_SITE)

/* Enumerate every class key compiled into the current binary / library. */
typedef void (*lockdep_key_fn)(const struct lock_class_key *key, void *arg);
void lockdep_for_each_static_key(lockdep_key_fn fn, void *arg);

#endif /* UKVM_LOCKDEP_LOCKDEP_H */
