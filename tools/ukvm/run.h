/* SPDX-License-Identifier: MIT */
/*
 * `ukvm run`: state shared by its files.
 *
 *   cmd_run.c      the main flow: set-up, the progress loop, the stop
 *                  sequence, teardown
 *   run_opts.c     options, --help, the --demo preset
 *   run_vm.c       the VM, its memslots, the guest workload, vCPU threads
 *                  (park/resume protocol, vCPU ioctls between KVM_RUNs)
 *   run_dirty.c    dirty-log rounds shared by memslot churn and migration;
 *                  the memslot-churn thread
 *   run_churn.c    host mm, aging, CPU-hotplug and parameter-writer threads
 *   run_vmchurn.c  the VM-churn thread, vCPU ioctls, the interrupt thread
 *   run_migrate.c  live migration
 *   run_ring.c     --dirty-ring: the collector harvesting the vCPUs' rings
 *   run_report.c   progress line, summary, JSON
 *   run_verify.c   the end checks
 *
 * Threads talk through atomics only: `ukvm run` adds no lock of its own
 * (it only calls the library, and reads mn_active_invalidate_count under
 * the VM's own mn_invalidate_lock at the end).
 */
#ifndef UKVM_TOOLS_RUN_H
#define UKVM_TOOLS_RUN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "guest/guest.h"
#include "ukvm/ukvm.h"

/* ---- options (run_opts.c) ---- */

struct run_opts {
	int vcpus;
	size_t mem_per_vcpu;
	int slots;
	bool huge, ad_bits, random, overlap;
	int write_percent;
	uint64_t passes;		/* 0: run for duration_s */
	double duration_s;
	uint64_t seed;
	enum ukvm_dirty_mode dirty_mode;
	bool manual_protect, initially_set;
	bool dirty_ring;		/* the dirty ring instead of bitmaps */
	size_t ring_bytes;		/* per vCPU */
	uint64_t halt_every;		/* guests halt every N accesses; 0: never */
	size_t host_mem;		/* 0: sized from the guest memory */
	unsigned int host_cpus;
	bool lockdep;
	const char *json_path, *dot_path;
	bool quiet, demo;
	/* churn */
	bool host_churn, memslot_churn, age, cpu_hotplug, vm_churn;
	bool param_writer, vcpu_ioctls, irqs, migrate;
	unsigned int churn_delay_us;
	unsigned int migrate_rounds;	/* pre-copy round limit per migration */
	unsigned int unsafe_mask;	/* 1 << enum ukvm_unsafe_knob */
	unsigned int watchdog_s;	/* stop sequence + checks time limit */
};

/* 0: go on; 1: done (--help printed); UKVM_EXIT_USAGE: bad usage. */
int run_parse_opts(int argc, char **argv, struct run_opts *o);
void run_opts_describe(const struct run_opts *o, char *buf, size_t len);

/* ---- counters ---- */

enum run_counter {
	RC_HOST_MIGRATE, RC_HOST_SWAP_OUT, RC_HOST_SWAP_IN, RC_HOST_KSM,
	RC_HOST_SPLIT, RC_HOST_DISCARD, RC_HOST_BUSY,
	RC_SPARE_CREATE, RC_SPARE_MOVE, RC_SPARE_FLAGS, RC_SPARE_DELETE,
	RC_LOG_ENABLE, RC_LOG_DISABLE, RC_LOG_ROUNDS, RC_LOG_PAGES,
	RC_AGE_CLEAR, RC_AGE_CLEAR_FLUSH, RC_AGE_TEST, RC_AGE_YOUNG,
	RC_CPU_DOWN, RC_CPU_UP, RC_CPUFREQ, RC_SUSPEND,
	RC_VM_CREATED, RC_VM_ACCESSES, RC_VM_MISMATCH,
	RC_PARAM_WRITES, RC_PARAM_VMS,
	RC_IOCTL_KICKS, RC_IOCTL_ROUNDS, RC_IOCTL_APIC_BASE, RC_IOCTL_HV,
	RC_IOCTL_XEN, RC_IOCTL_TSC, RC_IOCTL_APICV, RC_IOCTL_SHADOW_ROOT,
	RC_IRQ_INJECTED, RC_IRQ_POSTED, RC_IRQ_REACHED, RC_IRQ_ROUTING,
	RC_RING_HARVESTED, RC_RING_PASSES, RC_RING_RESETS, RC_RING_RESET_ENTRIES,
	RC_RING_FULL_WAITS,
	RC_MIG_DONE, RC_MIG_ROUNDS, RC_MIG_PAGES, RC_MIG_DIFF_PAGES,
	RC_MIG_DIFF_BYTES, RC_MIG_DOWNTIME_PAGES, RC_MIG_CONVERGED,
	RC_MIG_THROTTLE_PARKS,
	RC_VCPU_PARKS,
	RC_UNEXPECTED,
	RC_NR
};

/* ---- the run ---- */

struct run_slot {
	uint64_t gpa, npages;
	unsigned long hva;
};

struct run;

struct run_vcpu {
	struct run *run;
	int idx;
	struct kvm_vcpu *vcpu;
	pthread_t thread;
	bool started;
	_Atomic bool active;		/* may be inside or about to enter KVM_RUN */
	_Atomic bool in_run;		/* inside ukvm_vcpu_run() (or about to be) */
	_Atomic bool finished;		/* the guest did its passes (or was stopped) */
	_Atomic bool want_ioctls;	/* set by the vcpu-ioctls thread, then a kick */
	/* owned by the vCPU thread */
	bool apic_disabled, apicv_inhibited;
	uint64_t tsc;
};

#define RUN_MAX_MIG_ROUNDS	256

/* The last migration, for the report (written by the migration thread,
 * read after it has been joined). */
struct run_migration {
	unsigned int rounds;
	uint64_t pages[RUN_MAX_MIG_ROUNDS];	/* [0]: the full copy */
	uint64_t downtime_pages;
	uint64_t diff_pages, diff_bytes;
	double downtime_ms;
	unsigned int max_throttle;		/* auto-converge, % parked */
};

#define RUN_MAX_STATS		160

enum run_thread_kind {
	RT_HOST, RT_MEMSLOT, RT_AGE, RT_HOTPLUG, RT_VM, RT_PARAM, RT_IOCTLS,
	RT_IRQ, RT_MIGRATE, RT_RING, RT_NR
};

struct run_ring;

struct run {
	struct run_opts o;
	struct kvm *kvm;
	struct run_slot *slots;
	int nr_slots;
	uint64_t guest_pages;
	struct guest_workload *w;
	struct run_vcpu *vcpus;
	struct run_ring *ring;		/* --dirty-ring (run_ring.c) */
	double t_start;

	/* stop protocol */
	_Atomic bool deadline;		/* the main loop is over: finish up */
	_Atomic bool pause_vcpus;	/* vCPUs park outside KVM_RUN */
	_Atomic bool stop_vcpus;	/* vCPU threads return */
	_Atomic bool stop_churn;	/* churn threads return */

	pthread_t threads[RT_NR];
	bool thread_started[RT_NR];

	/* the last --vm-churn VM, left alive for the end checks */
	struct kvm *churn_vm;
	unsigned long churn_vm_hva;

	struct run_migration mig;
	_Atomic unsigned long ctr[RC_NR];

	/* the summary, gathered by run_report_collect() */
	struct run_stat {
		const char *section, *name;
		unsigned long long value;
	} stats[RUN_MAX_STATS];
	int nr_stats;
	double elapsed;

	/* where the header, progress and report go (stderr with --json -) */
	FILE *out;

	/* progress line */
	double last_tick;
	unsigned long long last_acc, last_pf, last_pf_fast;
	bool progress_shown;
};

static inline void run_count(struct run *r, enum run_counter c, unsigned long n)
{
	atomic_fetch_add_explicit(&r->ctr[c], n, memory_order_relaxed);
}

static inline unsigned long run_ctr(struct run *r, enum run_counter c)
{
	return atomic_load_explicit(&r->ctr[c], memory_order_relaxed);
}

/* An error the run did not expect: counted (a check), the first few printed. */
void run_unexpected(struct run *r, const char *what, int err);

/* Helpers (cmd_run.c) */
double run_now(void);
void run_sleep_us(unsigned long us);
static inline uint64_t run_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}
int run_start_thread(struct run *r, enum run_thread_kind k, const char *name,
		     void *(*fn)(void *));

/* ---- the VM and vCPUs (run_vm.c) ---- */

#define RUN_GUEST_GPA		(1ULL << 32)	/* guest memory starts at 4 GiB */

int run_vm_create(struct run *r);
void run_vm_destroy(struct run *r);
int run_vcpus_start(struct run *r);
void run_vcpus_join(struct run *r);
/* Park every vCPU outside KVM_RUN (or, @forever, make them return). */
void run_vcpus_stop(struct run *r, bool forever);
void run_vcpus_resume(struct run *r);
bool run_vcpus_all_finished(struct run *r);
int run_set_logging(struct run *r, bool on);
int run_host_read64(void *arg, uint64_t gpa, uint64_t *v);

/* ---- dirty logging (run_dirty.c) ---- */

/* Called for each slot after its log was taken (and cleared). */
typedef void (*run_dirty_fn)(struct run *r, int slot, const unsigned long *bitmap,
			     void *arg);
/* One round: close it, GET (+ CLEAR) every slot, record, check.  Returns the
 * number of dirty pages, or a negative errno.  With the dirty ring, the
 * collector's ROUND and the pages published since the last round. */
long run_dirty_round(struct run *r, unsigned long *bitmap, run_dirty_fn fn, void *arg);
/* guest_dirty_tracking_begin(), on the collector with the dirty ring. */
void run_dirty_tracking_begin(struct run *r);
unsigned long *run_bitmap_alloc(struct run *r);
void *run_memslot_thread(void *arg);

/* ---- churn threads (run_churn.c) ---- */

void *run_host_thread(void *arg);
void *run_age_thread(void *arg);
void *run_hotplug_thread(void *arg);
void *run_vm_thread(void *arg);
void *run_param_thread(void *arg);
void *run_ioctls_thread(void *arg);
void *run_irq_thread(void *arg);
/* On a vCPU thread, between two KVM_RUNs. */
void run_vcpu_do_ioctls(struct run_vcpu *v);
void run_vcpu_ioctls_restore(struct run_vcpu *v);
/* The last --vm-churn VM, after the end checks. */
void run_churn_vm_destroy(struct run *r);
/* Bring every host CPU back online (after the hotplug thread). */
void run_hotplug_restore(struct run *r);

/* ---- the dirty ring (run_ring.c) ---- */

/* After the vCPUs are created; freed by run_vm_destroy(). */
int run_ring_create(struct run *r);
void run_ring_destroy(struct run *r);
int run_ring_start(struct run *r);
/* Let the collector finish (after every other thread has been joined). */
void run_ring_stop(struct run *r);
void *run_ring_thread(void *arg);
void run_ring_tracking_begin(struct run *r);
long run_ring_round(struct run *r, unsigned long *bitmap, run_dirty_fn fn, void *arg);
/* A vCPU thread after KVM_EXIT_DIRTY_RING_FULL: wait for the collector. */
void run_ring_full(struct run_vcpu *v);
/* Every entry pushed was harvested and reset (unexpected errors if not). */
void run_ring_verify(struct run *r);

/* ---- live migration (run_migrate.c) ---- */

void *run_migrate_thread(void *arg);

/* ---- the end (run_verify.c, run_report.c) ---- */

enum run_check {
	CK_LOST_WRITES, CK_DAMAGE, CK_MISSED_DIRTY, CK_MIGRATION_DIFF,
	CK_POISON, CK_INVARIANTS, CK_VALIDATOR, CK_INVALIDATIONS,
	CK_ERRORS, CK_IDLE, CK_NR
};

struct run_verify {
	struct guest_verify_result gv;
	struct guest_stats gs;
	unsigned long check[CK_NR];
	const char *idle[RT_NR + 4];	/* enabled features that did nothing */
	int nr_idle;
	unsigned long lockdep_errors, lockdep_warnings;
	unsigned long lock_classes, lock_deps;
	unsigned long poison;
	bool pass;
};

extern const char *const run_check_names[CK_NR];

/* Every enabled feature did some work (the main loop waits for it). */
bool run_features_done(struct run *r);
/* Before teardown: guest memory, invalidation balance, feature activity. */
void run_verify_live(struct run *r, struct run_verify *v);
/* After the VMs, before the host goes: writes into freed frames. */
void run_verify_host(struct run *r, struct run_verify *v);
/* After teardown: invariants, validator, errors; sets v->pass. */
void run_verify_final(struct run *r, struct run_verify *v);

void run_progress_tick(struct run *r, bool final);
/* Gather every statistic while the VM still exists. */
void run_report_collect(struct run *r);
void run_report_print(struct run *r, const struct run_verify *v, FILE *f);
int run_report_json(struct run *r, const struct run_verify *v, const char *path);

#endif /* UKVM_TOOLS_RUN_H */
