// SPDX-License-Identifier: MIT
/*
 * `ukvm bench access-tracking` (issue 7; access_tracking_perf_test): the
 * selftest's phases, with the host's aging pass in place of writing
 * /sys/kernel/mm/page_idle/bitmap: "Mark memory idle" is host_clear_young()
 * over the whole guest memory, i.e. one clear_young notifier call per
 * present host pte, each clearing the Accessed state of the SPTE.
 *
 * With EPT A/D bits (default) aging clears the A bit and the CPU sets it
 * again on its next walk; with A/D disabled (VM config .ad_disabled) aging
 * makes each SPTE access-tracked (not present), so "Writing to idle memory"
 * is one fast page fault per page restoring it.  --vcpus N (default 1),
 * --mem-per-vcpu (default 64 MiB).  Medians over --runs.
 *
 * The real KVM's access_tracking_perf_test needs CONFIG_IDLE_PAGE_TRACKING:
 * it is the reference where /sys/kernel/mm/page_idle/bitmap exists (not on
 * this kernel), printed as n/a otherwise.
 */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench/bench_vm.h"
#include "host/host.h"

#define AGING_DEFAULT_MEM	(64ULL << 20)

enum { P_POP, P_WPOP, P_RPOP, P_IDLE1, P_WIDLE, P_IDLE2, P_RIDLE, NR_P };
static const char *const p_names[NR_P] = {
	"Populating memory", "Writing to populated memory",
	"Reading from populated memory", "Mark memory idle",
	"Writing to idle memory", "Mark memory idle", "Reading from idle memory",
};

struct aging_res {
	double s[NR_P];
	double young[2];	/* pages found young by the two aging passes */
};

static double age(struct bvm *vm, double *young)
{
	uint64_t t0 = bench_now_ns();
	long y = host_clear_young(host_current_mm, vm->hva, vm->size);

	*young = (double)y;
	return (double)(bench_now_ns() - t0) / 1e9;
}

static void aging_once(const struct bvm_config *cfg, struct aging_res *o)
{
	const struct bvm_phase wr = { .type = UKVM_ACCESS_WRITE, .passes = 1,
				      .only_vcpu = -1 };
	const struct bvm_phase rd = { .type = UKVM_ACCESS_READ, .passes = 1,
				      .only_vcpu = -1 };
	struct bvm vm;

	if (bvm_create(&vm, cfg))
		exit(1);
	o->s[P_POP] = (double)bvm_run(&vm, &wr) / 1e9;
	o->s[P_WPOP] = (double)bvm_run(&vm, &wr) / 1e9;
	o->s[P_RPOP] = (double)bvm_run(&vm, &rd) / 1e9;
	o->s[P_IDLE1] = age(&vm, &o->young[0]);
	o->s[P_WIDLE] = (double)bvm_run(&vm, &wr) / 1e9;
	o->s[P_IDLE2] = age(&vm, &o->young[1]);
	o->s[P_RIDLE] = (double)bvm_run(&vm, &rd) / 1e9;
	bvm_destroy(&vm);
}

static void aging_measure(const struct bench_opts *opts,
			  const struct bvm_config *cfg, struct aging_res *res)
{
	double v[NR_P + 2][BENCH_MAX_RUNS];

	for (int r = 0; r < opts->runs; r++) {
		struct aging_res one;

		aging_once(cfg, &one);
		for (int p = 0; p < NR_P; p++)
			v[p][r] = one.s[p];
		v[NR_P][r] = one.young[0];
		v[NR_P + 1][r] = one.young[1];
	}
	for (int p = 0; p < NR_P; p++)
		res->s[p] = bench_median(v[p], opts->runs);
	res->young[0] = bench_median(v[NR_P], opts->runs);
	res->young[1] = bench_median(v[NR_P + 1], opts->runs);
}

int bench_aging(const struct bench_opts *opts, struct bench_report *rep)
{
	const int n = opts->vcpus ? opts->vcpus : 1;
	const uint64_t pages = bench_pages_per_vcpu(opts, AGING_DEFAULT_MEM);
	const double total = (double)(pages * (uint64_t)n);
	struct aging_res res[2];

	if (bvm_machine_start(pages * (uint64_t)n * 4096, n)) {
		fprintf(stderr, "bench access-tracking: cannot start the machine\n");
		return 1;
	}
	bench_note(rep, opts);
	printf("ukvm bench access-tracking: %d vCPU%s x %llu MiB; %s\n", n,
	       n > 1 ? "s" : "", (unsigned long long)(pages >> 8), rep->note);
	for (int ad = 1; ad >= 0; ad--) {
		struct bvm_config cfg = { .nr_vcpus = n, .pages_per_vcpu = pages };
		struct aging_res *r = &res[ad];

		cfg.vm.ad_disabled = !ad;
		aging_measure(opts, &cfg, r);
		printf("\n[EPT A/D bits %s]\n", ad ? "on" : "off (access tracking)");
		for (int p = 0; p < NR_P; p++)
			printf("%-30s: %.9fs  (%.1f ns/page)\n", p_names[p], r->s[p],
			       r->s[p] * 1e9 / total);
		printf("  aging passes found %.0f and %.0f of %.0f pages young\n",
		       r->young[0], r->young[1], total);
		for (int p = 0; p < NR_P; p++) {
			const struct bench_metric m[] = {
				{ "ad_bits", ad }, { "seconds", r->s[p] },
				{ "ns_per_page", r->s[p] * 1e9 / total },
			};
			char name[64];

			snprintf(name, sizeof(name), "%s%s", p_names[p],
				 p == P_IDLE2 ? " (2)" : "");
			bench_record(rep, name, n, "", m, 3);
		}
	}
	printf("\naging pass (Mark memory idle), ns per page: A/D on %.1f, off %.1f; "
	       "writing to idle memory: A/D on %.1f, off %.1f (fast page faults)\n",
	       res[1].s[P_IDLE1] * 1e9 / total, res[0].s[P_IDLE1] * 1e9 / total,
	       res[1].s[P_WIDLE] * 1e9 / total, res[0].s[P_WIDLE] * 1e9 / total);
	printf("real KVM access_tracking_perf_test: %s\n",
	       access("/sys/kernel/mm/page_idle/bitmap", F_OK) ?
	       "n/a (this kernel has no CONFIG_IDLE_PAGE_TRACKING: no "
	       "/sys/kernel/mm/page_idle; the selftest skips here)" :
	       "available: run the selftest (see perf-anchors.md 3.2)");
	bvm_machine_stop();
	return 0;
}
