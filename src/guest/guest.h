/* SPDX-License-Identifier: MIT */
/*
 * src/guest: what the vCPUs' guests do — memstress-like programs — and the
 * bookkeeping that lets a run prove at the end that nothing was lost.
 *
 * Guest memory is a list of regions (one per memslot).  Pages come in three
 * classes (by gfn):
 *   tag      written by guests: vCPU v stores a tag (v, sequence) in its own
 *            8-byte word (offset 8 * v) of the page, and remembers it;
 *   pattern  filled by the VMM with a per-gfn constant; guests read and check
 *            it and sometimes write the same value again (identical pages:
 *            what KSM merges; a write after a merge is copy-on-write);
 *   scratch  never written by guests, read and expected zero (what the host
 *            may discard with madvise(DONTNEED) or munmap + mmap).
 * A vCPU reading its own word of a tag page checks it at once; after the run,
 * every word of every page is checked through the host mapping.
 *
 * Dirty logging: every write remembers the round window it happened in
 * (the round counter read before the access was issued and after it
 * completed).  The VMM closes a round right before each GET_DIRTY_LOG; a
 * write completed before a round closed must be in one of the logs taken
 * after it started — otherwise it is a missed dirty page.  No assumption
 * about timing is made: only these orderings.
 */
#ifndef UKVM_GUEST_GUEST_H
#define UKVM_GUEST_GUEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ukvm/ukvm.h"

enum guest_page_class {
	GUEST_PAGE_TAG,
	GUEST_PAGE_PATTERN,
	GUEST_PAGE_SCRATCH,
};

struct guest_region {
	uint64_t gpa;
	uint64_t npages;
};

struct guest_config {
	int nr_vcpus;
	const struct guest_region *regions;
	int nr_regions;
	bool overlap;		/* every vCPU walks all pages (else its own share) */
	bool random;		/* random order (else sequential) */
	int write_percent;	/* share of accesses that are writes */
	uint64_t seed;
	uint64_t passes;	/* passes over a vCPU's pages; 0: until stopped */
	int scratch_every;	/* gfn % N == 0: scratch; 0: no scratch pages */
	int pattern_every;	/* gfn % N == N / 2: pattern; 0: none */
	/*
	 * Halt (UKVM_GUEST_HALT: HLT, sleep until an interrupt) after every N
	 * accesses; 0: never.  Only for a VMM that will wake the vCPUs: a
	 * halted vCPU runs again on an interrupt or a kick.
	 */
	uint64_t halt_every;
};

struct guest_workload;

struct guest_workload *guest_workload_create(const struct guest_config *cfg);
void guest_workload_destroy(struct guest_workload *w);

/* The guest of vCPU @v: pass to ukvm_vcpu_set_guest(). */
extern const struct ukvm_guest_ops guest_memstress_ops;
void *guest_vcpu_ctx(struct guest_workload *w, int v);
/* Make every guest finish (next() returns UKVM_GUEST_EXIT). */
void guest_workload_stop(struct guest_workload *w);
bool guest_vcpu_finished(struct guest_workload *w, int v);

/*
 * For a VMM harvesting a dirty ring (tests/mmu/test_mmu_dirty_ring.c): the
 * steps the guest of vCPU @v has made (accesses completed, halts), and
 * whether its last step was a halt (no access in flight, so no page fault
 * in flight either).  A vCPU whose count moved after a moment, or that is
 * halted, has left the page fault it was in at that moment: the fast page
 * fault pushes a ring entry after its cmpxchg, so another vCPU may
 * complete a write through the page before the entry exists, and only
 * once the faulting vCPU has moved on is the entry certainly there.  Both
 * are stored (release) by the vCPU's thread after what it did in the step;
 * the VMM reads them (acquire) after closing its round.
 */
uint64_t guest_vcpu_steps(struct guest_workload *w, int v);
bool guest_vcpu_halted(struct guest_workload *w, int v);

enum guest_page_class guest_page_class(const struct guest_workload *w, uint64_t gfn);
uint64_t guest_pattern_value(uint64_t gfn);

/* VMM: write the pattern pages before the guests start. */
typedef int (*guest_write64_fn)(void *arg, uint64_t gpa, uint64_t value);
typedef int (*guest_read64_fn)(void *arg, uint64_t gpa, uint64_t *value);
int guest_prefill(struct guest_workload *w, guest_write64_fn write, void *arg);

/*
 * Dirty-log verification (see above).  Tracking starts once logging is on
 * (call after enabling it) and ends before logging is turned off (call after
 * the last GET_DIRTY_LOG and its check).  Each round: close it, GET the log
 * of every slot and record it, then check.
 */
void guest_dirty_tracking_begin(struct guest_workload *w);
void guest_dirty_tracking_end(struct guest_workload *w);
uint32_t guest_dirty_round_close(struct guest_workload *w);
void guest_dirty_log_record(struct guest_workload *w, uint64_t base_gfn,
			    const unsigned long *bitmap, uint64_t npages,
			    uint32_t round);
/* Writes completed before @round closed and absent from every log since. */
uint64_t guest_dirty_check(struct guest_workload *w, uint32_t round);

struct guest_verify_result {
	uint64_t pages_checked;
	uint64_t lost_writes;		/* a tag word not holding its last tag */
	uint64_t bad_pattern;		/* a pattern page changed */
	uint64_t bad_scratch;		/* a scratch page not zero */
	uint64_t first_bad_gpa;
};
/* Read every page through @read (quiesced) and compare with what was written. */
int guest_verify(struct guest_workload *w, guest_read64_fn read, void *arg,
		 struct guest_verify_result *res);

struct guest_stats {
	uint64_t accesses, reads, writes, pattern_writes;
	uint64_t read_mismatches;	/* lost writes seen by the guest itself */
	uint64_t missed_dirty;		/* found by guest_dirty_check() */
	uint64_t passes_done;
	uint64_t halts;			/* UKVM_GUEST_HALT steps (halt_every) */
};
void guest_get_stats(struct guest_workload *w, struct guest_stats *st);

#endif /* UKVM_GUEST_GUEST_H */
