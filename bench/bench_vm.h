/* SPDX-License-Identifier: MIT */
/*
 * The benchmarks' VM: memstress as the KVM selftests build it (one memslot
 * at the top of guest memory, a disjoint region per vCPU, or all of it with
 * overlap), vCPU threads that run a minimal guest, and phases started and
 * timed by the bench thread.
 *
 * The guest is the selftests' one: write (or read) 8 bytes at the start of
 * each page of its region, in order, @passes times, then exit to the VMM
 * (KVM_EXIT_HYPERCALL: the GUEST_SYNC).  With passes == 0 it loops until
 * bvm_stop(): what the memslot and invalidation benchmarks run in the
 * background.  Its bookkeeping is a counter private to the vCPU: no shared
 * cache line, unlike src/guest's verifying workload.
 *
 * Also here: the reference measurements shared by several benchmarks (the
 * kernel's own anonymous page fault, bench_native.c; the real /dev/kvm,
 * bench_kvmref.c) and the printing helpers.
 */
#ifndef UKVM_BENCH_BENCH_VM_H
#define UKVM_BENCH_BENCH_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench/bench.h"
#include "ukvm/ukvm.h"

#define BVM_MAX_VCPUS	32
#define BVM_GPA_TOP	(1ULL << 40)	/* 1 TiB: the test region ends here */

struct kvm;
struct kvm_vcpu;

struct bvm_config {
	int nr_vcpus;
	uint64_t pages_per_vcpu;
	bool overlap;			/* every vCPU walks the whole region */
	bool manual_protect;		/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 */
	bool initially_set;		/* ... with KVM_DIRTY_LOG_INITIALLY_SET */
	struct ukvm_vm_config vm;	/* ad_disabled, big_mmu_lock */
};

/* What the vCPUs do in one phase. */
struct bvm_phase {
	uint8_t type;			/* UKVM_ACCESS_WRITE / _READ */
	uint64_t passes;		/* 0: until bvm_stop() */
	uint64_t gpa;			/* 0: the vCPU's own region */
	uint64_t npages;		/* pages from gpa, or the first pages of
					 * the own region (0: all of it) */
	uint64_t stride;		/* bytes between accesses; 0: 4096 */
	int only_vcpu;			/* -1: all vCPUs; else just this one */
};

struct bvm_vcpu {
	struct bvm *vm;
	struct kvm_vcpu *vcpu;
	int idx;
	pthread_t tid;
	/* the guest's own state (vCPU thread only) */
	uint64_t gpa, npages, stride, pos, end, value;
	uint8_t type;
	bool active;
	/* results of the last phase */
	uint64_t ns;			/* this vCPU's time in the phase */
	uint64_t accesses;
	int error;			/* a KVM_RUN error */
} __attribute__((aligned(64)));

struct bvm {
	struct bvm_config cfg;
	struct kvm *kvm;
	unsigned long hva;
	uint64_t gpa, size;		/* the test slot (slot 0) */
	struct bvm_phase phase;
	pthread_barrier_t start, done;
	_Atomic bool stop, quit;
	_Atomic int running;		/* vCPUs inside a phase */
	struct bvm_vcpu vcpu[BVM_MAX_VCPUS];
};

/*
 * The machine: host physical memory for @guest_bytes of guest memory plus
 * page tables and slack, the simulated CPUs, KVM loaded.  Once per process.
 */
int bvm_machine_start(uint64_t guest_bytes, int nr_vcpus);
void bvm_machine_stop(void);

/* A VM, its slot over fresh (never touched) host memory, its vCPU threads. */
int bvm_create(struct bvm *vm, const struct bvm_config *cfg);
void bvm_destroy(struct bvm *vm);

/* Run a phase to completion (passes > 0): wall ns from start to last vCPU. */
uint64_t bvm_run(struct bvm *vm, const struct bvm_phase *ph);
/* Start a phase in the background (passes == 0) / stop it. */
void bvm_start(struct bvm *vm, const struct bvm_phase *ph);
void bvm_wait_running(struct bvm *vm);
void bvm_stop(struct bvm *vm);

int bvm_set_logging(struct bvm *vm, bool on);
uint64_t bvm_vcpu_gpa(const struct bvm *vm, int v);
uint64_t bvm_total_pages(const struct bvm *vm);
/* The vCPUs' page faults fixed by the fast path, so far. */
unsigned long bvm_fast_faults(const struct bvm *vm);

/* ---- references (bench_native.c, bench_kvmref.c) ---- */

/*
 * The kernel's own anonymous page fault (perf-anchors.md Appendix A): one
 * shared MAP_PRIVATE|MAP_ANONYMOUS mapping with MADV_NOHUGEPAGE, @threads
 * pinned threads each writing one byte per 4 KiB page of their share.
 * Median over opts->runs of the per-thread fault rate (pages/s per thread).
 */
double native_fault_rate(const struct bench_opts *opts, int threads,
			 uint64_t pages_per_thread);
/* madvise(MADV_DONTNEED) of one touched 4 KiB page: ns (median). */
double native_dontneed_ns(const struct bench_opts *opts, uint64_t pages);

/* The real /dev/kvm, when usable; else NAN and @why says why. */
struct kvmref_touch {
	double fault_ns;		/* first touch of each page, ns/page */
	double redirty_ns;		/* re-write after dirty logging: ns/page */
	double get_log_ns, clear_log_ns;	/* per call, ns */
};
bool kvmref_touch(const struct bench_opts *opts, uint64_t npages,
		  struct kvmref_touch *out, char *why, size_t len);
struct kvmref_memslot {
	double create_ns, flags_ns, delete_ns, move_ns;	/* medians, ns */
};
bool kvmref_memslot(const struct bench_opts *opts, int existing, int iters,
		    struct kvmref_memslot *out, char *why, size_t len);

/* ---- measurements shared by demand-paging, dirty-log and baseline ---- */

struct demand_res {
	double wall_s;			/* Total guest execution time */
	double rate_total;		/* pages/s, all vCPUs (wall time) */
	double rate_vcpu;		/* pages/s per vCPU (each its own time) */
};
void demand_measure(const struct bench_opts *opts, int nr_vcpus,
		    uint64_t pages, const struct ukvm_vm_config *vmc,
		    struct demand_res *res);

struct dirty_res {
	double populate_s, enable_s, disable_s;
	int iters;
	double dirty_s[16], get_s[16], clear_s[16];	/* per iteration */
	double get_total_s, clear_total_s;
	double fast_share;		/* faults of iterations >= 2 fixed fast */
};
#define DIRTY_MAX_ITERS 16
void dirty_measure(const struct bench_opts *opts, int nr_vcpus, uint64_t pages,
		   int iters, bool manual, const struct ukvm_vm_config *vmc,
		   struct dirty_res *res);

/* The default memory per vCPU of demand-paging and dirty-log: pages. */
uint64_t bench_pages_per_vcpu(const struct bench_opts *opts, uint64_t dflt_bytes);

/* ---- printing ---- */

/* "%9.3f" of @v in @unit scale, or "n/a". */
void bprint_val(const char *fmt_width, double v);
void bprint_target(struct bench_report *rep, const char *name, double value,
		   double limit, const char *unit);
/* A target that must be >= @limit: recorded as -value <= -limit. */
void bprint_target_min(struct bench_report *rep, const char *name,
		       double value, double limit, const char *unit);
void bench_note(struct bench_report *rep, const struct bench_opts *opts);

#endif /* UKVM_BENCH_BENCH_VM_H */
