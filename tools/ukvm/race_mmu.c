// SPDX-License-Identifier: MIT
/*
 * `ukvm race`: the dirty-logging races of locking.rst's "Exception" section
 * (the lost Dirty bit, the TLB flush after write-protection), replayed on a
 * real vCPU whose guest's writes are checked by src/guest's dirty-round
 * check and final verification.
 */
#include <errno.h>

#include "hw/hw.h"
#include "kvm/kvm_host.h"
#include "race_harness.h"
#include "x86/mmu/mmu.h"

#define RACE_GPA	0x10000000ULL
#define RACE_PAGES	16
#define PAGE_P		(RACE_GPA + 5 * PAGE_SIZE)

static unsigned long vcpu_ept_violations(struct race_vm *vm)
{
	struct hw_vcpu_stat st;

	hw_vcpu_get_stat(vm->vcpu, &st);
	return st.ept_violations;
}

/* The guest's tags read back through the host mapping (src/guest). */
static bool verify_guest(struct race_ctx *ctx, struct race_vm *vm)
{
	struct guest_verify_result res;
	int r = race_vm_verify(vm, &res);

	if (r) {
		race_evidence(ctx, "guest verification: read failed (%d)", r);
		return false;
	}
	race_evidence(ctx, "guest verification (src/guest, through the host mapping): "
		      "%llu page checked, %llu lost write%s",
		      (unsigned long long)res.pages_checked,
		      (unsigned long long)res.lost_writes,
		      res.lost_writes == 1 ? "" : "s");
	return !res.lost_writes;
}

/* A VM with dirty logging (@cfg) on slot 0; the guest writes P. */
static int dirty_vm_create(struct race_vm *vm, const struct ukvm_vm_config *cfg)
{
	int r = race_vm_create(vm, cfg, RACE_GPA, RACE_PAGES, KVM_MEM_LOG_DIRTY_PAGES);

	return r ? r : race_vm_set_guest(vm, PAGE_P);
}

/* The next round of the VMM's dirty-log loop, checked by the guest. */
static int get_log_step(struct race_ctx *ctx, struct race_vm *vm, bool *logged,
			uint64_t *missed)
{
	int r = race_vm_get_log(vm, logged, missed);

	race_step(ctx, "VMM: GET_DIRTY_LOG: P %s", *logged ? "logged" : "NOT logged");
	return r;
}

static void missed_evidence(struct race_ctx *ctx, uint64_t missed)
{
	race_evidence(ctx, "guest dirty-round check (src/guest): %llu write%s completed "
		      "before the round closed and in no dirty log since",
		      (unsigned long long)missed, missed == 1 ? "" : "s");
}

/*
 * The verdict: the bug is shown when the guest's dirty-round check found
 * @missed writes; correct when nothing was missed, the guest's tags verify
 * and everything else (@clean, the common checks) holds.  Destroys @vm.
 */
static enum race_verdict dirty_verdict(struct race_ctx *ctx, struct race_vm *vm,
				       bool ok, bool clean, uint64_t missed)
{
	clean &= verify_guest(ctx, vm);
	race_vm_destroy(vm);
	clean &= race_common_checks(ctx);
	return race_judge(ok && missed > 0, clean && !missed);
}

/* ====================================================================== */
/* 1. lost-dirty-bit                                                       */
/* ====================================================================== */

static const struct race_table_row lost_dirty_rows[] = {
	{ -1, "At the beginning: GET_DIRTY_LOG has re-armed P: SPTE(P) is writable and\n"
	      "Accessed, not Dirty; no TLB caches it", NULL },
	{ 0, "write_lock(mmu_lock)\n"
	     "age the SPTE (clear Accessed):\n"
	     "  old = *sptep;     /* W A */\n"
	     "[stopped at SPTE_UPDATE_AFTER_READ]", NULL },
	{ 1, "guest writes P: TLB miss, EPT walk;\n"
	     "the A/D assist sets Dirty:\n"
	     "  cmpxchg(sptep, W A, W A D)\n"
	     "the write lands, no VM exit", NULL },
	{ 0, "old = fetch_and(sptep, ~A);\n"
	     "/* SPTE: W D, Dirty kept */\n"
	     "write_unlock(mmu_lock)",
	     "*sptep = old & ~A; /* plain store */\n"
	     "/* SPTE: W, Dirty lost */\n"
	     "write_unlock(mmu_lock)" },
	{ -1, "VMM: GET_DIRTY_LOG harvests the Dirty bits: P is in the log",
	      "VMM: GET_DIRTY_LOG sees no Dirty bit: P is not in the log, its new\n"
	      "contents would never reach the migration destination" },
};

static const struct race_table lost_dirty_table = {
	.nr_cols = 2,
	.cols = { "CPU 0: host aging (clear_young of P)", "CPU 1: vCPU 0 (guest code)" },
	.rows = lost_dirty_rows,
	.nr_rows = sizeof(lost_dirty_rows) / sizeof(lost_dirty_rows[0]),
};

struct age_job {
	unsigned long hva;
	long young;
};

static void job_clear_young(struct race_actor *a, void *arg)
{
	struct age_job *j = arg;

	(void)a;
	j->young = host_clear_young(host_current_mm, j->hva, PAGE_SIZE);
}

static enum race_verdict run_lost_dirty_bit(struct race_ctx *ctx)
{
	const struct ukvm_vm_config cfg = { .dirty_mode = UKVM_DIRTY_DBIT };
	struct race_actor *host, *cpu;
	struct race_guest_job gw;
	struct age_job age;
	struct race_vm vm;
	uint64_t missed = 0;
	bool logged = false, ok;
	char s[96];
	int r;

	r = dirty_vm_create(&vm, &cfg);
	if (r)
		return race_setup_failed(ctx, &vm, r);
	race_step(ctx, "VMM: VM with Dirty-bit logging (PML-like) and EPT A/D bits; slot 0 = "
		  "%d pages at gpa %#llx, dirty logging on; P = gpa %#llx",
		  RACE_PAGES, RACE_GPA, PAGE_P);
	race_setup_done(ctx);
	host = race_actor_new(ctx, "cpu0-host-aging", "CPU 0");
	cpu = race_actor_new(ctx, "cpu1-vcpu0", "CPU 1");
	gw = (struct race_guest_job){ .vm = &vm };
	age = (struct age_job){ .hva = vm.hva + (PAGE_P - RACE_GPA) };

	race_post(cpu, race_job_guest_write, &gw);
	race_wait_idle(cpu);
	race_step(ctx, "CPU 1: the guest writes P: EPT violation, mapped: SPTE %s",
		  race_spte_str(race_vm_spte(&vm, PAGE_P), s, sizeof(s)));
	r = gw.r ? gw.r : race_vm_get_log(&vm, &logged, NULL);
	race_step(ctx, "VMM: GET_DIRTY_LOG: P %slogged, re-armed: SPTE %s",
		  logged ? "" : "NOT ", race_spte_str(race_vm_spte(&vm, PAGE_P), s, sizeof(s)));
	race_vm_track_dirty(&vm);

	race_stop_at(host, RP_SPTE_UPDATE_AFTER_READ, 1);
	race_post(host, job_clear_young, &age);
	ok = race_wait_parked(host, RP_SPTE_UPDATE_AFTER_READ) && !r;
	if (ok) {
		race_step(ctx, "CPU 0: host_clear_young(P) -> KVM's aging, mmu_lock held for "
			  "write: read SPTE %s, stopped before the store",
			  race_spte_str(race_vm_spte(&vm, PAGE_P), s, sizeof(s)));
		race_post(cpu, race_job_guest_write, &gw);
		race_wait_idle(cpu);
		race_step(ctx, "CPU 1: the guest writes P again: no VM exit, the EPT walk "
			  "set Dirty: SPTE %s",
			  race_spte_str(race_vm_spte(&vm, PAGE_P), s, sizeof(s)));
		race_continue(host);
	}
	race_finish(ctx);
	if (ok) {
		race_step(ctx, "CPU 0: %s: SPTE %s",
			  ctx->unsafe ? "plain store of the value read before (knob "
					"NONATOMIC_SPTE)" : "atomic fetch-and",
			  race_spte_str(race_vm_spte(&vm, PAGE_P), s, sizeof(s)));
		r = get_log_step(ctx, &vm, &logged, &missed);
	}

	race_finish(ctx);
	ukvm_unsafe_clear_all();
	missed_evidence(ctx, missed);
	return dirty_verdict(ctx, &vm, ok, ok && !r && !gw.r && logged, missed);
}

const struct race_scenario race_lost_dirty_bit = {
	.name = "lost-dirty-bit",
	.summary = "aging clears Accessed while the CPU sets Dirty: a non-atomic store loses Dirty",
	.rule = "locking.rst 2 (Exception), \"Dirty bit tracking\": an SPTE whose bits can\n"
		"change without mmu_lock (here the CPU's Dirty bit) must be updated with an\n"
		"atomic read-modify-write, even by a writer holding mmu_lock for write.",
	.knob = UNSAFE_NONATOMIC_SPTE,
	.table = &lost_dirty_table,
	.run = run_lost_dirty_bit,
};

/* ====================================================================== */
/* 2. missed-tlb-flush                                                     */
/* ====================================================================== */

static const struct race_table_row tlb_rows[] = {
	{ -1, "At the beginning: the guest wrote P: P is dirty and writable, and CPU 1's\n"
	      "TLB caches P writable", NULL },
	{ 0, "write_lock(mmu_lock)\n"
	     "mask = xchg(&bitmap[P], 0);  /* P */\n"
	     "clear W in SPTE(P)\n"
	     "write_unlock(mmu_lock)\n"
	     "[stopped at WRPROT_BEFORE_FLUSH]", NULL },
	{ 1, "guest writes P through its TLB\n"
	     "/* harmless: P is in this log */", NULL },
	{ 0, "kvm_flush_remote_tlbs_memslot()\n"
	     "return the log: P",
	     "/* no flush */\n"
	     "return the log: P" },
	{ 1, "guest writes P again: TLB flushed,\n"
	     "EPT violation -> fast page fault:\n"
	     "cmpxchg sets W, mark_page_dirty(P)",
	     "guest writes P again through the\n"
	     "stale writable TLB entry:\n"
	     "no VM exit, nothing logged" },
	{ -1, "next GET_DIRTY_LOG: P is in the log",
	      "next GET_DIRTY_LOG: P is not in the log: the second write never migrates" },
};

static const struct race_table tlb_table = {
	.nr_cols = 2,
	.cols = { "CPU 0: VMM (KVM_GET_DIRTY_LOG)", "CPU 1: vCPU 0 (guest code)" },
	.rows = tlb_rows,
	.nr_rows = sizeof(tlb_rows) / sizeof(tlb_rows[0]),
};

static enum race_verdict run_missed_tlb_flush(struct race_ctx *ctx)
{
	const struct ukvm_vm_config cfg = { .dirty_mode = UKVM_DIRTY_WRPROT };
	unsigned long hits, viol, fast, inv_before = 0, inv_after = 0;
	struct race_actor *vmm, *cpu;
	struct race_guest_job gw;
	struct race_log_job lj;
	struct race_vm vm;
	uint64_t missed = 0;
	bool logged = false, ok;
	char s[96];
	int r;

	r = dirty_vm_create(&vm, &cfg);
	if (r)
		return race_setup_failed(ctx, &vm, r);
	race_step(ctx, "VMM: VM with write-protection dirty logging; slot 0 = %d pages at "
		  "gpa %#llx, dirty logging on; P = gpa %#llx", RACE_PAGES, RACE_GPA, PAGE_P);
	race_setup_done(ctx);
	vmm = race_actor_new(ctx, "cpu0-vmm", "CPU 0");
	cpu = race_actor_new(ctx, "cpu1-vcpu0", "CPU 1");
	gw = (struct race_guest_job){ .vm = &vm };
	lj = (struct race_log_job){ .vm = &vm };

	race_post(cpu, race_job_guest_write, &gw);
	race_wait_idle(cpu);
	race_step(ctx, "CPU 1: the guest writes P: EPT violation, mapped: SPTE %s; "
		  "its TLB now caches P writable",
		  race_spte_str(race_vm_spte(&vm, PAGE_P), s, sizeof(s)));

	race_stop_at(vmm, RP_WRPROT_BEFORE_FLUSH, 1);
	race_post(vmm, race_job_get_log, &lj);
	ok = race_wait_parked(vmm, RP_WRPROT_BEFORE_FLUSH) && !gw.r;
	if (ok) {
		race_step(ctx, "CPU 0: GET_DIRTY_LOG: P harvested and write-protected "
			  "(SPTE %s), mmu_lock dropped; stopped before the TLB flush",
			  race_spte_str(race_vm_spte(&vm, PAGE_P), s, sizeof(s)));
		hits = race_hits(cpu, RP_GUEST_TLB_HIT);
		viol = vcpu_ept_violations(&vm);
		race_post(cpu, race_job_guest_write, &gw);
		race_wait_idle(cpu);
		race_step(ctx, "CPU 1: the guest writes P: %s",
			  race_hits(cpu, RP_GUEST_TLB_HIT) > hits &&
			  vcpu_ept_violations(&vm) == viol ?
			  "through its TLB, no VM exit (P is in this log)" :
			  "VM exit (unexpected: the TLB entry was gone)");
		inv_before = ukvm_invariant_failures();
		race_continue(vmm);
	}
	race_finish(ctx);
	if (ok && !lj.r) {
		inv_after = ukvm_invariant_failures();
		race_step(ctx, "CPU 0: %s; GET_DIRTY_LOG returns, P %s",
			  ctx->unsafe ? "no TLB flush (knob NO_WRPROT_FLUSH)" :
			  "remote TLB flush of the slot", lj.logged ? "in the log" : "NOT in the log");
		race_vm_track_dirty(&vm);
		hits = race_hits(cpu, RP_GUEST_TLB_HIT);
		viol = vcpu_ept_violations(&vm);
		fast = atomic_load(&vm.vcpu->stat.pf_fast);
		race_post(cpu, race_job_guest_write, &gw);
		race_wait_idle(cpu);
		if (vcpu_ept_violations(&vm) > viol)
			race_step(ctx, "CPU 1: the guest writes P again: EPT violation, %s: SPTE %s",
				  atomic_load(&vm.vcpu->stat.pf_fast) > fast ?
				  "the fast page fault set W and logged P" : "fault",
				  race_spte_str(race_vm_spte(&vm, PAGE_P), s, sizeof(s)));
		else
			race_step(ctx, "CPU 1: the guest writes P again: %s, no VM exit",
				  race_hits(cpu, RP_GUEST_TLB_HIT) > hits ?
				  "through the stale writable TLB entry" : "no fault");
		r = get_log_step(ctx, &vm, &logged, &missed);
	}

	race_finish(ctx);
	ukvm_unsafe_clear_all();
	missed_evidence(ctx, missed);
	if (inv_after > inv_before)
		race_evidence(ctx, "Appendix B 9 (write access removed, not flushed, when the "
			      "log is returned): %lu failure%s at the racing GET_DIRTY_LOG",
			      inv_after - inv_before, inv_after - inv_before == 1 ? "" : "s");
	return dirty_verdict(ctx, &vm, ok, ok && !r && !gw.r && !lj.r && logged, missed);
}

const struct race_scenario race_missed_tlb_flush = {
	.name = "missed-tlb-flush",
	.summary = "GET_DIRTY_LOG write-protects P but does not flush: later writes go unlogged",
	.rule = "locking.rst 2 (Exception), \"flush tlbs due to spte updated\": once a\n"
		"writable SPTE is made read-only, every TLB must be flushed before the result\n"
		"(a dirty log, a write-protected page) is relied on.",
	.knob = UNSAFE_NO_WRPROT_FLUSH,
	.table = &tlb_table,
	.run = run_missed_tlb_flush,
};
