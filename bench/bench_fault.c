// SPDX-License-Identifier: MIT
/*
 * `ukvm bench fault` (issue 4): the three costs of the x86 fault paths, for
 * 1 and 2 vCPUs, each next to a reference measured in the same run.
 *
 *  1. Demand fault-in: each vCPU writes one word to every 4 KiB page of its
 *     own region once; neither the SPTEs nor the host ptes exist yet (the
 *     memory was never touched on the host side either), so every page is
 *     an EPT violation -> slow path -> get_user_pages faulting a zeroed frame
 *     in -> install under mmu_lock (read).  Reference: the kernel's own
 *     anonymous fault (mmap + MADV_NOHUGEPAGE + touch), and the real KVM
 *     running a tiny guest that writes the same pages.
 *  2. Fast-path re-dirty: GET_DIRTY_LOG write-protects every SPTE, then the
 *     vCPUs write every page again: one fast page fault each (lockless
 *     cmpxchg).  Total ns per fault (exit, fast_page_fault, re-entry, the
 *     walk) and, separately, fast_page_fault() alone, called by the bench
 *     thread on every write-protected gfn with the vCPU's mutex and
 *     kvm->srcu held, exactly as the exit handler calls it.
 *  3. 4 KiB invalidation with vCPUs running: host_madvise_dontneed() and
 *     host_migrate_page() of single mapped pages while the vCPUs write
 *     other pages of the VM; reference: the kernel's madvise(DONTNEED).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_vm.h"
#include "host/host.h"
#include "x86/mmu/mmu.h"

#define FAULT_PAGES	65536		/* 256 MiB per vCPU */
#define INVAL_PAGES	8192		/* pages invalidated per run and vCPU */
#define HOT_PAGES	64		/* what the vCPUs keep writing meanwhile */
#define KVMREF_PAGES	16384

#define TARGET_FAULT_US		0.5
#define TARGET_NATIVE_X		3.0
#define TARGET_SCALING		1.9
#define TARGET_FAST_NS		40.0
#define TARGET_FAST_X		10.0
#define TARGET_INVAL_US		2.0

struct fault_res {
	double fault_ns;	/* per page, per vCPU (each vCPU's own time) */
	double rate_total;	/* pages/s, all vCPUs, wall time */
	double native_rate;	/* pages/s per thread */
	double redirty_ns;	/* end to end, per fault */
	double fast_pf_ns;	/* fast_page_fault() alone */
	double fast_share;	/* re-dirty faults fixed by the fast path */
	double dontneed_ns, migrate_ns, native_dontneed_ns;
};

static double vcpus_ns_per_page(struct bvm *vm, uint64_t pages)
{
	double sum = 0;

	for (int i = 0; i < vm->cfg.nr_vcpus; i++)
		sum += (double)vm->vcpu[i].ns / (double)pages;
	return sum / vm->cfg.nr_vcpus;
}

static int get_log(struct bvm *vm, unsigned long *bitmap)
{
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bitmap };

	return ukvm_get_dirty_log(vm->kvm, &log);
}

/* fast_page_fault() on every page of vCPU 0's region, as its exit handler. */
static double time_fast_pf(struct bvm *vm, uint64_t pages, unsigned long *fixed)
{
	struct kvm_vcpu *vcpu = vm->vcpu[0].vcpu;
	gfn_t gfn0 = bvm_vcpu_gpa(vm, 0) >> 12;
	struct kvm_memory_slot *slot;
	uint64_t t0, t1;

	*fixed = 0;
	if (kvm_vcpu_ioctl_begin(vcpu))
		return NAN;
	kvm_vcpu_srcu_read_lock(vcpu);
	slot = gfn_to_memslot(vm->kvm, gfn0);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < pages; i++) {
		struct kvm_page_fault f = {
			.addr = (gfn0 + i) << 12, .gfn = gfn0 + i,
			.error_code = PFERR_PRESENT_MASK | PFERR_WRITE_MASK,
			.write = true, .present = true, .slot = slot,
			.max_level = KVM_MAX_HUGEPAGE_LEVEL,
		};

		*fixed += fast_page_fault(vcpu, &f) == RET_PF_FIXED;
	}
	t1 = bench_now_ns();
	kvm_vcpu_srcu_read_unlock(vcpu);
	kvm_vcpu_ioctl_end(vcpu);
	return (double)(t1 - t0) / (double)pages;
}

/* Invalidate single pages of every vCPU's region while they write others. */
static double time_invalidations(struct bvm *vm, uint64_t pages, bool migrate)
{
	const struct bvm_phase populate = { .type = UKVM_ACCESS_WRITE,
					    .passes = 1, .only_vcpu = -1 };
	const struct bvm_phase hot = { .type = UKVM_ACCESS_WRITE, .passes = 0,
				       .npages = HOT_PAGES, .only_vcpu = -1 };
	int n = vm->cfg.nr_vcpus, errors = 0;
	uint64_t t0, t1;

	bvm_run(vm, &populate);
	bvm_start(vm, &hot);
	bvm_wait_running(vm);
	t0 = bench_now_ns();
	for (uint64_t i = HOT_PAGES; i < HOT_PAGES + pages; i++) {
		for (int v = 0; v < n; v++) {
			unsigned long hva = vm->hva +
				(bvm_vcpu_gpa(vm, v) - vm->gpa) + (i << 12);

			errors += migrate ? host_migrate_page(host_current_mm, hva) != 0 :
				  host_madvise_dontneed(host_current_mm, hva, 4096) != 0;
		}
	}
	t1 = bench_now_ns();
	bvm_stop(vm);
	if (errors)
		fprintf(stderr, "bench fault: %d invalidations failed\n", errors);
	return (double)(t1 - t0) / (double)(pages * (uint64_t)n);
}

static void measure(const struct bench_opts *opts, int nr_vcpus,
		    struct fault_res *res)
{
	const uint64_t pages = bench_iters(opts, FAULT_PAGES);
	const uint64_t inval = bench_iters(opts, INVAL_PAGES);
	const struct bvm_config cfg = { .nr_vcpus = nr_vcpus,
					.pages_per_vcpu = pages };
	const struct bvm_config icfg = { .nr_vcpus = nr_vcpus,
					 .pages_per_vcpu = HOT_PAGES + inval };
	const struct bvm_phase wr = { .type = UKVM_ACCESS_WRITE, .passes = 1,
				      .only_vcpu = -1 };
	double f[BENCH_MAX_RUNS], t[BENCH_MAX_RUNS], rd[BENCH_MAX_RUNS];
	double fp[BENCH_MAX_RUNS], dn[BENCH_MAX_RUNS], mg[BENCH_MAX_RUNS];
	unsigned long *bitmap = calloc(pages * (uint64_t)nr_vcpus / 64 + 1,
				       sizeof(long));
	unsigned long fast0, fixed = 0;
	struct bvm vm;

	/* 1 and 2: a fresh VM per run (fresh host memory too). */
	for (int r = 0; r < opts->runs; r++) {
		uint64_t wall;

		if (bvm_create(&vm, &cfg))
			exit(1);
		wall = bvm_run(&vm, &wr);
		f[r] = vcpus_ns_per_page(&vm, pages);
		t[r] = (double)(pages * (uint64_t)nr_vcpus) * 1e9 / (double)wall;

		/* Logging on write-protects; the first re-write is not timed. */
		bvm_set_logging(&vm, true);
		bvm_run(&vm, &wr);
		get_log(&vm, bitmap);
		fast0 = bvm_fast_faults(&vm);
		bvm_run(&vm, &wr);
		rd[r] = vcpus_ns_per_page(&vm, pages);
		res->fast_share = (double)(bvm_fast_faults(&vm) - fast0) /
				  (double)(pages * (uint64_t)nr_vcpus);
		get_log(&vm, bitmap);
		fp[r] = time_fast_pf(&vm, pages, &fixed);
		bvm_destroy(&vm);
	}
	res->fault_ns = bench_median(f, opts->runs);
	res->rate_total = bench_median(t, opts->runs);
	res->redirty_ns = bench_median(rd, opts->runs);
	res->fast_pf_ns = fixed == pages ? bench_median(fp, opts->runs) : NAN;
	if (fixed != pages)
		fprintf(stderr, "bench fault: fast_page_fault fixed %lu of %llu\n",
			fixed, (unsigned long long)pages);
	free(bitmap);

	/* 3: one VM, re-populated before each run. */
	if (bvm_create(&vm, &icfg))
		exit(1);
	for (int r = 0; r < opts->runs; r++) {
		dn[r] = time_invalidations(&vm, inval, false);
		mg[r] = time_invalidations(&vm, inval, true);
	}
	bvm_destroy(&vm);
	res->dontneed_ns = bench_median(dn, opts->runs);
	res->migrate_ns = bench_median(mg, opts->runs);

	res->native_rate = native_fault_rate(opts, nr_vcpus, pages);
	res->native_dontneed_ns = native_dontneed_ns(opts, inval);
}

static void row(struct bench_report *rep, const char *name, int threads,
		const char *unit, double v, const char *ref_name, double ref,
		double ratio)
{
	const struct bench_metric m[] = {
		{ unit, v }, { "ref", ref }, { "ratio", ratio },
	};

	printf("%-34s %3d ", name, threads);
	bprint_val("%11.1f", v);
	printf(" %-7s %-30s ", unit, ref_name);
	bprint_val("%11.1f", ref);
	printf(" ");
	bprint_val("%7.2f", ratio);
	printf("\n");
	bench_record(rep, name, threads, ref_name, m, 3);
}

/* A time of ukvm's next to its reference's: ratio = reference / ukvm time. */
static void time_row(struct bench_report *rep, const char *name, int threads,
		     const char *unit, double v, const char *ref_name, double ref)
{
	row(rep, name, threads, unit, v, ref_name, ref, ref / v);
}

int bench_fault(const struct bench_opts *opts, struct bench_report *rep)
{
	const uint64_t pages = bench_iters(opts, FAULT_PAGES);
	struct fault_res res[2];
	struct kvmref_touch kr;
	char why[160];
	bool have_kr;

	if (bvm_machine_start(pages * 2 * 4096 + (64UL << 20), 2)) {
		fprintf(stderr, "bench fault: cannot start the machine\n");
		return 1;
	}
	bench_note(rep, opts);
	printf("ukvm bench fault: %llu pages (4 KiB) per vCPU; %s\n",
	       (unsigned long long)pages, rep->note);
	printf("ratio = reference / ukvm time (> 1: ukvm is faster)\n\n");
	printf("%-34s %3s %11s %-7s %-30s %11s %7s\n", "operation", "vcpu",
	       "ukvm", "unit", "reference", "ref", "ratio");
	have_kr = kvmref_touch(opts, KVMREF_PAGES, &kr, why, sizeof(why));
	for (int n = 1; n <= 2; n++) {
		struct fault_res *r = &res[n - 1];
		double nat_ns;

		measure(opts, n, r);
		nat_ns = 1e9 / r->native_rate;
		time_row(rep, "demand fault-in", n, "ns/page", r->fault_ns,
			 "kernel anon fault (mmap+touch)", nat_ns);
		row(rep, "demand fault-in (ukvm pages/s)", n, "pg/s/vcpu",
		    1e9 / r->fault_ns, "kernel anon faults/s/thread",
		    r->native_rate, (1e9 / r->fault_ns) / r->native_rate);
		row(rep, "demand fault-in, total", n, "pages/s", r->rate_total,
		    "", NAN, NAN);
		time_row(rep, "re-dirty (fast page fault)", n, "ns/fault", r->redirty_ns,
			 "demand fault-in (slow path)", r->fault_ns);
		time_row(rep, "  fast_page_fault() alone", n, "ns/call", r->fast_pf_ns,
			 "re-dirty, end to end", r->redirty_ns);
		time_row(rep, "4K invalidation: dontneed", n, "ns/page", r->dontneed_ns,
			 "kernel madvise(DONTNEED) 4K", r->native_dontneed_ns);
		time_row(rep, "4K invalidation: migrate", n, "ns/page", r->migrate_ns,
			 "kernel madvise(DONTNEED) 4K", r->native_dontneed_ns);
		if (r->fast_share < 0.99)
			printf("  (only %.0f%% of the re-dirty faults took the fast path)\n",
			       100 * r->fast_share);
	}
	row(rep, "real KVM guest: first touch", 1, "ns/page", kr.fault_ns,
	    "ukvm demand fault-in", res[0].fault_ns, kr.fault_ns / res[0].fault_ns);
	row(rep, "real KVM guest: re-dirty", 1, "ns/page", kr.redirty_ns,
	    "ukvm re-dirty", res[0].redirty_ns, kr.redirty_ns / res[0].redirty_ns);
	if (!have_kr)
		printf("  real KVM: n/a (%s)\n", why);
	else
		printf("  real KVM: ratio = real / ukvm (%d pages)\n", KVMREF_PAGES);

	printf("\ntargets:\n");
	bprint_target(rep, "fault-in per page per vCPU (1 vCPU)",
		      res[0].fault_ns / 1000, TARGET_FAULT_US, "us");
	bprint_target(rep, "fault-in per page per vCPU (2 vCPUs)",
		      res[1].fault_ns / 1000, TARGET_FAULT_US, "us");
	bprint_target_min(rep, "fault-in vs kernel anon fault (1 vCPU), x faster",
			  1e9 / res[0].native_rate / res[0].fault_ns,
			  TARGET_NATIVE_X, "x");
	bprint_target_min(rep, "fault-in scaling 1 -> 2 vCPUs (total pages/s)",
			  res[1].rate_total / res[0].rate_total, TARGET_SCALING, "x");
	bprint_target(rep, "fast path: fast_page_fault() alone (1 vCPU)",
		      res[0].fast_pf_ns, TARGET_FAST_NS, "ns");
	bprint_target(rep, "fast path: re-dirty fault end to end (1 vCPU)",
		      res[0].redirty_ns, TARGET_FAST_NS, "ns");
	bprint_target_min(rep, "fast path vs slow path (end to end), x faster",
			  res[0].fault_ns / res[0].redirty_ns, TARGET_FAST_X, "x");
	bprint_target(rep, "4K invalidation, dontneed, vCPUs running (2)",
		      res[1].dontneed_ns / 1000, TARGET_INVAL_US, "us");
	bprint_target(rep, "4K invalidation, migrate, vCPUs running (2)",
		      res[1].migrate_ns / 1000, TARGET_INVAL_US, "us");
	bvm_machine_stop();
	return 0;
}
