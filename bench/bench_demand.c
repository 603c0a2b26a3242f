// SPDX-License-Identifier: MIT
/*
 * `ukvm bench demand-paging` (issue 7; demand_paging_test without -u): each
 * vCPU writes one word to every 4 KiB page of its own region once, nothing
 * mapped yet on either side, for 1, 2, 4 .. --vcpus vCPUs (8 by default: 4x
 * oversubscribed on this 2-CPU machine), --mem-per-vcpu each (128 MiB).
 *
 * Prints the selftest's lines (Total guest execution time, Overall and
 * Per-vcpu demand paging rate), then a table next to the kernel's own
 * anonymous fault with as many threads (the same pages) and the real KVM
 * running a tiny guest that writes the same pages (one vCPU: realkvm's
 * guest is vCPU 0 of its VM).
 */
#include <math.h>
#include <stdlib.h>

#include "bench/bench_vm.h"

#define DEMAND_DEFAULT_MEM	(128ULL << 20)
#define DEMAND_DEFAULT_VCPUS	8
#define DEMAND_KVMREF_PAGES	16384

uint64_t bench_pages_per_vcpu(const struct bench_opts *opts, uint64_t dflt_bytes)
{
	uint64_t bytes = opts->mem_per_vcpu ? opts->mem_per_vcpu :
			 (uint64_t)((double)dflt_bytes * opts->scale);

	return bytes >> 12 ? bytes >> 12 : 1;
}

void demand_measure(const struct bench_opts *opts, int nr_vcpus,
		    uint64_t pages, const struct ukvm_vm_config *vmc,
		    struct demand_res *res)
{
	const struct bvm_phase wr = { .type = UKVM_ACCESS_WRITE, .passes = 1,
				      .only_vcpu = -1 };
	struct bvm_config cfg = { .nr_vcpus = nr_vcpus, .pages_per_vcpu = pages };
	double w[BENCH_MAX_RUNS], t[BENCH_MAX_RUNS], v[BENCH_MAX_RUNS];
	struct bvm vm;

	if (vmc)
		cfg.vm = *vmc;
	for (int r = 0; r < opts->runs; r++) {
		uint64_t wall;
		double sum = 0;

		if (bvm_create(&vm, &cfg))
			exit(1);
		wall = bvm_run(&vm, &wr);
		for (int i = 0; i < nr_vcpus; i++)
			sum += (double)pages * 1e9 / (double)vm.vcpu[i].ns;
		w[r] = (double)wall / 1e9;
		t[r] = (double)(pages * (uint64_t)nr_vcpus) / w[r];
		v[r] = sum / nr_vcpus;
		bvm_destroy(&vm);
	}
	res->wall_s = bench_median(w, opts->runs);
	res->rate_total = bench_median(t, opts->runs);
	res->rate_vcpu = bench_median(v, opts->runs);
}

int bench_demand(const struct bench_opts *opts, struct bench_report *rep)
{
	const int max_vcpus = opts->vcpus ? opts->vcpus : DEMAND_DEFAULT_VCPUS;
	const uint64_t pages = bench_pages_per_vcpu(opts, DEMAND_DEFAULT_MEM);
	struct demand_res res[BVM_MAX_VCPUS + 1];
	int counts[BVM_MAX_VCPUS], nr = 0;
	struct kvmref_touch kr;
	char why[160];
	bool have_kr;

	for (int n = 1; n < max_vcpus; n *= 2)
		counts[nr++] = n;
	counts[nr++] = max_vcpus;
	if (bvm_machine_start(pages * (uint64_t)max_vcpus * 4096, max_vcpus)) {
		fprintf(stderr, "bench demand-paging: cannot start the machine\n");
		return 1;
	}
	bench_note(rep, opts);
	printf("ukvm bench demand-paging: %llu MiB (%llu pages) per vCPU, disjoint, "
	       "write, no uffd; %s\n\n", (unsigned long long)(pages >> 8),
	       (unsigned long long)pages, rep->note);

	for (int i = 0; i < nr; i++) {
		int n = counts[i];

		demand_measure(opts, n, pages, NULL, &res[i]);
		printf("[%d vCPU%s] Total guest execution time: %.9fs\n", n,
		       n > 1 ? "s" : "", res[i].wall_s);
		printf("[%d vCPU%s] Overall demand paging rate: %.1f pgs/sec\n", n,
		       n > 1 ? "s" : "", res[i].rate_total);
		printf("[%d vCPU%s] Per-vcpu demand paging rate: %.1f pgs/sec/vcpu\n",
		       n, n > 1 ? "s" : "", res[i].rate_vcpu);
		fflush(stdout);
	}
	have_kr = kvmref_touch(opts, pages < DEMAND_KVMREF_PAGES ? pages :
			       DEMAND_KVMREF_PAGES, &kr, why, sizeof(why));

	printf("\n%5s %14s %14s %8s %16s %16s %8s\n", "vCPUs", "ukvm pg/s/vcpu",
	       "ukvm pg/s", "scaling", "kernel pg/s/thr", "kernel pg/s",
	       "ukvm/ker");
	for (int i = 0; i < nr; i++) {
		int n = counts[i];
		double nat = native_fault_rate(opts, n, pages);
		const struct bench_metric m[] = {
			{ "vcpus", n }, { "pages_per_vcpu", (double)pages },
			{ "wall_s", res[i].wall_s },
			{ "rate_vcpu", res[i].rate_vcpu },
			{ "rate_total", res[i].rate_total },
			{ "scaling", res[i].rate_total / res[0].rate_total },
			{ "ref_rate_thread", nat },
			{ "ratio", res[i].rate_total / (nat * n) },
		};

		printf("%5d %14.0f %14.0f %8.2f %16.0f %16.0f %8.2f\n", n,
		       res[i].rate_vcpu, res[i].rate_total,
		       res[i].rate_total / res[0].rate_total, nat, nat * n,
		       res[i].rate_total / (nat * n));
		bench_record(rep, "demand paging", n, "kernel anon fault", m, 8);
	}
	printf("\nreal KVM, 1 vCPU (tiny guest, same writes): ");
	if (have_kr) {
		const struct bench_metric m[] = {
			{ "vcpus", 1 }, { "rate_vcpu", 1e9 / kr.fault_ns },
			{ "ukvm_rate_vcpu", res[0].rate_vcpu },
			{ "ratio", res[0].rate_vcpu / (1e9 / kr.fault_ns) },
		};

		printf("%.0f pgs/sec (%.2f us/page); ukvm is %.1fx faster\n",
		       1e9 / kr.fault_ns, kr.fault_ns / 1000,
		       res[0].rate_vcpu / (1e9 / kr.fault_ns));
		bench_record(rep, "real KVM demand paging", 1, "", m, 4);
	} else {
		printf("n/a (%s)\n", why);
	}

	printf("\ntargets:\n");
	if (nr > 1)
		bprint_target_min(rep, "scaling 1 -> 2 vCPUs (total pages/s)",
				  res[1].rate_total / res[0].rate_total, 1.9, "x");
	bprint_target(rep, "fault-in per page per vCPU (1 vCPU)",
		      1e6 / res[0].rate_vcpu, 0.5, "us");
	bvm_machine_stop();
	return 0;
}
