/* SPDX-License-Identifier: MIT */
/*
 * `ukvm diff-kvm`: the same calls on the real /dev/kvm and on ukvm, results
 * compared (docs/diff-kvm.md).  cmd_diff_kvm.c drives, diff_common.c holds
 * the pieces both parts share (the host parameters, a VM pair, reporting),
 * diff_memslot.c generates memslot API sequences, diff_dirty.c runs the
 * tiny guest and ukvm's vCPU over the same writes and compares dirty logs.
 */
#ifndef UKVM_TOOLS_DIFF_KVM_H
#define UKVM_TOOLS_DIFF_KVM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench/realkvm.h"
#include "ukvm/ukvm.h"

/*
 * What ukvm's VMs must be told to behave like this host's KVM: inherent
 * parameters of the kernel and the CPU, measured on the real /dev/kvm.
 */
struct diff_host {
	int nr_memslots;		/* KVM_CAP_NR_MEMSLOTS */
	unsigned int nr_as;		/* memslot address spaces (SMM: 2) */
	unsigned int max_gpa_bits;	/* highest gpa a slot may reach */
	uint64_t hva_limit;		/* highest userspace_addr + memory_size */
	int manual_caps;		/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 */
	int ro_reads;			/* a read logs no page: 1, 0, -1 unknown */
};

/* What was compared, by kind and by the real KVM's result. */
enum diff_kind {
	DK_SET_REGION, DK_ENABLE_CAP, DK_GET_LOG, DK_CLEAR_LOG, DK_CHECK_EXT,
	DK_ACCESS, DK_MMIO, DK_MEMORY, DK_NR
};
enum diff_res { DR_OK, DR_EINVAL, DR_EEXIST, DR_ENOENT, DR_EFAULT, DR_OTHER, DR_NR };

/* One part's tally. */
struct diff_stats {
	uint64_t calls;			/* calls (or checks) compared */
	uint64_t disagreements;
	uint64_t sequences;
	uint64_t by[DK_NR][DR_NR];
	uint64_t dirty_bits;		/* set bits in the bitmaps compared */
};

/* Count one call of @kind whose real result was @r (0 or -errno). */
void diff_count(struct diff_stats *st, enum diff_kind kind, int r);
void diff_stats_print(const struct diff_stats *st, const char *prefix);

struct diff_ctx {
	uint64_t seed;
	uint64_t calls;			/* budget of each part */
	int verbose;			/* 1: every disagreement; 2: every call */
	bool tap;
	unsigned int max_printed;	/* disagreements printed in full */
	unsigned int printed;
	struct diff_host host;
	struct ukvm_vm_config vm_cfg;	/* ukvm's VMs: set from @host */
	uint64_t seq;			/* the running sequence, for reports */
	int64_t only_seq;		/* --sequence: just this one (else -1) */
};

/* xorshift64*: seeded, reproducible. */
struct diff_rng {
	uint64_t s;
};

void diff_rng_seed(struct diff_rng *r, uint64_t seed);
uint64_t diff_rand(struct diff_rng *r);
/* Uniform in [0, n), n > 0. */
uint64_t diff_below(struct diff_rng *r, uint64_t n);
/* True with probability pct / 100. */
bool diff_pct(struct diff_rng *r, unsigned int pct);

/* Measure @h on the real KVM; 0 or -errno (with *why). */
int diff_host_probe(struct diff_host *h, char *why, size_t len);
void diff_host_print(const struct diff_host *h);

/* A real VM and a ukvm VM configured like it. */
struct diff_pair {
	struct realkvm_vm real;
	struct kvm *ukvm;
};

int diff_pair_create(struct diff_ctx *c, struct diff_pair *p);
void diff_pair_destroy(struct diff_pair *p);

/* A result as text: "0", "-EINVAL", ... (one of 4 rotating buffers). */
const char *diff_err(int r);
/* Format a call for reports. */
void diff_fmt_region(char *buf, size_t len, const struct kvm_userspace_memory_region *m);

/*
 * Count one compared call; when @agree is false, count a disagreement and
 * print the call and both results (the first max_printed, or all with
 * --verbose).  Returns @agree.
 */
bool diff_check(struct diff_ctx *c, struct diff_stats *st, bool agree,
		const char *call, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/*
 * A call made on both sides, named @call: count it by the real result @rr
 * (diff_count()); with --verbose twice, print it.
 */
void diff_call(struct diff_ctx *c, struct diff_stats *st, enum diff_kind kind,
	       const char *call, int rr);
/* diff_call(), then compare the real result @rr with ukvm's @ur (diff_check()). */
bool diff_results(struct diff_ctx *c, struct diff_stats *st, enum diff_kind kind,
		  const char *call, int rr, int ur);
/* Count the dirty bits of the first @len bytes of a returned bitmap. */
void diff_count_dirty(struct diff_stats *st, const uint8_t *bitmap, size_t len);
/* KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2, @args0) on both VMs of @p, compared. */
bool diff_pair_enable_manual(struct diff_ctx *c, struct diff_stats *st,
			     struct diff_pair *p, uint64_t args0);

/* The two parts: each runs until @c->calls calls have been compared. */
int diff_memslot_run(struct diff_ctx *c, struct diff_stats *st);
int diff_dirty_run(struct diff_ctx *c, struct diff_stats *st);

#endif /* UKVM_TOOLS_DIFF_KVM_H */
