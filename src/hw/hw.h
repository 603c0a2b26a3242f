/* SPDX-License-Identifier: MIT */
/*
 * src/hw: the simulated CPU.
 *
 * A vCPU in guest mode executes guest accesses.  Each goes through a small
 * per-vCPU TLB (gfn -> frame, permissions, dirty status); on a miss the EPT
 * walker reads the SPTE tree from the current root with atomic loads, as
 * hardware does, and with A/D bits sets Accessed (and Dirty on a write) on
 * the leaf with a compare-and-exchange (the A/D assist).  A missing or
 * insufficient SPTE is an EPT violation; an MMIO SPTE an EPT
 * misconfiguration.  Between two accesses the vCPU checks for a kick
 * (EXITING_GUEST_MODE): that is the IPI.  The TLB is flushed only on a flush
 * request or a root change, so a missing flush really leaves stale entries.
 *
 * Guest accesses to frames are atomics, so a write through a stale entry
 * into a freed frame loses data instead of crashing.
 */
#ifndef UKVM_HW_HW_H
#define UKVM_HW_HW_H

#include "ukvm/ukvm.h"
#include "x86/mmu/mmu.h"

#define HW_TLB_ENTRIES	256		/* direct-mapped by gfn */
#define HW_QUANTUM	512		/* accesses between timer exits */

#define HW_PERM_R	1
#define HW_PERM_W	2
#define HW_PERM_X	4

struct hw_tlb_entry {
	gfn_t gfn;
	kvm_pfn_t pfn;
	uint8_t perm;
	bool dirty;	/* the leaf's Dirty bit was set when filled */
	bool valid;
};

enum hw_exit_reason {
	HW_EXIT_NONE,
	HW_EXIT_EPT_VIOLATION,
	HW_EXIT_EPT_MISCONFIG,
	HW_EXIT_KICK,		/* EXITING_GUEST_MODE seen: the "IPI" */
	HW_EXIT_QUANTUM,	/* timer */
	HW_EXIT_HALT,
	HW_EXIT_HYPERCALL,
};

struct hw_exit {
	enum hw_exit_reason reason;
	gpa_t gpa;
	uint32_t error_code;	/* PFERR_* of the violation */
};

struct hw_vcpu_stat {
	unsigned long accesses, writes, tlb_hits, tlb_misses, walks, ad_assists;
	unsigned long tlb_flushes, ept_violations, ept_misconfigs, kicks;
	unsigned long quantum_exits, halts, mmio_exits, interrupts, clock_updates;
	unsigned long posted_interrupts;	/* of interrupts: from the PIR */
};

struct hw_vcpu {
	struct kvm_vcpu *vcpu;
	const struct ukvm_guest_ops *ops;
	void *ctx;
	struct ukvm_guest_access pending;	/* the access being executed */
	bool have_pending;
	bool mmio_read_pending;			/* completed by the VMM's run->mmio */
	_Atomic bool exit_requested;
	kvm_pfn_t tlb_root;			/* root the TLB was filled from */
	struct hw_tlb_entry tlb[HW_TLB_ENTRIES];
	struct hw_vcpu_stat stat;		/* owned by the vCPU thread */
};

struct hw_vcpu *hw_vcpu(struct kvm_vcpu *vcpu);
void hw_tlb_flush(struct hw_vcpu *hv);

/* One access in guest mode: 0, or an exit (the access stays pending). */
int hw_guest_access(struct hw_vcpu *hv, struct ukvm_guest_access *a,
		    struct hw_exit *exit);
/* Run guest code until an exit. */
void hw_run_guest(struct hw_vcpu *hv, struct hw_exit *exit);

/* Statistics of a vCPU (racy snapshot; exact once the vCPU is stopped). */
void hw_vcpu_get_stat(struct kvm_vcpu *vcpu, struct hw_vcpu_stat *st);

#endif /* UKVM_HW_HW_H */
