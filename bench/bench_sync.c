// SPDX-License-Identifier: MIT
/*
 * `ukvm bench sync`: the cost of each src/sync primitive, with the validator
 * switched off and on at run time (same binary, same run), next to the
 * library it wraps or replaces: pthread mutex/spinlock/rwlock and liburcu's
 * memb flavor called directly.  Two-thread rows hammer one shared object,
 * as the native anchors of perf-anchors.md section 4 do.
 *
 * Targets (issue "Foundation"): srcu_read_lock+unlock <= 5 ns,
 * synchronize_srcu_expedited() with no readers <= 5 us, and the validator's
 * cache-hit cost <= 20 ns per acquisition, measured as (mutex lock+unlock
 * with the validator on) - (the same with it off).
 */
#include "config.h"

/* The liburcu reference inlines its read side, like src/sync/rcu.c does. */
#if !UKVM_TSAN
#define _LGPL_SOURCE
#endif
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "bench/bench.h"
#include "sync/sync.h"

#define SRCU_READ_TARGET_NS	5.0
#define SRCU_EXP_TARGET_NS	5000.0
#define LOCKDEP_HIT_TARGET_NS	20.0

/* The objects under test; two-thread rows share one of them. */
static struct sync_objs {
	struct mutex mutex;
	spinlock_t spin;
	raw_spinlock_t raw;
	rwlock_t rw;
	struct rw_semaphore sem;
	struct srcu_struct srcu;
	pthread_mutex_t pmutex;
	pthread_spinlock_t pspin;
	pthread_rwlock_t prw;
} objs;

/* ---- operation loops ---------------------------------------------------- */

#define LOOP(fn_name, body)                                                   \
static void fn_name(void *arg, int id, uint64_t n)                            \
{                                                                             \
	struct sync_objs *o __attribute__((unused)) = arg;                    \
	(void)id;                                                             \
	for (uint64_t i = 0; i < n; i++) {                                    \
		body;                                                         \
	}                                                                     \
}

LOOP(loop_mutex, mutex_lock(&o->mutex); mutex_unlock(&o->mutex))
LOOP(loop_spin, spin_lock(&o->spin); spin_unlock(&o->spin))
LOOP(loop_raw_spin, raw_spin_lock(&o->raw); raw_spin_unlock(&o->raw))
LOOP(loop_read_lock, read_lock(&o->rw); read_unlock(&o->rw))
LOOP(loop_write_lock, write_lock(&o->rw); write_unlock(&o->rw))
LOOP(loop_down_read, down_read(&o->sem); up_read(&o->sem))
LOOP(loop_down_write, down_write(&o->sem); up_write(&o->sem))
LOOP(loop_srcu_read, int idx = srcu_read_lock(&o->srcu);
		     srcu_read_unlock(&o->srcu, idx))
LOOP(loop_srcu_sync_exp, synchronize_srcu_expedited(&o->srcu))
LOOP(loop_srcu_sync, synchronize_srcu(&o->srcu))
LOOP(loop_rcu_read, ukvm_rcu_read_lock(); ukvm_rcu_read_unlock())
LOOP(loop_rcu_sync, ukvm_synchronize_rcu())

LOOP(ref_pmutex, pthread_mutex_lock(&o->pmutex);
		 pthread_mutex_unlock(&o->pmutex))
LOOP(ref_pspin, pthread_spin_lock(&o->pspin); pthread_spin_unlock(&o->pspin))
LOOP(ref_prw_rd, pthread_rwlock_rdlock(&o->prw);
		 pthread_rwlock_unlock(&o->prw))
LOOP(ref_prw_wr, pthread_rwlock_wrlock(&o->prw);
		 pthread_rwlock_unlock(&o->prw))
LOOP(ref_urcu_read, urcu_memb_read_lock(); urcu_memb_read_unlock())
LOOP(ref_urcu_sync, urcu_memb_synchronize_rcu())

struct sync_case {
	const char *name;
	bench_loop_fn fn;
	const char *ref_name;
	bench_loop_fn ref;
	uint64_t iters;		/* per run, one thread */
	uint64_t iters_mt;	/* per run and thread with 2 threads; 0: 1 only */
	uint64_t iters_crowd;	/* per run and thread, NR_CROWD threads; 0: no */
};

/* ukvm runs up to ~12 threads on 2 CPUs: lock holders get preempted. */
#define NR_CROWD 12

#define CASE(_name, _fn, _ref_name, _ref, ...)                               \
	{ .name = _name, .fn = _fn, .ref_name = _ref_name, .ref = _ref,       \
	  __VA_ARGS__ }

static const struct sync_case cases[] = {
	CASE("mutex lock+unlock", loop_mutex, "pthread_mutex", ref_pmutex,
	     .iters = 1000000, .iters_mt = 500000, .iters_crowd = 50000),
	CASE("spin_lock+unlock", loop_spin, "pthread_spin", ref_pspin,
	     .iters = 1000000, .iters_mt = 500000, .iters_crowd = 50000),
	CASE("raw_spin_lock+unlock", loop_raw_spin, "pthread_spin", ref_pspin,
	     .iters = 1000000, .iters_mt = 500000, .iters_crowd = 50000),
	CASE("read_lock+unlock", loop_read_lock, "pthread_rwlock rd",
	     ref_prw_rd, .iters = 1000000, .iters_mt = 500000),
	CASE("write_lock+unlock", loop_write_lock, "pthread_rwlock wr",
	     ref_prw_wr, .iters = 1000000, .iters_mt = 200000),
	CASE("down_read+up_read", loop_down_read, "pthread_rwlock rd",
	     ref_prw_rd, .iters = 1000000, .iters_mt = 200000),
	CASE("down_write+up_write", loop_down_write, "pthread_rwlock wr",
	     ref_prw_wr, .iters = 1000000, .iters_mt = 100000),
	CASE("srcu_read_lock+unlock", loop_srcu_read, "urcu_memb read",
	     ref_urcu_read, .iters = 2000000, .iters_mt = 1000000),
	CASE("synchronize_srcu_expedited", loop_srcu_sync_exp,
	     "urcu_memb synchronize", ref_urcu_sync, .iters = 20000),
	CASE("synchronize_srcu", loop_srcu_sync, "urcu_memb synchronize",
	     ref_urcu_sync, .iters = 20000),
	CASE("ukvm_rcu_read_lock+unlock", loop_rcu_read, "urcu_memb read",
	     ref_urcu_read, .iters = 2000000, .iters_mt = 1000000),
	CASE("ukvm_synchronize_rcu", loop_rcu_sync, "urcu_memb synchronize",
	     ref_urcu_sync, .iters = 5000),
};

#define NR_CASES (sizeof(cases) / sizeof(cases[0]))

/* The benchmark's own locks are not part of the documented design. */
static DEFINE_LOCKDEP_LOCAL_KEY(bench_mutex_key, "bench.mutex", LD_TYPE_MUTEX);
static DEFINE_LOCKDEP_LOCAL_KEY(bench_spin_key, "bench.spin", LD_TYPE_SPINLOCK);
static DEFINE_LOCKDEP_LOCAL_KEY(bench_raw_key, "bench.raw", LD_TYPE_RAW_SPINLOCK);
static DEFINE_LOCKDEP_LOCAL_KEY(bench_rw_key, "bench.rw", LD_TYPE_RWLOCK);
static DEFINE_LOCKDEP_LOCAL_KEY(bench_sem_key, "bench.sem", LD_TYPE_RWSEM);
static DEFINE_LOCKDEP_LOCAL_KEY(bench_srcu_key, "bench.srcu", LD_TYPE_SRCU);

static void objs_init(struct sync_objs *o)
{
	__mutex_init(&o->mutex, "bench.mutex", &bench_mutex_key);
	__spin_lock_init(&o->spin, "bench.spin", &bench_spin_key);
	__raw_spin_lock_init(&o->raw, "bench.raw", &bench_raw_key);
	__rwlock_init(&o->rw, "bench.rw", &bench_rw_key);
	__init_rwsem(&o->sem, "bench.sem", &bench_sem_key);
	__init_srcu_struct(&o->srcu, "bench.srcu", &bench_srcu_key);
	pthread_mutex_init(&o->pmutex, NULL);
	pthread_spin_init(&o->pspin, PTHREAD_PROCESS_PRIVATE);
	pthread_rwlock_init(&o->prw, NULL);
}

static void objs_destroy(struct sync_objs *o)
{
	mutex_destroy(&o->mutex);
	rwlock_destroy(&o->rw);
	cleanup_srcu_struct(&o->srcu);
	pthread_mutex_destroy(&o->pmutex);
	pthread_spin_destroy(&o->pspin);
	pthread_rwlock_destroy(&o->prw);
}

/* ---- measurement and printing ------------------------------------------ */

struct sync_result {
	double off, on, ref;	/* ns per operation (per thread) */
};

static struct sync_result measure(const struct bench_opts *opts,
				  const struct sync_case *c, int threads)
{
	uint64_t n = bench_iters(opts, threads > 2 ? c->iters_crowd :
				       threads > 1 ? c->iters_mt : c->iters);
	struct sync_result r = { .on = NAN };

	r.ref = bench_ns_per_op(opts, c->ref, &objs, n, threads);
	lockdep_set_enabled(false);
	r.off = bench_ns_per_op(opts, c->fn, &objs, n, threads);
	if (UKVM_LOCKDEP) {
		lockdep_set_enabled(true);
		r.on = bench_ns_per_op(opts, c->fn, &objs, n, threads);
	}
	return r;
}

static void print_ns(double v)
{
	if (isnan(v))
		printf(" %9s", "-");
	else
		printf(" %9.1f", v);
}

static void print_ratio(double v)
{
	if (isnan(v))
		printf(" %7s", "-");
	else
		printf(" %7.2f", v);
}

static void print_row(const struct sync_case *c, int threads,
		      const struct sync_result *r)
{
	printf("%-28s %3d", c->name, threads);
	print_ns(r->off);
	print_ns(r->on);
	printf("  %-22s", c->ref_name);
	print_ns(r->ref);
	print_ratio(r->off / r->ref);
	print_ratio(r->on / r->ref);
	putchar('\n');
	fflush(stdout);
}

static void record_row(struct bench_report *rep, const struct sync_case *c,
		       int threads, const struct sync_result *r)
{
	const struct bench_metric m[] = {
		{ "off_ns", r->off },
		{ "on_ns", r->on },
		{ "ref_ns", r->ref },
		{ "off_ratio", r->off / r->ref },
		{ "on_ratio", r->on / r->ref },
	};

	bench_record(rep, c->name, threads, c->ref_name, m,
		     (int)(sizeof(m) / sizeof(m[0])));
}

static void print_target(const struct bench_report *rep)
{
	const struct bench_target_row *t = &rep->targets[rep->nr_targets - 1];

	printf("  %-52s %9.1f %-2s  <= %6.0f %-2s  %s\n", t->name, t->value,
	       t->unit, t->limit, t->unit, t->met ? "met" : "NOT MET");
}

static void targets(struct bench_report *rep,
		    const struct sync_result res[NR_CASES])
{
	const struct sync_result *mutex = NULL, *srcu_read = NULL,
				 *srcu_exp = NULL;

	for (size_t i = 0; i < NR_CASES; i++) {
		if (cases[i].fn == loop_mutex)
			mutex = &res[i];
		else if (cases[i].fn == loop_srcu_read)
			srcu_read = &res[i];
		else if (cases[i].fn == loop_srcu_sync_exp)
			srcu_exp = &res[i];
	}
	printf("\ntargets (1 thread):\n");
	bench_target(rep, "srcu_read_lock+unlock, validator off",
		     srcu_read->off, SRCU_READ_TARGET_NS, "ns");
	print_target(rep);
	bench_target(rep, "synchronize_srcu_expedited, no readers, validator off",
		     srcu_exp->off, SRCU_EXP_TARGET_NS, "ns");
	print_target(rep);
	if (UKVM_LOCKDEP) {
		bench_target(rep, "validator cache hit per acquire (mutex on - off)",
			     mutex->on - mutex->off, LOCKDEP_HIT_TARGET_NS, "ns");
		print_target(rep);
	} else {
		printf("  %-52s (validator compiled out)\n",
		       "validator cache hit per acquire (mutex on - off)");
	}
}

int bench_sync(const struct bench_opts *opts, struct bench_report *rep)
{
	struct sync_result res[NR_CASES];
	bool was_enabled = lockdep_enabled();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	ukvm_thread_register_current("bench-sync");
	/* The bench's lock classes are not part of the documented order. */
	lockdep_order_set_enabled(false);
	objs_init(&objs);

	snprintf(rep->note, sizeof(rep->note),
		 "validator %s; %ld CPUs; median of %d runs%s",
		 UKVM_LOCKDEP ? "compiled in" : "compiled out", ncpu, opts->runs,
		 opts->scale < 1 ? "; --quick" : "");
	printf("ukvm bench sync: ns per operation (per thread), %s\n", rep->note);
	printf("off/on: validator switched off/on at run time; ratios are ukvm/reference\n\n");
	printf("%-28s %3s %9s %9s  %-22s %9s %7s %7s\n", "operation", "thr",
	       "off", "on", "reference", "ref", "off/ref", "on/ref");

	for (size_t i = 0; i < NR_CASES; i++) {
		res[i] = measure(opts, &cases[i], 1);
		print_row(&cases[i], 1, &res[i]);
		record_row(rep, &cases[i], 1, &res[i]);
	}
	printf("\ntwo threads, one shared object:\n");
	for (size_t i = 0; i < NR_CASES; i++) {
		struct sync_result r;

		if (!cases[i].iters_mt)
			continue;
		r = measure(opts, &cases[i], 2);
		print_row(&cases[i], 2, &r);
		record_row(rep, &cases[i], 2, &r);
	}
	printf("\n%d threads on %ld CPUs, one shared object (ns per op per thread):\n",
	       NR_CROWD, ncpu);
	for (size_t i = 0; i < NR_CASES; i++) {
		struct sync_result r;

		if (!cases[i].iters_crowd)
			continue;
		r = measure(opts, &cases[i], NR_CROWD);
		print_row(&cases[i], NR_CROWD, &r);
		record_row(rep, &cases[i], NR_CROWD, &r);
	}
	targets(rep, res);

	lockdep_set_enabled(was_enabled);
	objs_destroy(&objs);
	ukvm_thread_unregister_current();
	return 0;
}
