/* SPDX-License-Identifier: MIT */
/* Private to src/guest. */
#ifndef UKVM_GUEST_GUEST_INTERNAL_H
#define UKVM_GUEST_GUEST_INTERNAL_H

#include "guest/guest.h"

struct guest_workload;

/*
 * One vCPU's guest: its cursor and the access in flight.  Written by its
 * vCPU's thread on every access: a cache line of its own (the array is
 * allocated aligned), so that vCPUs do not bounce each other's lines.
 */
struct guest_vcpu {
	_Alignas(64) struct guest_workload *w;
	int id;
	uint64_t rng;
	uint64_t first, count, pos;	/* its pages: index range and cursor */
	uint64_t seq;			/* last tag sequence written */
	_Atomic uint64_t passes;		/* read by the driver for progress */
	uint64_t cur_index, cur_gfn;
	enum guest_page_class cur_class;
	uint32_t cur_start_round;
	uint64_t since_halt;		/* accesses since the last halt */
	_Atomic uint64_t steps;		/* accesses completed + halts */
	_Atomic bool halted;		/* the last step was a halt */
	_Atomic bool finished;
	/*
	 * Its accesses, by kind: only its vCPU thread counts them (no locked
	 * instruction: a workload-wide counter cost two shared-line RMWs per
	 * guest access); guest_get_stats() sums them.
	 */
	struct {
		_Atomic uint64_t accesses, reads, writes, pattern_writes, halts;
	} stat;
};

/* Count one event of @g's own vCPU thread (plain load and store). */
#define guest_stat_inc(g, field)                                              \
	atomic_store_explicit(&(g)->stat.field,                               \
		atomic_load_explicit(&(g)->stat.field, memory_order_relaxed) + 1, \
		memory_order_relaxed)

struct guest_workload {
	struct guest_config cfg;
	struct guest_region *regions;
	uint64_t *first_index;		/* page index of each region's first page */
	uint64_t total_pages;
	uint64_t nv;			/* vCPUs */
	struct guest_vcpu *vcpus;
	_Atomic bool stop;

	/* [page * nv + vcpu]: the last tag a vCPU wrote in its word (0: none). */
	_Atomic uint64_t *expected;
	/* [page]: round window (start << 32 | end) of the last completed write. */
	_Atomic uint64_t *window;
	/* [page]: 1 + the last round whose dirty log contained it (0: never). */
	_Atomic uint32_t *logged;
	/* [page]: the window already counted as missed (counted once). */
	_Atomic uint64_t *checked;
	_Atomic uint32_t round;
	_Atomic uint32_t tracking_start;	/* first round checked (0: off) */
	_Atomic unsigned int mismatch_reports;

	struct {
		_Atomic uint64_t read_mismatches, missed_dirty;
	} stat;
};

static inline uint64_t guest_make_tag(int vcpu, uint64_t seq)
{
	return ((uint64_t)(vcpu + 1) << 56) | (seq & ((1ULL << 56) - 1));
}

uint64_t guest_index_to_gfn(const struct guest_workload *w, uint64_t idx);

#endif /* UKVM_GUEST_GUEST_INTERNAL_H */
