// SPDX-License-Identifier: MIT
/*
 * `ukvm bench dirty-log` (issue 7; dirty_log_perf_test): populate, enable
 * dirty logging, then per iteration the vCPUs re-write all their memory
 * (write-protection faults, fixed by the lockless fast path) and the VMM
 * reads the log (KVM_GET_DIRTY_LOG) and, with manual protect, re-protects it
 * (KVM_CLEAR_DIRTY_LOG over the whole slot); finally logging is disabled.
 * With and without KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (+ INITIALLY_SET, the
 * selftest's default; without it is the selftest's -g), for 1 and 2 vCPUs
 * (--vcpus N: 1 and N), --mem-per-vcpu each (128 MiB), 3 iterations.
 *
 * Every figure is the median over --runs complete runs.  The reference is
 * the real KVM's tiny guest (1 vCPU): first touch, re-write after enabling
 * logging, and GET_DIRTY_LOG, per page.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_vm.h"
#include "kvm/kvm_host.h"

#define DIRTY_DEFAULT_MEM	(128ULL << 20)
#define DIRTY_ITERS		3
#define DIRTY_KVMREF_PAGES	16384

static double secs(uint64_t t0)
{
	return (double)(bench_now_ns() - t0) / 1e9;
}

static void dirty_once(struct bvm *vm, int iters, bool manual,
		       unsigned long *bitmap, struct dirty_res *o)
{
	const struct bvm_phase wr = { .type = UKVM_ACCESS_WRITE, .passes = 1,
				      .only_vcpu = -1 };
	uint64_t pages = bvm_total_pages(vm), t0;
	unsigned long fast0 = 0;

	o->populate_s = (double)bvm_run(vm, &wr) / 1e9;
	t0 = bench_now_ns();
	bvm_set_logging(vm, true);
	o->enable_s = secs(t0);
	o->get_total_s = o->clear_total_s = 0;
	for (int it = 0; it < iters; it++) {
		struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bitmap };

		if (it == 1)
			fast0 = bvm_fast_faults(vm);
		o->dirty_s[it] = (double)bvm_run(vm, &wr) / 1e9;
		t0 = bench_now_ns();
		ukvm_get_dirty_log(vm->kvm, &log);
		o->get_s[it] = secs(t0);
		o->clear_s[it] = 0;
		if (manual) {
			struct kvm_clear_dirty_log clr = {
				.slot = 0, .first_page = 0,
				.num_pages = (uint32_t)pages, .dirty_bitmap = bitmap,
			};

			t0 = bench_now_ns();
			ukvm_clear_dirty_log(vm->kvm, &clr);
			o->clear_s[it] = secs(t0);
		}
		o->get_total_s += o->get_s[it];
		o->clear_total_s += o->clear_s[it];
	}
	o->fast_share = iters > 1 ? (double)(bvm_fast_faults(vm) - fast0) /
				    (double)(pages * (uint64_t)(iters - 1)) : NAN;
	t0 = bench_now_ns();
	bvm_set_logging(vm, false);
	o->disable_s = secs(t0);
}

void dirty_measure(const struct bench_opts *opts, int nr_vcpus, uint64_t pages,
		   int iters, bool manual, const struct ukvm_vm_config *vmc,
		   struct dirty_res *res)
{
	struct bvm_config cfg = { .nr_vcpus = nr_vcpus, .pages_per_vcpu = pages,
				  .manual_protect = manual,
				  .initially_set = manual };
	struct dirty_res *r = calloc((size_t)opts->runs, sizeof(*r));
	unsigned long *bitmap = calloc(pages * (uint64_t)nr_vcpus / 64 + 1,
				       sizeof(long));
	double v[BENCH_MAX_RUNS];
	struct bvm vm;

	if (iters > DIRTY_MAX_ITERS)
		iters = DIRTY_MAX_ITERS;
	if (vmc)
		cfg.vm = *vmc;
	for (int k = 0; k < opts->runs; k++) {
		if (bvm_create(&vm, &cfg))
			exit(1);
		dirty_once(&vm, iters, manual, bitmap, &r[k]);
		bvm_destroy(&vm);
	}
#define MEDIAN(field) ({                                                      \
	for (int k = 0; k < opts->runs; k++)                                  \
		v[k] = r[k].field;                                            \
	bench_median(v, opts->runs); })
	memset(res, 0, sizeof(*res));
	res->iters = iters;
	res->populate_s = MEDIAN(populate_s);
	res->enable_s = MEDIAN(enable_s);
	res->disable_s = MEDIAN(disable_s);
	res->get_total_s = MEDIAN(get_total_s);
	res->clear_total_s = MEDIAN(clear_total_s);
	res->fast_share = MEDIAN(fast_share);
	for (int it = 0; it < iters; it++) {
		res->dirty_s[it] = MEDIAN(dirty_s[it]);
		res->get_s[it] = MEDIAN(get_s[it]);
		res->clear_s[it] = MEDIAN(clear_s[it]);
	}
#undef MEDIAN
	free(bitmap);
	free(r);
}

/* The selftest's lines. */
static void print_run(const char *tag, const struct dirty_res *d)
{
	printf("%s Populate memory time: %.9fs\n", tag, d->populate_s);
	printf("%s Enabling dirty logging time: %.9fs\n", tag, d->enable_s);
	for (int it = 0; it < d->iters; it++) {
		printf("%s Iteration %d dirty memory time: %.9fs\n", tag, it + 1,
		       d->dirty_s[it]);
		printf("%s Iteration %d get dirty log time: %.9fs\n", tag, it + 1,
		       d->get_s[it]);
		printf("%s Iteration %d clear dirty log time: %.9fs\n", tag, it + 1,
		       d->clear_s[it]);
	}
	printf("%s Disabling dirty logging time: %.9fs\n", tag, d->disable_s);
	printf("%s Get dirty log over %d iterations took %.9fs. (Avg %.9fs/iteration)\n",
	       tag, d->iters, d->get_total_s, d->get_total_s / d->iters);
	printf("%s Clear dirty log over %d iterations took %.9fs. (Avg %.9fs/iteration)\n",
	       tag, d->iters, d->clear_total_s, d->clear_total_s / d->iters);
}

static void record(struct bench_report *rep, bool manual, int n,
		   uint64_t pages, const struct dirty_res *d,
		   const struct kvmref_touch *kr)
{
	double total = (double)(pages * (uint64_t)n);
	double redirty_ns = d->dirty_s[d->iters - 1] * 1e9 / (double)pages;
	const struct bench_metric m[] = {
		{ "vcpus", n },
		{ "populate_ns_page", d->populate_s * 1e9 / (double)pages },
		{ "redirty_ns_page", redirty_ns },
		{ "get_ns_page", d->get_total_s / d->iters * 1e9 / total },
		{ "clear_ns_page", d->clear_total_s / d->iters * 1e9 / total },
		{ "enable_s", d->enable_s }, { "disable_s", d->disable_s },
		{ "ref_redirty_ns_page", kr->redirty_ns },
	};

	bench_record(rep, manual ? "dirty log, manual protect" : "dirty log, get",
		     n, "real KVM tiny guest", m, 8);
}

int bench_dirty(const struct bench_opts *opts, struct bench_report *rep)
{
	const int nmax = opts->vcpus ? opts->vcpus : 2;
	const uint64_t pages = bench_pages_per_vcpu(opts, DIRTY_DEFAULT_MEM);
	struct dirty_res d[2][2];	/* [manual][1 or nmax vCPUs] */
	struct kvmref_touch kr;
	char why[160];
	bool have_kr;

	if (bvm_machine_start(pages * (uint64_t)nmax * 4096, nmax)) {
		fprintf(stderr, "bench dirty-log: cannot start the machine\n");
		return 1;
	}
	bench_note(rep, opts);
	printf("ukvm bench dirty-log: %llu MiB per vCPU, %d iterations; %s\n",
	       (unsigned long long)(pages >> 8), DIRTY_ITERS, rep->note);
	printf("(each line: median over %d runs)\n\n", opts->runs);
	for (int manual = 1; manual >= 0; manual--) {
		for (int j = 0; j < 2; j++) {
			int n = j ? nmax : 1;
			char tag[64];

			if (j && nmax == 1)
				break;
			dirty_measure(opts, n, pages, DIRTY_ITERS, manual, NULL,
				      &d[manual][j]);
			snprintf(tag, sizeof(tag), "[%d vCPU%s, %s]", n, n > 1 ? "s" : "",
				 manual ? "manual protect" : "no manual protect (-g)");
			print_run(tag, &d[manual][j]);
			printf("\n");
			fflush(stdout);
		}
	}
	have_kr = kvmref_touch(opts, pages < DIRTY_KVMREF_PAGES ? pages :
			       DIRTY_KVMREF_PAGES, &kr, why, sizeof(why));

	printf("per page (ns), last iteration:  %-22s %5s %10s %10s %10s %10s %9s\n",
	       "mode", "vCPUs", "populate", "re-dirty", "get", "clear", "fast-path");
	for (int manual = 1; manual >= 0; manual--) {
		for (int j = 0; j < 2 && !(j && nmax == 1); j++) {
			const struct dirty_res *x = &d[manual][j];
			int n = j ? nmax : 1;
			double total = (double)(pages * (uint64_t)n);

			printf("%-32s %-22s %5d %10.1f %10.1f %10.2f %10.2f %8.0f%%\n", "",
			       manual ? "manual protect" : "GET write-protects", n,
			       x->populate_s * 1e9 / (double)pages,
			       x->dirty_s[x->iters - 1] * 1e9 / (double)pages,
			       x->get_total_s / x->iters * 1e9 / total,
			       x->clear_total_s / x->iters * 1e9 / total,
			       100 * x->fast_share);
			record(rep, manual, n, pages, x, &kr);
		}
	}
	printf("\nreal KVM, 1 vCPU (tiny guest, %d pages): ", DIRTY_KVMREF_PAGES);
	if (have_kr) {
		double uk = d[0][0].dirty_s[DIRTY_ITERS - 1] * 1e9 / (double)pages;

		printf("populate %.1f ns/page, re-dirty %.1f ns/page, GET %.2f ns/page\n",
		       kr.fault_ns, kr.redirty_ns,
		       kr.get_log_ns / DIRTY_KVMREF_PAGES);
		printf("  ratio real / ukvm (1 vCPU, -g): populate %.1fx, re-dirty %.1fx\n",
		       kr.fault_ns / (d[0][0].populate_s * 1e9 / (double)pages),
		       kr.redirty_ns / uk);
	} else {
		printf("n/a (%s)\n", why);
	}
	printf("\ntargets:\n");
	bprint_target(rep, "re-dirty (fast path) per fault, 1 vCPU, -g",
		      d[0][0].dirty_s[DIRTY_ITERS - 1] * 1e9 / (double)pages,
		      40.0, "ns");
	bprint_target(rep, "clear dirty log per page (manual protect, 1 vCPU)",
		      d[1][0].clear_total_s / DIRTY_ITERS * 1e9 / (double)pages,
		      7.0, "ns");
	bvm_machine_stop();
	return 0;
}
