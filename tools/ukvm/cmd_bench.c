// SPDX-License-Identifier: MIT
/*
 * `ukvm bench NAME`: benchmarks, each printing its numbers next to a
 * reference measured in the same run.  A benchmark is one entry of the
 * table below and one function (bench/bench.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "machine.h"
#include "ukvm_cmd.h"

struct bench_entry {
	const char *name;
	int (*run)(const struct bench_opts *opts, struct bench_report *rep);
	const char *summary;
};

static const struct bench_entry benches[] = {
	{ "sync", bench_sync,
	  "locks, SRCU and RCU vs pthread and liburcu, validator on and off" },
	{ "fault", bench_fault,
	  "demand fault-in, fast-path re-dirty, 4K invalidation vs kernel and KVM" },
	{ "memslot", bench_memslot,
	  "memslot ioctl latency, 1..32000 slots, idle/with vCPUs; map/unmap; vs KVM" },
	{ "demand-paging", bench_demand,
	  "demand_paging_test: pages/s for 1..N vCPUs vs kernel fault and KVM" },
	{ "dirty-log", bench_dirty,
	  "dirty_log_perf_test: populate, re-dirty, get/clear log, with/without manual protect" },
	{ "baseline", bench_baseline,
	  "demand paging and dirty log: mmu_lock read mode vs big lock" },
	{ "access-tracking", bench_aging,
	  "access_tracking_perf_test: aging pass and idle-memory access, A/D on/off" },
	{ "validator", bench_validator,
	  "ukvm run's accesses/s: validator compiled out, off, on (child processes)" },
	{ "race-points", bench_race_points,
	  "what a RACE_POINT() costs, not armed and armed (ns per point)" },
};

#define NR_BENCHES (sizeof(benches) / sizeof(benches[0]))

static void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: ukvm bench NAME [OPTIONS]\n"
		"\n"
		"Run a benchmark: ns per operation (median of several runs), each next\n"
		"to a reference measured in the same run, and the targets it must meet.\n"
		"\n"
		"  --json FILE   also write the numbers as JSON to FILE ('-': stdout)\n"
		"  --runs N      median of N timed runs (default 7, at most %d)\n"
		"  --quick       a tenth of the iterations (a smoke run, noisy numbers)\n"
		"  --vcpus N     most vCPUs (demand-paging: 1, 2, 4 .. N; default 8)\n"
		"  --mem-per-vcpu SIZE  guest memory per vCPU (e.g. 256M; default 128M)\n"
		"  --release-binary PATH  validator: the release build's ukvm\n"
		"  --plot DIR    run the benchmarks the plots need, write PNGs to DIR\n"
		"                (ukvm bench --plot DIR; needs gnuplot)\n"
		"  -h, --help    this text\n"
		"\n"
		"benchmarks:\n", BENCH_MAX_RUNS);
	for (size_t i = 0; i < NR_BENCHES; i++)
		fprintf(f, "  %-16s %s\n", benches[i].name, benches[i].summary);
}

static int write_json(const struct bench_report *rep, const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;

	if (!f) {
		perror(path);
		return 1;
	}
	bench_report_write_json(rep, f);
	if (f != stdout && fclose(f)) {
		perror(path);
		return 1;
	}
	return 0;
}

int cmd_bench(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", required_argument, NULL, 'j' },
		{ "runs", required_argument, NULL, 'r' },
		{ "quick", no_argument, NULL, 'q' },
		{ "vcpus", required_argument, NULL, 'v' },
		{ "mem-per-vcpu", required_argument, NULL, 'm' },
		{ "release-binary", required_argument, NULL, 'b' },
		{ "plot", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_opts opts = { .runs = 7, .scale = 1.0 };
	struct bench_report rep = { 0 };
	const struct bench_entry *b = NULL;
	const char *json = NULL;
	char *end;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = optarg;
			break;
		case 'r':
			opts.runs = (int)strtol(optarg, &end, 10);
			if (*end || opts.runs < 1 || opts.runs > BENCH_MAX_RUNS) {
				fprintf(stderr, "ukvm bench: bad --runs '%s'\n", optarg);
				return UKVM_EXIT_USAGE;
			}
			break;
		case 'q':
			opts.scale = 0.1;
			break;
		case 'v':
			opts.vcpus = (int)strtol(optarg, &end, 10);
			if (*end || opts.vcpus < 1 || opts.vcpus > 32) {
				fprintf(stderr, "ukvm bench: bad --vcpus '%s' (1..32)\n", optarg);
				return UKVM_EXIT_USAGE;
			}
			break;
		case 'm': {
			size_t sz;

			if (!parse_size(optarg, &sz) || sz < 4096) {
				fprintf(stderr, "ukvm bench: bad --mem-per-vcpu '%s'\n", optarg);
				return UKVM_EXIT_USAGE;
			}
			opts.mem_per_vcpu = sz;
			break;
		}
		case 'b':
			opts.ukvm_release = optarg;
			break;
		case 'p':
			opts.plot_dir = optarg;
			break;
		case 'h':
			bench_usage(stdout);
			return 0;
		default:
			bench_usage(stderr);
			return UKVM_EXIT_USAGE;
		}
	}
	if (opts.plot_dir && optind == argc)
		return bench_plot(&opts);
	if (optind != argc - 1) {
		bench_usage(stderr);
		return UKVM_EXIT_USAGE;
	}
	for (size_t i = 0; i < NR_BENCHES; i++)
		if (!strcmp(argv[optind], benches[i].name))
			b = &benches[i];
	if (!b) {
		fprintf(stderr, "ukvm bench: unknown benchmark '%s'\n\n",
			argv[optind]);
		bench_usage(stderr);
		return UKVM_EXIT_USAGE;
	}
	rep.bench = b->name;
	r = b->run(&opts, &rep);
	if (!r && json)
		r = write_json(&rep, json);
	bench_report_free(&rep);
	return r;
}
