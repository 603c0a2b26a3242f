/* SPDX-License-Identifier: MIT */
/*
 * The harness behind `ukvm race`.
 *
 * Actors.  Every thread of a scenario (a vCPU, the VMM, the host kernel) is
 * an actor: a ukvm thread with a thread-local identity that runs the jobs
 * the script posts to it, one at a time.  The race-point handler installed
 * with ukvm_race_arm() sees every RACE_POINT() any thread reaches; for an
 * actor it counts the hit, runs the actor's hook, and — if the script armed
 * a stop for that point — parks the actor there until the script releases
 * it.  Nothing else decides the interleaving: no sleeps, no timing.
 *
 * The script (the main thread) waits for exact states: an actor parked at a
 * point, an actor idle again, or a predicate over the state of the code under
 * test (a queued rwsem writer, a memslot writer waiting for the notifier
 * count, a dependency the validator recorded for a thread that is about to
 * block).  All handshakes go through one pthread mutex and condition
 * variable (or atomics), so ThreadSanitizer sees every hand-over.
 *
 * Output.  A scenario prints its CPU0/CPU1 table (what locking.rst's table
 * would show), the steps as they happen, and the outcome with its evidence:
 * which check caught what, with numbers.
 *
 * Below: the harness (race_harness.c), the tables (race_table.c), the
 * scenario descriptor, and the machine state a scenario sets up
 * (race_vm.c).
 */
#ifndef UKVM_TOOLS_RACE_HARNESS_H
#define UKVM_TOOLS_RACE_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "guest/guest.h"
#include "sync/race.h"
#include "ukvm/ukvm.h"

#define RACE_MAX_ACTORS		6
#define RACE_MAX_COLS		4
#define RACE_MAX_EVIDENCE	24

struct race_ctx;
struct race_actor;

typedef void (*race_job_fn)(struct race_actor *a, void *arg);
/* Called on the actor's thread at every race point it reaches, before a
 * possible stop; no harness lock is held. */
typedef void (*race_hook_fn)(struct race_actor *a, enum ukvm_race_point rp,
			     void *arg);

struct race_actor {
	struct race_ctx *ctx;
	char name[32];			/* thread (and validator task) name */
	const char *label;		/* "CPU0 (host)": used in the steps */
	pthread_t thread;
	bool started;

	/* Under ctx->mu. */
	race_job_fn job;
	void *job_arg;
	unsigned long posted, done;	/* jobs posted / finished */
	bool quit;
	int stop_rp, stop_nth;		/* armed stop (-1: none) */
	int parked;			/* point + 1 while parked, else 0 */
	bool release;
	unsigned int hits[RP_NR];
	unsigned int shown[RP_NR];	/* --verbose: hits printed */

	race_hook_fn hook;		/* set before a job is posted */
	void *hook_arg;
};

/* What a run showed. */
enum race_verdict {
	RACE_CORRECT,		/* the protection held: the outcome is correct */
	RACE_BUG,		/* the bug happened and a check caught it */
	RACE_BROKEN,		/* neither: set-up failed, or wrong on both counts */
	RACE_SKIPPED,
};

struct race_ctx {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct race_actor actors[RACE_MAX_ACTORS];
	int nr_actors;

	const char *name;
	bool unsafe, verbose, quiet, tap;
	FILE *out;			/* stdout */
	int step;			/* steps printed so far */

	/* The validator's reports of this run, captured. */
	FILE *lockdep_stream;
	char *lockdep_text;
	size_t lockdep_len;
	unsigned long poison_base;	/* host poison violations before the run */

	unsigned long setup_errors, setup_warnings;	/* reports before the race */
	bool validator_shown, poison_shown;	/* already in the evidence */

	char *evidence[RACE_MAX_EVIDENCE];
	int nr_evidence;
	const char *what;		/* what the script is waiting for (watchdog) */
};

/* ---- life of a run ---- */

/* Reset the validator, the invariant counters and the knobs; capture reports. */
void race_ctx_init(struct race_ctx *ctx, const char *name, bool unsafe,
		   bool verbose, bool quiet, bool tap);
/*
 * The machine state is set up: from here on only what the scenario's
 * threads do counts for the validator (the set-up's reports are kept for
 * race_common_checks(), its dependencies forgotten, so that a report names
 * the threads of the race).
 */
void race_setup_done(struct race_ctx *ctx);
/* Join every actor, disarm, clear the knobs, stop capturing; free evidence. */
void race_ctx_fini(struct race_ctx *ctx);
/* Stop capturing the validator's output (the text stays in lockdep_text). */
void race_ctx_end_capture(struct race_ctx *ctx);

/* ---- actors ---- */

struct race_actor *race_actor_new(struct race_ctx *ctx, const char *name,
				  const char *label);
/* Arm a stop at the @nth next hit of @rp (counting from now). */
void race_stop_at(struct race_actor *a, enum ukvm_race_point rp, int nth);
void race_post(struct race_actor *a, race_job_fn fn, void *arg);
/* Wait until @a is parked at @rp; false (and a message) if its job ended. */
bool race_wait_parked(struct race_actor *a, enum ukvm_race_point rp);
void race_continue(struct race_actor *a);
void race_wait_idle(struct race_actor *a);
bool race_actor_idle(struct race_actor *a);
/*
 * End of the script: disarm every stop, release every parked actor and wait
 * until all are idle.  A no-op when the script went as planned; on a
 * failure path it lets the threads finish instead of hanging the run.
 */
void race_finish(struct race_ctx *ctx);
unsigned int race_hits(struct race_actor *a, enum ukvm_race_point rp);
/* The actor running on this thread, or NULL. */
struct race_actor *race_self(void);

/* Wait (yielding) until @pred(@arg) holds; @what names it for the watchdog. */
void race_wait_until(struct race_ctx *ctx, bool (*pred)(void *arg), void *arg,
		     const char *what);

/*
 * True once the validator has recorded the dependency @from -> @to (class
 * names): the acquisition of @to by a thread holding @from was validated,
 * and that thread now blocks in it (or is about to).  False without lockdep.
 */
bool race_dep_recorded(const char *from, const char *to);
void race_wait_dep(struct race_ctx *ctx, const char *from, const char *to);

/* ---- output ---- */

void race_step(struct race_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void race_evidence(struct race_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One row of a CPU0/CPU1 table: @col is the column, -1 for a full-width row.
 * @unsafe_text replaces @text in the unsafe run (NULL: the same text). */
struct race_table_row {
	int col;
	const char *text;
	const char *unsafe_text;
};

struct race_table {
	int nr_cols;
	const char *cols[RACE_MAX_COLS];
	const struct race_table_row *rows;
	int nr_rows;
};

void race_print_table(FILE *f, const struct race_table *t, bool unsafe,
		      const char *prefix);
/* Print @text line by line, each line preceded by @prefix. */
void race_print_prefixed(FILE *f, const char *text, const char *prefix);

/*
 * Evidence every run reports: the validator's errors and warnings, the
 * UKVM_INVARIANT failures, the host's poison violations (the first and the
 * last unless the scenario reported them itself: validator_shown,
 * poison_shown).  Returns true if all are zero.
 */
bool race_common_checks(struct race_ctx *ctx);
/*
 * The lock validator's verdict, as evidence (then not repeated by
 * race_common_checks()): its circular-dependency reports (@note follows
 * their count), documented-order violations, errors and warnings in all.
 * Returns the number of circular-dependency reports.
 */
unsigned long race_validator_evidence(struct race_ctx *ctx, const char *note);
/* --verbose: how often each actor reached each race point. */
void race_print_hits(struct race_ctx *ctx, const char *prefix);
unsigned long race_poison_violations(struct race_ctx *ctx);

/* ---- scenarios ---- */

/*
 * The scenarios of `ukvm race`: one interleaving of locking.rst each, run as
 * ukvm does it (the protection in place) and with --unsafe (one knob of
 * src/sync/race.h removes exactly that protection).
 */

struct race_scenario {
	const char *name;
	const char *summary;		/* one line, for `ukvm race list` */
	const char *rule;		/* the rule of locking.rst, in our words */
	int knob;			/* enum ukvm_unsafe_knob, -1 if none */
	const char *skip;		/* why it can never run here, or NULL */
	const char *tsan_unsafe_skip;	/* why the unsafe run cannot run under TSan */
	bool needs_lockdep;		/* judged (or kept from hanging) by it */
	bool legacy_unsafe;		/* the unsafe run needs legacy_usage */
	const struct race_table *table;
	/* Set up, replay the interleaving (ctx->unsafe: knob on), tear down. */
	enum race_verdict (*run)(struct race_ctx *ctx);
};

/* race_mmu.c: dirty logging */
extern const struct race_scenario race_lost_dirty_bit;
extern const struct race_scenario race_missed_tlb_flush;
/* race_inval.c: the MMU-notifier protocol */
extern const struct race_scenario race_stale_pfn_install;
extern const struct race_scenario race_notifier_memslot_imbalance;
/* race_locks.c, race_usage.c: lock order, judged by the validator */
extern const struct race_scenario race_srcu_sync_in_reader;
extern const struct race_scenario race_usage_lock_deadlock;
extern const struct race_scenario race_vcpu_mutex_vs_slots_lock;
extern const struct race_scenario race_notifier_takes_slots_lock;
extern const struct race_scenario race_fast_pf_aba;

/* Verdict of a run from what its own check saw and whether all else was clean. */
static inline enum race_verdict race_judge(bool bug_caught, bool clean)
{
	if (bug_caught)
		return RACE_BUG;
	return clean ? RACE_CORRECT : RACE_BROKEN;
}

/* ---- machine state (race_vm.c) ---- */

/*
 * The machine state of one `ukvm race` scenario: a VM with a memslot over
 * fresh host memory, one vCPU, and its guest — src/guest's memstress program
 * on one page P, so every write stores a tag and remembers its dirty-log
 * round window, and the checks that guard real runs (the dirty-round check,
 * the final verification through the host mapping) judge the scenario too.
 * Each KVM_RUN executes a given number of guest accesses, then exits.
 */

struct kvm;
struct kvm_vcpu;

struct race_vm {
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	unsigned long hva;		/* slot 0's host memory */
	uint64_t gpa, npages;		/* slot 0 */
	uint32_t flags;
	unsigned long *bitmap;		/* GET_DIRTY_LOG buffer for slot 0 */

	/* The guest: tagged writes to one page (guest_gpa). */
	struct guest_workload *w;
	uint64_t guest_gpa;
	_Atomic int budget;		/* accesses left in this KVM_RUN */
	_Atomic uint64_t completed;	/* accesses done so far */
	bool tracking;			/* dirty-round tracking started */
};

/* VM + slot 0 (@npages at @gpa, @flags) + vCPU 0; 0 or -errno. */
int race_vm_create(struct race_vm *vm, const struct ukvm_vm_config *cfg,
		   uint64_t gpa, uint64_t npages, uint32_t flags);
void race_vm_destroy(struct race_vm *vm);

/* The guest writes page @page_gpa (which may lie in any memslot). */
int race_vm_set_guest(struct race_vm *vm, uint64_t page_gpa);
/* KVM_RUN until the guest did @n more accesses (or was kicked out). */
int race_vm_run(struct race_vm *vm, int n, uint32_t *exit_reason);
/* From now on, every completed write must show up in a later dirty log. */
void race_vm_track_dirty(struct race_vm *vm);
/*
 * One round of the VMM's dirty-log loop over slot 0: close the round,
 * GET_DIRTY_LOG, record it, check it.  *@logged: P was in the log;
 * *@missed: the guest writes the check found missing.
 */
int race_vm_get_log(struct race_vm *vm, bool *logged, uint64_t *missed);
/* Read P through the host mapping and compare with the guest's tags. */
int race_vm_verify(struct race_vm *vm, struct guest_verify_result *res);

/* The SPTE that maps @gpa for the vCPU (0 if none); the vCPU must be idle. */
uint64_t race_vm_spte(struct race_vm *vm, uint64_t gpa);
/* "W A D"-style description of an SPTE, in @buf. */
const char *race_spte_str(uint64_t spte, char *buf, size_t len);

/* The VMM side of a memslot: KVM_SET_USER_MEMORY_REGION. */
int race_set_slot(struct kvm *kvm, int slot, uint64_t gpa, uint64_t size,
		  unsigned long hva, uint32_t flags);

/* A set-up that failed with @r: the evidence, @vm destroyed; RACE_BROKEN. */
enum race_verdict race_setup_failed(struct race_ctx *ctx, struct race_vm *vm, int r);

/* ---- jobs the scenarios share (race_vm.c): race_post(a, job, &its_struct) ---- */

/* The vCPU: KVM_RUN for one guest access (race_vm_run()). */
struct race_guest_job {
	struct race_vm *vm;
	int r;
	uint32_t exit_reason;
};
void race_job_guest_write(struct race_actor *a, void *arg);

/* The VMM: one round of its dirty-log loop (race_vm_get_log()). */
struct race_log_job {
	struct race_vm *vm;
	bool logged;
	int r;
};
void race_job_get_log(struct race_actor *a, void *arg);

/* The host: madvise(MADV_DONTNEED) of the page at @hva. */
struct race_madvise_job {
	unsigned long hva;
	int r;
};
void race_job_madvise(struct race_actor *a, void *arg);

/* The VMM: memslot @slot = @size bytes at @gpa over @hva (size 0: delete). */
struct race_slot_job {
	struct kvm *kvm;
	int slot;
	uint64_t gpa, size;
	unsigned long hva;
	int r;
};
void race_job_set_slot(struct race_actor *a, void *arg);
/* The job for a memslot of one fresh host page; 0 or -errno. */
int race_slot_job_init(struct race_slot_job *j, struct kvm *kvm, int slot, uint64_t gpa);
/* Unmap that page. */
void race_slot_job_fini(struct race_slot_job *j);

/* race_wait_until() predicate: the memslot swap of the struct kvm @kvm waits
 * for mn_active_invalidate_count to drop to 0. */
bool race_swap_waiting(void *kvm);

#endif /* UKVM_TOOLS_RACE_HARNESS_H */
