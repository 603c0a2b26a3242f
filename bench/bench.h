/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of `ukvm bench NAME`: timing (CLOCK_MONOTONIC), median of
 * several runs, one- and multi-thread measurement of an operation loop, and
 * a report that the command prints as JSON with --json FILE.
 *
 * A benchmark is one function in the table of tools/ukvm/cmd_bench.c:
 *
 *	int bench_foo(const struct bench_opts *opts, struct bench_report *rep);
 *
 * It prints its own table on stdout (aligned, one metric per column, each
 * next to the reference measured in the same run) and records the same
 * numbers in @rep with bench_record() / bench_target().  Benchmarks never
 * run in the test suite.
 */
#ifndef UKVM_BENCH_BENCH_H
#define UKVM_BENCH_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define BENCH_MAX_RUNS		99
#define BENCH_MAX_THREADS	64

struct bench_opts {
	int runs;		/* median of this many timed runs, <= BENCH_MAX_RUNS */
	double scale;		/* iteration multiplier (--quick: 0.1) */
	int vcpus;		/* --vcpus: most vCPUs (0: the bench's default) */
	uint64_t mem_per_vcpu;	/* --mem-per-vcpu: bytes (0: the default) */
	const char *ukvm_release;	/* --release-binary (bench validator) */
	const char *plot_dir;	/* --plot DIR */
};

/* One named number of a result row: "ns", "ns_ld", "ref_ns", "ratio"... */
struct bench_metric {
	const char *key;
	double value;
};

#define BENCH_MAX_METRICS 8

struct bench_row {
	char name[64];		/* the operation, e.g. "mutex lock+unlock" */
	int threads;
	char ref_name[48];	/* what it is compared with ("" if nothing) */
	int nr_metrics;
	struct bench_metric metric[BENCH_MAX_METRICS];
};

struct bench_target_row {
	char name[96];
	double value, limit;
	const char *unit;
	bool met;
};

struct bench_report {
	const char *bench;	/* the benchmark's name */
	int nr_rows, nr_targets;
	struct bench_row *rows;
	struct bench_target_row *targets;
	char note[256];		/* free text: build flavour etc. */
};

/* Defined by each benchmark, listed in tools/ukvm/cmd_bench.c. */
int bench_sync(const struct bench_opts *opts, struct bench_report *rep);
int bench_race_points(const struct bench_opts *opts, struct bench_report *rep);
int bench_fault(const struct bench_opts *opts, struct bench_report *rep);
int bench_memslot(const struct bench_opts *opts, struct bench_report *rep);
int bench_demand(const struct bench_opts *opts, struct bench_report *rep);
int bench_dirty(const struct bench_opts *opts, struct bench_report *rep);
int bench_aging(const struct bench_opts *opts, struct bench_report *rep);
int bench_baseline(const struct bench_opts *opts, struct bench_report *rep);
int bench_validator(const struct bench_opts *opts, struct bench_report *rep);
/* This binary's path (readlink /proc/self/exe), for child processes. */
const char *bench_self_exe(void);
/* `ukvm bench --plot DIR`: runs benchmarks as children, then gnuplot. */
int bench_plot(const struct bench_opts *opts);

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Pin the calling thread to CPU @id modulo the online CPUs (if several). */
void bench_pin(int id);

/* Median of @n values (sorts @v in place). */
double bench_median(double *v, int n);

/* Scale an iteration count by opts->scale, at least 1. */
uint64_t bench_iters(const struct bench_opts *opts, uint64_t iters);

/*
 * The operation under test: perform it @iters times on @arg.  For several
 * threads, @id is the thread's index (0..threads-1).
 */
typedef void (*bench_loop_fn)(void *arg, int id, uint64_t iters);

/*
 * ns per operation: one untimed warm-up run, then the median of opts->runs
 * timed runs of @iters operations.  With @threads > 1, that many registered
 * threads (pinned to CPUs round-robin) run the loop at once, released by a
 * barrier, and the result is wall time / @iters: ns per operation per
 * thread, as the native anchors of perf-anchors.md define it.
 */
double bench_ns_per_op(const struct bench_opts *opts, bench_loop_fn fn,
		       void *arg, uint64_t iters, int threads);

/* Record a result row / a target (copied; strings may be temporary). */
void bench_record(struct bench_report *rep, const char *name, int threads,
		  const char *ref_name, const struct bench_metric *m, int n);
void bench_target(struct bench_report *rep, const char *name, double value,
		  double limit, const char *unit);

void bench_report_write_json(const struct bench_report *rep, FILE *f);
void bench_report_free(struct bench_report *rep);

#endif /* UKVM_BENCH_BENCH_H */
