// SPDX-License-Identifier: MIT
/*
 * `ukvm bench memslot` (issues 3 and 7; memslot_perf_test and the raw
 * ioctl probe of perf-anchors.md Appendix B).
 *
 * For K = 1, 10, 509, 4096 and 32000 existing slots:
 *   - the latency of ukvm_set_user_memory_region() for CREATE, FLAGS_ONLY
 *     (enable dirty logging), MOVE and DELETE of one 2 MiB slot, median of
 *     --iters rounds (Appendix B's create -> enable dirty log -> delete,
 *     with a move before the delete), (a) with no SRCU readers and (b) with
 *     2 vCPUs running a guest: real KVM_RUN loops, each holding kvm->srcu
 *     whenever it is outside guest mode (exits every 512 accesses), so every
 *     synchronize_srcu_expedited() of a swap must wait for them;
 *   - memslot_perf_test's map / unmap / unmap-chunked over a 128 MiB test
 *     area split into the K slots: vCPU 0 writes every page of the area
 *     (map: ns per page), then the host discards it with madvise(DONTNEED)
 *     one 4 KiB page at a time (unmap) or 2 MiB at a time (unmap chunked)
 *     while vCPU 0 keeps writing its own pages: every call is one
 *     notifier-driven invalidation;
 *   - the same ioctl sequence on the real /dev/kvm (K 2 MiB slots).
 * As in memslot_perf_test, the vCPUs' own memory is one more slot.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_vm.h"
#include "host/host.h"

#define MS_SLOT_SIZE	(2UL << 20)
#define MS_AREA_GPA	MS_SLOT_SIZE	/* the K slots, then the test slot */
#define MS_AREA_SIZE	(128UL << 20)
#define MS_ITERS	2000
#define MS_HOT_PAGES	64
#define MS_TARGET_US	5.0
#define MS_FLAT_X	2.0

static const int slot_counts[] = { 1, 10, 509, 4096, 32000 };
#define NR_COUNTS ((int)(sizeof(slot_counts) / sizeof(slot_counts[0])))

enum { OP_CREATE, OP_FLAGS, OP_MOVE, OP_DELETE, NR_OPS };
static const char *const op_names[NR_OPS] = {
	"create", "flags-only (dirty log on)", "move", "delete",
};

struct ms_area {
	struct bvm vm;
	unsigned long hva;		/* the area, then the test slot */
	uint64_t area_pages, pages_per_slot;
	int nr_slots;
};

struct ms_res {
	double lat[2][NR_OPS];		/* [readers][op], ns */
	double ref[NR_OPS];		/* real KVM, ns */
	double setup_ns;		/* per pre-existing slot */
	double map_ns, unmap_ns, chunk_ns;	/* per page, page, 2 MiB */
};

static int ms_region(struct ms_area *a, uint32_t slot, uint32_t flags,
		     uint64_t gpa, uint64_t size, unsigned long hva)
{
	const struct kvm_userspace_memory_region mem = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = hva,
	};

	return ukvm_set_user_memory_region(a->vm.kvm, &mem);
}

static int ms_setup(struct ms_area *a, int k, uint64_t area_bytes, double *setup_ns)
{
	const struct bvm_config cfg = { .nr_vcpus = 2,
					.pages_per_vcpu = MS_HOT_PAGES };
	uint64_t t0;
	int r;

	r = bvm_create(&a->vm, &cfg);
	if (r)
		return r;
	a->nr_slots = k;
	a->pages_per_slot = (area_bytes >> 12) / (uint64_t)k;
	if (!a->pages_per_slot)
		a->pages_per_slot = 1;
	a->area_pages = a->pages_per_slot * (uint64_t)k;
	a->hva = host_mmap(host_current_mm, (a->area_pages << 12) + 2 * MS_SLOT_SIZE,
			   VM_READ | VM_WRITE);
	if (IS_ERR_HVA(a->hva))
		return (int)(long)a->hva;
	t0 = bench_now_ns();
	for (int i = 0; i < k; i++) {
		uint64_t off = (uint64_t)i * a->pages_per_slot << 12;

		/* Slot 0 is the vCPUs' own memory: the test slots are 1..K. */
		r = ms_region(a, (uint32_t)i + 1, 0, MS_AREA_GPA + off,
			      a->pages_per_slot << 12,
			      a->hva + off);
		if (r)
			return r;
	}
	*setup_ns = (double)(bench_now_ns() - t0) / k;
	return 0;
}

static void ms_teardown(struct ms_area *a)
{
	bvm_destroy(&a->vm);
	host_munmap(host_current_mm, a->hva, (a->area_pages << 12) + 2 * MS_SLOT_SIZE);
}

#define TIMED(acc, call)                                                      \
	({ uint64_t _t = bench_now_ns(); int _r = (call);                     \
	   (acc) = (double)(bench_now_ns() - _t); _r; })

/* Appendix B's round plus a move, @iters times: medians into @lat. */
static int ms_latency(struct ms_area *a, int iters, double lat[NR_OPS])
{
	uint32_t s = (uint32_t)a->nr_slots + 1;
	uint64_t gpa = MS_AREA_GPA + (a->area_pages << 12);
	unsigned long hva = a->hva + (a->area_pages << 12);
	double *v = calloc((size_t)iters * NR_OPS, sizeof(double));
	int r = 0;

	for (int i = 0; i < iters && !r; i++) {
		double *t = v + (size_t)i * NR_OPS;

		r = TIMED(t[OP_CREATE], ms_region(a, s, 0, gpa, MS_SLOT_SIZE, hva));
		if (!r)
			r = TIMED(t[OP_FLAGS], ms_region(a, s, KVM_MEM_LOG_DIRTY_PAGES,
							 gpa, MS_SLOT_SIZE, hva));
		if (!r)
			r = TIMED(t[OP_MOVE], ms_region(a, s, KVM_MEM_LOG_DIRTY_PAGES,
							gpa + MS_SLOT_SIZE,
							MS_SLOT_SIZE, hva));
		if (!r)
			r = TIMED(t[OP_DELETE], ms_region(a, s, 0, 0, 0, hva));
	}
	for (int op = 0; op < NR_OPS; op++) {
		double *col = calloc((size_t)iters, sizeof(double));

		for (int i = 0; i < iters; i++)
			col[i] = v[(size_t)i * NR_OPS + op];
		lat[op] = r ? NAN : bench_median(col, iters);
		free(col);
	}
	free(v);
	return r;
}

/* Discard the area in @chunk-byte madvise calls with vCPU 0 writing. */
static double ms_unmap(struct ms_area *a, uint64_t chunk)
{
	const struct bvm_phase map = { .type = UKVM_ACCESS_WRITE, .passes = 1,
				       .gpa = MS_AREA_GPA,
				       .npages = a->area_pages, .only_vcpu = 0 };
	const struct bvm_phase hot = { .type = UKVM_ACCESS_WRITE, .passes = 0,
				       .only_vcpu = 0 };
	uint64_t bytes = a->area_pages << 12, t0, t1, n = 0;

	bvm_run(&a->vm, &map);
	bvm_start(&a->vm, &hot);
	bvm_wait_running(&a->vm);
	t0 = bench_now_ns();
	for (uint64_t off = 0; off < bytes; off += chunk, n++)
		host_madvise_dontneed(host_current_mm, a->hva + off,
				      chunk < bytes - off ? chunk : bytes - off);
	t1 = bench_now_ns();
	bvm_stop(&a->vm);
	return (double)(t1 - t0) / (double)n;
}

static int ms_measure(const struct bench_opts *opts, int k, uint64_t area_bytes,
		      int iters, struct ms_res *res)
{
	const struct bvm_phase hot = { .type = UKVM_ACCESS_WRITE, .passes = 0,
				       .only_vcpu = -1 };
	struct bvm_phase map = { .type = UKVM_ACCESS_WRITE, .passes = 1,
				 .gpa = MS_AREA_GPA, .only_vcpu = 0 };
	struct ms_area a;
	uint64_t t0;
	int r;

	(void)opts;
	memset(&a, 0, sizeof(a));
	r = ms_setup(&a, k, area_bytes, &res->setup_ns);
	if (r)
		return r;
	r = ms_latency(&a, iters, res->lat[0]);
	if (!r) {
		bvm_start(&a.vm, &hot);
		bvm_wait_running(&a.vm);
		r = ms_latency(&a, iters, res->lat[1]);
		bvm_stop(&a.vm);
	}
	if (!r) {
		map.npages = a.area_pages;
		t0 = bench_now_ns();
		bvm_run(&a.vm, &map);
		res->map_ns = (double)(bench_now_ns() - t0) / (double)a.area_pages;
		res->unmap_ns = ms_unmap(&a, 4096);
		res->chunk_ns = ms_unmap(&a, MS_SLOT_SIZE);
	}
	ms_teardown(&a);
	return r;
}

static void ms_row(struct bench_report *rep, int k, const char *name,
		   double v, double v_readers, double ref)
{
	const struct bench_metric m[] = {
		{ "slots", k }, { "ns", v }, { "ns_readers", v_readers },
		{ "ref_ns", ref }, { "ratio", ref / v },
	};

	printf("%6d  %-26s ", k, name);
	bprint_val("%10.2f", v / 1000);
	bprint_val("%12.2f", v_readers / 1000);
	bprint_val("%11.2f", ref / 1000);
	bprint_val("%8.1f", ref / v);
	printf("\n");
	bench_record(rep, name, 0, isnan(ref) ? "" : "real KVM", m, 5);
}

int bench_memslot(const struct bench_opts *opts, struct bench_report *rep)
{
	const int iters = (int)bench_iters(opts, MS_ITERS);
	const uint64_t area = opts->scale < 1 ? MS_AREA_SIZE / 8 : MS_AREA_SIZE;
	struct ms_res res[NR_COUNTS];
	char why[160] = "";
	bool have_ref = true;

	if (bvm_machine_start(area + (64UL << 20), 2)) {
		fprintf(stderr, "bench memslot: cannot start the machine\n");
		return 1;
	}
	bench_note(rep, opts);
	printf("ukvm bench memslot: median of %d rounds per slot count; %llu MiB "
	       "test area split into the K slots; %s\n", iters,
	       (unsigned long long)(area >> 20), rep->note);
	printf("readers: 2 vCPUs in KVM_RUN loops (kvm->srcu held outside guest mode)\n");
	printf("real KVM: the same ioctls on /dev/kvm with K 2 MiB slots, no vCPU; "
	       "ratio = real / ukvm (no readers)\n\n");
	printf("%6s  %-26s %10s %12s %11s %8s\n", "slots", "operation (us)",
	       "ukvm", "ukvm+vcpus", "real KVM", "ratio");
	for (int i = 0; i < NR_COUNTS; i++) {
		struct kvmref_memslot kr;
		int k = slot_counts[i];

		if (ms_measure(opts, k, area, iters, &res[i])) {
			fprintf(stderr, "bench memslot: %d slots failed\n", k);
			bvm_machine_stop();
			return 1;
		}
		if (!kvmref_memslot(opts, k, iters, &kr, why, sizeof(why)))
			have_ref = false;
		res[i].ref[OP_CREATE] = kr.create_ns;
		res[i].ref[OP_FLAGS] = kr.flags_ns;
		res[i].ref[OP_MOVE] = kr.move_ns;
		res[i].ref[OP_DELETE] = kr.delete_ns;
		for (int op = 0; op < NR_OPS; op++)
			ms_row(rep, k, op_names[op], res[i].lat[0][op],
			       res[i].lat[1][op], res[i].ref[op]);
		ms_row(rep, k, "setup, per slot", res[i].setup_ns, NAN, NAN);
		ms_row(rep, k, "map (vCPU fault), per page", res[i].map_ns, NAN, NAN);
		ms_row(rep, k, "unmap 4K (notifier)", res[i].unmap_ns, NAN, NAN);
		ms_row(rep, k, "unmap chunked 2M", res[i].chunk_ns, NAN, NAN);
		fflush(stdout);
	}
	if (!have_ref)
		printf("real KVM: n/a (%s)\n", why);

	printf("\ntargets (no readers; flat = slowest / fastest over 1..32000 slots):\n");
	for (int op = 0; op < NR_OPS; op++) {
		double lo = INFINITY, hi = 0, hir = 0;
		char name[96];

		for (int i = 0; i < NR_COUNTS; i++) {
			lo = fmin(lo, res[i].lat[0][op]);
			hi = fmax(hi, res[i].lat[0][op]);
			hir = fmax(hir, res[i].lat[1][op]);
		}
		snprintf(name, sizeof(name), "%s, slowest over K", op_names[op]);
		bprint_target(rep, name, hi / 1000, MS_TARGET_US, "us");
		snprintf(name, sizeof(name), "%s, flat (slowest / fastest)", op_names[op]);
		bprint_target(rep, name, hi / lo, MS_FLAT_X, "x");
		printf("  %-58s %10.2f us  (no target; vCPUs running)\n",
		       op_names[op], hir / 1000);
	}
	bvm_machine_stop();
	return 0;
}
