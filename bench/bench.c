// SPDX-License-Identifier: MIT
/* Helpers shared by the benchmarks of `ukvm bench` (see bench.h). */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "machine.h"
#include "sync/thread.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
	if (n <= 0)
		return NAN;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n & 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

uint64_t bench_iters(const struct bench_opts *opts, uint64_t iters)
{
	double n = (double)iters * opts->scale;

	return n < 1 ? 1 : (uint64_t)n;
}

/* ---- several threads --------------------------------------------------- */

/*
 * The workers time themselves: the test thread only creates and joins them,
 * so that it does not compete for a CPU (this machine may have as few CPUs
 * as there are workers).  Each run starts and ends at a barrier; worker 0
 * reads the clock after both.
 */
struct bench_mt {
	bench_loop_fn fn;
	void *arg;
	uint64_t iters;
	int runs;			/* including the warm-up run */
	pthread_barrier_t barrier;
	double v[BENCH_MAX_RUNS + 1];	/* ns per op of each run (worker 0) */
};

struct bench_worker {
	struct bench_mt *mt;
	int id;
};

void bench_pin(int id)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	if (ncpu < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(id % ncpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *bench_worker_fn(void *p)
{
	struct bench_worker *w = p;
	struct bench_mt *mt = w->mt;

	bench_pin(w->id);
	for (int run = 0; run < mt->runs; run++) {
		uint64_t t0;

		pthread_barrier_wait(&mt->barrier);
		t0 = bench_now_ns();
		mt->fn(mt->arg, w->id, mt->iters);
		pthread_barrier_wait(&mt->barrier);
		if (w->id == 0)
			mt->v[run] = (double)(bench_now_ns() - t0) /
				     (double)mt->iters;
	}
	return NULL;
}

static double bench_mt_ns_per_op(const struct bench_opts *opts,
				 bench_loop_fn fn, void *arg, uint64_t iters,
				 int threads)
{
	struct bench_mt mt = { .fn = fn, .arg = arg, .iters = iters,
			       .runs = opts->runs + 1 };
	struct bench_worker w[BENCH_MAX_THREADS];
	pthread_t tid[BENCH_MAX_THREADS];

	if (threads > BENCH_MAX_THREADS)
		threads = BENCH_MAX_THREADS;
	pthread_barrier_init(&mt.barrier, NULL, (unsigned int)threads);
	for (int i = 0; i < threads; i++) {
		w[i] = (struct bench_worker){ .mt = &mt, .id = i };
		if (ukvm_thread_create(&tid[i], "bench", bench_worker_fn, &w[i])) {
			fprintf(stderr, "bench: cannot create threads\n");
			exit(1);
		}
	}
	for (int i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&mt.barrier);
	/* Run 0 was the warm-up. */
	return bench_median(mt.v + 1, mt.runs - 1);
}

double bench_ns_per_op(const struct bench_opts *opts, bench_loop_fn fn,
		       void *arg, uint64_t iters, int threads)
{
	double v[BENCH_MAX_RUNS];

	if (threads > 1)
		return bench_mt_ns_per_op(opts, fn, arg, iters, threads);
	fn(arg, 0, iters / 4 + 1);	/* warm-up: caches, chain cache */
	for (int run = 0; run < opts->runs; run++) {
		uint64_t t0 = bench_now_ns();

		fn(arg, 0, iters);
		v[run] = (double)(bench_now_ns() - t0) / (double)iters;
	}
	return bench_median(v, opts->runs);
}

/* ---- the report -------------------------------------------------------- */

void bench_record(struct bench_report *rep, const char *name, int threads,
		  const char *ref_name, const struct bench_metric *m, int n)
{
	struct bench_row *r;

	rep->rows = realloc(rep->rows, sizeof(*r) * (size_t)(rep->nr_rows + 1));
	if (!rep->rows) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	r = &rep->rows[rep->nr_rows++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->ref_name, sizeof(r->ref_name), "%s", ref_name ? ref_name : "");
	r->threads = threads;
	r->nr_metrics = n < BENCH_MAX_METRICS ? n : BENCH_MAX_METRICS;
	memcpy(r->metric, m, sizeof(*m) * (size_t)r->nr_metrics);
}

void bench_target(struct bench_report *rep, const char *name, double value,
		  double limit, const char *unit)
{
	struct bench_target_row *t;

	rep->targets = realloc(rep->targets,
			       sizeof(*t) * (size_t)(rep->nr_targets + 1));
	if (!rep->targets) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	t = &rep->targets[rep->nr_targets++];
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->value = value;
	t->limit = limit;
	t->unit = unit;
	t->met = !isnan(value) && value <= limit;
}

/* JSON has no NaN: not-measured values are null. */
static void json_number(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else
		fprintf(f, "%.4g", v);
}

void bench_report_write_json(const struct bench_report *rep, FILE *f)
{
	fputs("{\n  \"bench\": ", f);
	json_string(f, rep->bench);
	fputs(",\n  \"note\": ", f);
	json_string(f, rep->note);
	fputs(",\n  \"results\": [", f);
	for (int i = 0; i < rep->nr_rows; i++) {
		const struct bench_row *r = &rep->rows[i];

		fputs(i ? ",\n    {" : "\n    {", f);
		fputs("\"name\": ", f);
		json_string(f, r->name);
		fprintf(f, ", \"threads\": %d, \"ref\": ", r->threads);
		json_string(f, r->ref_name);
		for (int j = 0; j < r->nr_metrics; j++) {
			fputs(", ", f);
			json_string(f, r->metric[j].key);
			fputs(": ", f);
			json_number(f, r->metric[j].value);
		}
		fputc('}', f);
	}
	fputs("\n  ],\n  \"targets\": [", f);
	for (int i = 0; i < rep->nr_targets; i++) {
		const struct bench_target_row *t = &rep->targets[i];

		fputs(i ? ",\n    {" : "\n    {", f);
		fputs("\"name\": ", f);
		json_string(f, t->name);
		fputs(", \"value\": ", f);
		json_number(f, t->value);
		fputs(", \"limit\": ", f);
		json_number(f, t->limit);
		fputs(", \"unit\": ", f);
		json_string(f, t->unit);
		fprintf(f, ", \"met\": %s}", t->met ? "true" : "false");
	}
	fputs("\n  ]\n}\n", f);
}

void bench_report_free(struct bench_report *rep)
{
	free(rep->rows);
	free(rep->targets);
	rep->rows = NULL;
	rep->targets = NULL;
	rep->nr_rows = rep->nr_targets = 0;
}
