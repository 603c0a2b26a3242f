// SPDX-License-Identifier: MIT
/*
 * `ukvm bench race-points`: what a RACE_POINT() costs the code it sits in.
 *
 * A loop that passes POINTS race points per iteration against the same loop
 * without them (a compiler barrier per iteration in both, so neither is
 * optimised away): the difference, divided by POINTS, is the cost of one
 * point.  Not armed (every run of ukvm but `ukvm race`) a point is one
 * relaxed load and a branch predicted not taken; armed, it also calls the
 * scenario's handler (here one that returns at once).  With
 * -Drace_points=false the points compile to nothing and both loops are the
 * same code.
 */
#include <stdio.h>

#include "bench/bench.h"
#include "config.h"
#include "sync/race.h"

#define POINTS			16
#define ITERS			(20ULL * 1000 * 1000)
/* Not armed, a point must stay far below a nanosecond. */
#define POINT_TARGET_NS		1.0

#define POINTS_4	RACE_POINT(GUEST_WRITE_DONE); RACE_POINT(GUEST_WRITE_DONE); \
			RACE_POINT(GUEST_WRITE_DONE); RACE_POINT(GUEST_WRITE_DONE)

static void loop_points(void *arg, int id, uint64_t n)
{
	(void)arg;
	(void)id;
	for (uint64_t i = 0; i < n; i++) {
		POINTS_4;
		POINTS_4;
		POINTS_4;
		POINTS_4;
		__asm__ __volatile__("" ::: "memory");
	}
}

static void loop_plain(void *arg, int id, uint64_t n)
{
	(void)arg;
	(void)id;
	for (uint64_t i = 0; i < n; i++)
		__asm__ __volatile__("" ::: "memory");
}

static void handler_returns(enum ukvm_race_point rp, void *arg)
{
	(void)rp;
	(void)arg;
}

static void row(struct bench_report *rep, const char *name, double loop_ns,
		double ref_ns)
{
	const struct bench_metric m[] = {
		{ "ns_per_iter", loop_ns },
		{ "ref_ns_per_iter", ref_ns },
		{ "ns_per_point", (loop_ns - ref_ns) / POINTS },
	};

	printf("%-40s %10.2f %10.2f %12.3f\n", name, loop_ns, ref_ns,
	       (loop_ns - ref_ns) / POINTS);
	bench_record(rep, name, 1, "same loop, no race point", m, 3);
}

int bench_race_points(const struct bench_opts *opts, struct bench_report *rep)
{
	uint64_t iters = bench_iters(opts, ITERS);
	double plain, idle, armed;

	snprintf(rep->note, sizeof(rep->note),
		 "race points %s; %d points per iteration; median of %d runs%s",
		 UKVM_RACE_POINTS ? "compiled in" : "compiled out (-Drace_points=false)",
		 POINTS, opts->runs, opts->scale < 1 ? "; --quick" : "");
	printf("ukvm bench race-points: %s\n\n", rep->note);
	printf("%-40s %10s %10s %12s\n", "loop", "ns/iter", "ref ns", "ns/point");

	plain = bench_ns_per_op(opts, loop_plain, NULL, iters, 1);
	idle = bench_ns_per_op(opts, loop_points, NULL, iters, 1);
	row(rep, "race points, not armed", idle, plain);

	if (UKVM_RACE_POINTS) {
		ukvm_race_arm(handler_returns, NULL);
		armed = bench_ns_per_op(opts, loop_points, NULL, iters / 10, 1);
		ukvm_race_disarm();
		row(rep, "race points, armed (handler returns)", armed, plain);
	}

	printf("\ntargets:\n");
	bench_target(rep, "one race point, not armed", (idle - plain) / POINTS,
		     POINT_TARGET_NS, "ns");
	printf("  %-40s %9.3f ns  <= %4.1f ns  %s\n", "one race point, not armed",
	       (idle - plain) / POINTS, POINT_TARGET_NS,
	       rep->targets[rep->nr_targets - 1].met ? "met" : "NOT MET");
	return 0;
}
