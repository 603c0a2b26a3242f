// SPDX-License-Identifier: MIT
/*
 * `ukvm bench baseline` (issue 7): what mmu_lock in read mode buys.  The
 * same demand-paging and dirty-log runs on two VMs that differ in one
 * setting: the TDP MMU design (faults install SPTEs under mmu_lock held for
 * read, by cmpxchg) and the big-lock design (VM config .big_mmu_lock: every
 * slow-path fault takes mmu_lock for write, as the legacy MMU did).  At 1
 * vCPU (no contention: the cost of the lock mode itself), 2 vCPUs (one per
 * CPU here) and 8 vCPUs (oversubscribed: lock holders get preempted).
 *
 * The dirty-log run uses GET_DIRTY_LOG without manual protect; its re-dirty
 * iterations are fast page faults, which take no mmu_lock in either design,
 * so only its populate and GET phases can differ.
 */
#include <stdlib.h>

#include "bench/bench_vm.h"

#define BASELINE_MEM	(64ULL << 20)
#define BASELINE_ITERS	2

static const int baseline_vcpus[] = { 1, 2, 8 };
#define NR_B ((int)(sizeof(baseline_vcpus) / sizeof(baseline_vcpus[0])))

int bench_baseline(const struct bench_opts *opts, struct bench_report *rep)
{
	const uint64_t pages = bench_pages_per_vcpu(opts, BASELINE_MEM);
	const struct ukvm_vm_config rd = { .big_mmu_lock = false };
	const struct ukvm_vm_config big = { .big_mmu_lock = true };

	if (bvm_machine_start(pages * 8 * 4096, 8)) {
		fprintf(stderr, "bench baseline: cannot start the machine\n");
		return 1;
	}
	bench_note(rep, opts);
	printf("ukvm bench baseline: mmu_lock read mode (TDP MMU) vs write mode on "
	       "every fault (big lock); %llu MiB per vCPU; %s\n\n",
	       (unsigned long long)(pages >> 8), rep->note);

	printf("demand paging (pages/s, all vCPUs)\n");
	printf("%5s %14s %14s %10s %12s %12s\n", "vCPUs", "read lock",
	       "big lock", "read/big", "read s", "big s");
	for (int i = 0; i < NR_B; i++) {
		int n = baseline_vcpus[i];
		struct demand_res a, b;

		demand_measure(opts, n, pages, &rd, &a);
		demand_measure(opts, n, pages, &big, &b);
		printf("%5d %14.0f %14.0f %10.2f %12.6f %12.6f\n", n, a.rate_total,
		       b.rate_total, a.rate_total / b.rate_total, a.wall_s, b.wall_s);
		fflush(stdout);
		{
			const struct bench_metric ma[] = {
				{ "vcpus", n }, { "rate_total", a.rate_total },
				{ "rate_vcpu", a.rate_vcpu }, { "wall_s", a.wall_s },
				{ "ratio", a.rate_total / b.rate_total },
			};
			const struct bench_metric mb[] = {
				{ "vcpus", n }, { "rate_total", b.rate_total },
				{ "rate_vcpu", b.rate_vcpu }, { "wall_s", b.wall_s },
			};

			bench_record(rep, "demand paging, read lock", n,
				     "demand paging, big lock", ma, 5);
			bench_record(rep, "demand paging, big lock", n, "", mb, 4);
		}
	}

	printf("\ndirty log, GET write-protects (seconds)\n");
	printf("%5s %-10s %12s %12s %12s %12s\n", "vCPUs", "design",
	       "populate", "re-dirty", "get log", "disable");
	for (int i = 1; i < NR_B; i++) {
		int n = baseline_vcpus[i];

		for (int k = 0; k < 2; k++) {
			struct dirty_res d;
			const struct bench_metric m[] = {
				{ "vcpus", n }, { "populate_s", 0 }, { "redirty_s", 0 },
				{ "get_s", 0 }, { "disable_s", 0 },
			};
			struct bench_metric mm[5];

			dirty_measure(opts, n, pages, BASELINE_ITERS, false,
				      k ? &big : &rd, &d);
			printf("%5d %-10s %12.6f %12.6f %12.6f %12.6f\n", n,
			       k ? "big lock" : "read lock", d.populate_s,
			       d.dirty_s[BASELINE_ITERS - 1],
			       d.get_total_s / BASELINE_ITERS, d.disable_s);
			fflush(stdout);
			for (int j = 0; j < 5; j++)
				mm[j] = m[j];
			mm[1].value = d.populate_s;
			mm[2].value = d.dirty_s[BASELINE_ITERS - 1];
			mm[3].value = d.get_total_s / BASELINE_ITERS;
			mm[4].value = d.disable_s;
			bench_record(rep, k ? "dirty log, big lock" :
				     "dirty log, read lock", n, "", mm, 5);
		}
	}
	bvm_machine_stop();
	return 0;
}
