// SPDX-License-Identifier: MIT
/*
 * `ukvm race`: the MMU-notifier protocol (kvm-brief.md 3.3, 3.5): a fault
 * that raced an invalidation must not install its pfn, and a memslot update
 * must not publish between an invalidation's start and its end.
 */
#include <errno.h>

#include "config.h"
#include "kvm/kvm_host.h"
#include "race_harness.h"
#include "sync/bug.h"
#include "x86/mmu/mmu.h"

#define RACE_GPA	0x10000000ULL
#define RACE_PAGES	16
#define PAGE_P		(RACE_GPA + 5 * PAGE_SIZE)
#define SLOT_S		1
#define GPA_S		0x20000000ULL
/* Faults of the stuck gfn observed before the vCPU is kicked out. */
#define STUCK_FAULTS	1000

static unsigned long seq_of(struct kvm *kvm)
{
	return atomic_load(&kvm->mmu_invalidate_seq);
}

/* The frame backing @hva in the host right now (INVALID_PFN if none). */
static unsigned long host_pfn(unsigned long hva)
{
	unsigned long pfn;
	bool w;

	if (hva_to_pfn(host_current_mm, hva, FOLL_FAST_ONLY, &pfn, &w))
		return INVALID_PFN;
	put_page(pfn_to_page(pfn));
	return pfn;
}

/* ====================================================================== */
/* 3. stale-pfn-install                                                    */
/* ====================================================================== */

static const struct race_table_row stale_rows[] = {
	{ -1, "At the beginning: P was never touched: no host page, no SPTE", NULL },
	{ 1, "EPT violation on P:\n"
	     "mmu_seq = mmu_invalidate_seq;\n"
	     "pfn = hva_to_pfn(P);  /* +1 ref */\n"
	     "[stopped at FAULT_AFTER_PFN]", NULL },
	{ 0, "invalidate_range_start(P):\n"
	     "  in_progress++, zap, flush\n"
	     "unmap P, drop the host's reference\n"
	     "invalidate_range_end(P):\n"
	     "  mmu_invalidate_seq++, in_progress--", NULL },
	{ 1, "stale check: mmu_invalidate_seq moved:\n"
	     "  put_page(pfn); RET_PF_RETRY\n"
	     "fault again: a new page, mapped;\n"
	     "the write lands in it",
	     "no stale check: SPTE(P) -> pfn;\n"
	     "put_page(pfn): the last reference,\n"
	     "the frame is freed (and poisoned);\n"
	     "the write lands in the freed frame" },
	{ -1, "VMM reads P through its mapping: the guest's tag is there",
	      "VMM reads P through its mapping: a new zeroed page: the guest's write is\n"
	      "lost, and the frame it went to was written while free" },
};

static const struct race_table stale_table = {
	.nr_cols = 2,
	.cols = { "CPU 0: host (madvise DONTNEED of P)", "CPU 1: vCPU 0 (guest writes P)" },
	.rows = stale_rows,
	.nr_rows = sizeof(stale_rows) / sizeof(stale_rows[0]),
};

/* Hand frames out until @pfn comes back (it is free): its poison is checked. */
static bool allocate_frame(unsigned long pfn)
{
	struct page **held = calloc(host_nr_frames, sizeof(*held));
	unsigned long n = 0;
	bool found = false;

	if (!held)
		return false;
	while (n < host_nr_frames && !found) {
		struct page *p = alloc_page();

		if (!p)
			break;
		held[n++] = p;
		found = page_to_pfn(p) == pfn;
	}
	while (n)
		put_page(held[--n]);
	free(held);
	return found;
}

static enum race_verdict run_stale_pfn_install(struct race_ctx *ctx)
{
	struct race_actor *host, *cpu;
	struct guest_verify_result res = { 0 };
	struct race_madvise_job mj;
	struct race_guest_job gw;
	struct race_vm vm;
	unsigned long pfn = INVALID_PFN, seq0 = 0, retry0 = 0, inv0 = 0, inv5 = 0;
	uint64_t spte = 0;
	bool ok, clean;
	int r;

	r = race_vm_create(&vm, NULL, RACE_GPA, RACE_PAGES, 0);
	if (!r)
		r = race_vm_set_guest(&vm, PAGE_P);
	if (r)
		return race_setup_failed(ctx, &vm, r);
	race_step(ctx, "VMM: VM, slot 0 = %d pages at gpa %#llx; P = gpa %#llx, never touched",
		  RACE_PAGES, RACE_GPA, PAGE_P);
	race_setup_done(ctx);
	host = race_actor_new(ctx, "cpu0-host", "CPU 0");
	cpu = race_actor_new(ctx, "cpu1-vcpu0", "CPU 1");
	gw = (struct race_guest_job){ .vm = &vm };
	mj = (struct race_madvise_job){ .hva = vm.hva + (PAGE_P - RACE_GPA) };

	race_stop_at(cpu, RP_FAULT_AFTER_PFN, 1);
	race_post(cpu, race_job_guest_write, &gw);
	ok = race_wait_parked(cpu, RP_FAULT_AFTER_PFN);
	if (ok) {
		pfn = host_pfn(mj.hva);
		seq0 = seq_of(vm.kvm);
		race_step(ctx, "CPU 1: the guest writes P: EPT violation; the fault read "
			  "mmu_invalidate_seq = %lu and got pfn %#lx from the host (refcount %d: "
			  "the host's mapping and the fault's reference); stopped before mmu_lock",
			  seq0, pfn, pfn_valid(pfn) ? page_count(pfn_to_page(pfn)) : -1);
		race_post(host, race_job_madvise, &mj);
		race_wait_idle(host);
		race_step(ctx, "CPU 0: madvise(DONTNEED) of P: invalidate start/end, "
			  "mmu_invalidate_seq %lu -> %lu; the host unmapped P: pfn %#lx lives on "
			  "through the fault's reference alone (refcount %d)", seq0,
			  seq_of(vm.kvm), pfn, pfn_valid(pfn) ? page_count(pfn_to_page(pfn)) : -1);
		retry0 = atomic_load(&vm.vcpu->stat.pf_retry);
		inv0 = ukvm_invariant_failures();
		race_continue(cpu);
	}
	race_finish(ctx);
	if (ok && !mj.r && !gw.r) {
		inv5 = ukvm_invariant_failures() - inv0;
		spte = race_vm_spte(&vm, PAGE_P);
		if (atomic_load(&vm.vcpu->stat.pf_retry) > retry0)
			race_step(ctx, "CPU 1: the stale check saw the sequence move: reference "
				  "dropped, fault retried (%lu retr%s) and mapped pfn %#llx, which "
				  "the host allocated for P again; the write landed", atomic_load(&vm.vcpu->stat.pf_retry) -
				  retry0, atomic_load(&vm.vcpu->stat.pf_retry) - retry0 == 1 ?
				  "y" : "ies", (unsigned long long)spte_to_pfn(spte));
		else
			race_step(ctx, "CPU 1: no stale check: SPTE(P) -> pfn %#llx installed, "
				  "the reference dropped (refcount %d: %s); the guest write "
				  "landed in that frame", (unsigned long long)spte_to_pfn(spte),
				  page_count(pfn_to_page(pfn)),
				  page_count(pfn_to_page(pfn)) ? "still in use" : "freed");
		r = race_vm_verify(&vm, &res);
		race_step(ctx, "VMM: reads P through its mapping (host pfn now %#lx): %s",
			  host_pfn(mj.hva), res.lost_writes ? "the guest's tag is NOT there" :
			  "the guest's tag is there");
		/* Normally the VMM's read above reused the frame; if not, make it. */
		if (ctx->unsafe && !race_poison_violations(ctx) &&
		    !page_count(pfn_to_page(pfn)) && allocate_frame(pfn))
			race_step(ctx, "host: allocates pfn %#lx again (its poison is checked)",
				  pfn);
	}

	race_finish(ctx);
	ukvm_unsafe_clear_all();
	race_evidence(ctx, "guest verification (src/guest, through the host mapping): "
		      "%llu page checked, %llu lost write%s",
		      (unsigned long long)res.pages_checked,
		      (unsigned long long)res.lost_writes, res.lost_writes == 1 ? "" : "s");
	race_evidence(ctx, "host poison check: %lu write%s into a freed frame (pfn %#lx)",
		      race_poison_violations(ctx),
		      race_poison_violations(ctx) == 1 ? "" : "s", pfn);
	ctx->poison_shown = true;
	if (inv5)
		race_evidence(ctx, "Appendix B 5 (no SPTE installed over a racing "
			      "invalidation): %lu failure%s", inv5, inv5 == 1 ? "" : "s");
	clean = ok && !r && !gw.r && !mj.r && res.pages_checked && !res.lost_writes;
	race_vm_destroy(&vm);
	clean &= race_common_checks(ctx);
	return race_judge(ok && res.lost_writes > 0, clean);
}

const struct race_scenario race_stale_pfn_install = {
	.name = "stale-pfn-install",
	.summary = "a fault installs a pfn the host freed meanwhile: the guest writes a free page",
	.rule = "kvm-brief.md 3.5 (MMU notifiers, fault side): a fault snapshots\n"
		"mmu_invalidate_seq before it looks up the pfn, and under mmu_lock it retries\n"
		"instead of installing if an invalidation covered the gfn or ended since\n"
		"(is_page_fault_stale()).",
	.knob = UNSAFE_NO_STALE_CHECK,
	.table = &stale_table,
	.run = run_stale_pfn_install,
};

/* ====================================================================== */
/* 4. notifier-memslot-imbalance                                           */
/* ====================================================================== */

static const struct race_table_row imbalance_rows[] = {
	{ -1, "At the beginning: slot S maps host page H; the guest does not use S", NULL },
	{ 0, "invalidate_range_start(H):\n"
	     "  mn_active_invalidate_count++\n"
	     "  S overlaps H: in_progress++ (1)\n"
	     "[stopped at MN_START_DONE]", NULL },
	{ 1, "delete S: kvm_swap_active_memslots():\n"
	     "  mn_active_invalidate_count = 1:\n"
	     "  wait for it to drop to 0",
	     "delete S: kvm_swap_active_memslots():\n"
	     "  /* no wait */\n"
	     "  publish the memslots without S\n"
	     "delete done" },
	{ 0, "invalidate_range_end(H):\n"
	     "  S still there: in_progress-- (0)\n"
	     "  count-- (0): wake CPU 1",
	     "invalidate_range_end(H):\n"
	     "  no memslot overlaps H: nothing\n"
	     "  in_progress stays 1\n"
	     "  count-- (0)" },
	{ 1, "publish the memslots without S\n"
	     "delete done", "" },
	{ -1, "S is created again; the guest writes a page of S: one fault, mapped",
	      "S is created again; the guest writes a page of S: in_progress = 1 and\n"
	      "the range covers it: every fault retries, for ever" },
};

static const struct race_table imbalance_table = {
	.nr_cols = 2,
	.cols = { "CPU 0: host (madvise DONTNEED in S)", "CPU 1: VMM (delete memslot S)" },
	.rows = imbalance_rows,
	.nr_rows = sizeof(imbalance_rows) / sizeof(imbalance_rows[0]),
};

/* On the vCPU's thread: count the faults; after STUCK_FAULTS, kick it out. */
struct stuck_hook {
	struct kvm_vcpu *vcpu;
	unsigned long faults;
};

static void stuck_fault_hook(struct race_actor *a, enum ukvm_race_point rp, void *arg)
{
	struct stuck_hook *h = arg;

	(void)a;
	if (rp == RP_FAULT_AFTER_SNAPSHOT && ++h->faults == STUCK_FAULTS)
		ukvm_vcpu_kick_exit(h->vcpu);
}

static enum race_verdict run_notifier_memslot_imbalance(struct race_ctx *ctx)
{
	struct race_actor *host, *vmm, *cpu;
	struct stuck_hook hook = { 0 };
	struct race_madvise_job mj;
	struct race_slot_job sj;
	struct race_guest_job gw;
	struct race_vm vm;
	unsigned long hva_s = 0, retry0 = 0, inv0 = 0, inv = 0;
	long in_progress = -1;
	uint64_t one = 1;
	bool ok, clean, stuck = false;
	int r;

	r = race_vm_create(&vm, NULL, RACE_GPA, RACE_PAGES, 0);
	if (!r) {
		hva_s = ukvm_host_mmap(PAGE_SIZE, 0);
		r = IS_ERR_HVA(hva_s) ? (int)(long)hva_s : 0;
	}
	if (!r)
		r = ukvm_host_write(hva_s, &one, sizeof(one));
	if (!r)
		r = race_set_slot(vm.kvm, SLOT_S, GPA_S, PAGE_SIZE, hva_s, 0);
	if (!r)
		r = race_vm_set_guest(&vm, GPA_S);
	if (r)
		return race_setup_failed(ctx, &vm, r);
	race_step(ctx, "VMM: VM, slot 0 = %d pages at gpa %#llx for the guest; slot S (id %d) "
		  "= 1 page at gpa %#llx over its own host page H, which the VMM touched",
		  RACE_PAGES, RACE_GPA, SLOT_S, GPA_S);
	race_setup_done(ctx);
	host = race_actor_new(ctx, "cpu0-host", "CPU 0");
	vmm = race_actor_new(ctx, "cpu1-vmm", "CPU 1");
	cpu = race_actor_new(ctx, "cpu2-vcpu0", "vCPU 0");
	mj = (struct race_madvise_job){ .hva = hva_s };
	sj = (struct race_slot_job){ .kvm = vm.kvm, .slot = SLOT_S, .gpa = GPA_S };
	gw = (struct race_guest_job){ .vm = &vm };

	race_stop_at(host, RP_MN_START_DONE, 1);
	race_post(host, race_job_madvise, &mj);
	ok = race_wait_parked(host, RP_MN_START_DONE);
	if (ok) {
		race_step(ctx, "CPU 0: madvise(DONTNEED) of H: invalidate_range_start found S: "
			  "mn_active_invalidate_count = %ld, mmu_invalidate_in_progress = %ld; "
			  "stopped before invalidate_range_end", vm.kvm->mn_active_invalidate_count,
			  atomic_load(&vm.kvm->mmu_invalidate_in_progress));
		if (!ctx->unsafe)
			race_stop_at(vmm, RP_SWAP_BEFORE_WAIT, 1);
		race_post(vmm, race_job_set_slot, &sj);
		if (!ctx->unsafe && race_wait_parked(vmm, RP_SWAP_BEFORE_WAIT)) {
			race_continue(vmm);
			race_wait_until(ctx, race_swap_waiting, vm.kvm, "the memslot swap to wait");
			race_step(ctx, "CPU 1: deletes S: the memslot swap waits for "
				  "mn_active_invalidate_count to drop to 0");
		} else {
			race_wait_idle(vmm);
			race_step(ctx, "CPU 1: deleted S (both memslot swaps published) while "
				  "CPU 0 is between start and end");
		}
		race_continue(host);
		race_wait_idle(host);
		race_wait_idle(vmm);
		in_progress = atomic_load(&vm.kvm->mmu_invalidate_in_progress);
		race_step(ctx, "CPU 0: invalidate_range_end: mmu_invalidate_in_progress = %ld, "
			  "mn_active_invalidate_count = %ld%s", in_progress,
			  vm.kvm->mn_active_invalidate_count,
			  ctx->unsafe ? "" : "; CPU 1 woke up and finished the delete");
	}
	if (ok && !mj.r && !sj.r) {
		r = race_set_slot(vm.kvm, SLOT_S, GPA_S, PAGE_SIZE, hva_s, 0);
		race_step(ctx, "VMM: creates S again at gpa %#llx", GPA_S);
		hook.vcpu = vm.vcpu;
		cpu->hook = stuck_fault_hook;
		cpu->hook_arg = &hook;
		retry0 = atomic_load(&vm.vcpu->stat.pf_retry);
		race_post(cpu, race_job_guest_write, &gw);
		race_wait_idle(cpu);
		stuck = hook.faults >= STUCK_FAULTS && gw.exit_reason == KVM_EXIT_INTR;
		if (stuck)
			race_step(ctx, "vCPU 0: the guest writes a page of S: %lu faults, every "
				  "one RET_PF_RETRY (pf_retry +%lu); kicked out (KVM_EXIT_INTR)",
				  hook.faults, atomic_load(&vm.vcpu->stat.pf_retry) - retry0);
		else
			race_step(ctx, "vCPU 0: the guest writes a page of S: %lu fault%s, "
				  "%lu retr%s; the write landed", hook.faults,
				  hook.faults == 1 ? "" : "s",
				  atomic_load(&vm.vcpu->stat.pf_retry) - retry0,
				  atomic_load(&vm.vcpu->stat.pf_retry) - retry0 == 1 ? "y" : "ies");
	}

	race_finish(ctx);
	ukvm_unsafe_clear_all();
	inv0 = ukvm_invariant_failures();
	race_vm_destroy(&vm);
	inv = ukvm_invariant_failures() - inv0;
	if (hva_s && !IS_ERR_HVA(hva_s))
		ukvm_host_munmap(hva_s, PAGE_SIZE);
	race_evidence(ctx, "UKVM_INVARIANT at VM destruction (Appendix B 3, "
		      "in_progress back to 0): %lu failure%s", inv, inv == 1 ? "" : "s");
	race_evidence(ctx, "after the notifier pair: mmu_invalidate_in_progress = %ld; "
		      "the guest's write to S: %s", in_progress, stuck ?
		      "never completes (bounded observation)" : "completed");
	if (!UKVM_DEBUG_CHECKS)
		race_evidence(ctx, "(UKVM_INVARIANT is compiled out: -Ddebug_checks=false)");
	clean = ok && !r && !mj.r && !sj.r && !gw.r && !in_progress && !stuck;
	clean &= race_common_checks(ctx);
	return race_judge(ok && (inv || !UKVM_DEBUG_CHECKS) && in_progress > 0 && stuck,
			  clean);
}

const struct race_scenario race_notifier_memslot_imbalance = {
	.name = "notifier-memslot-imbalance",
	.summary = "a memslot deleted between notifier start and end: in_progress never drops",
	.rule = "locking.rst 1, mn_active_invalidate_count: an invalidate_range_start() and\n"
		"its invalidate_range_end() must see the same memslots, so the memslot update\n"
		"waits for the count of running invalidations to drop to zero before it\n"
		"publishes a new set.",
	.knob = UNSAFE_SWAP_NO_WAIT,
	.table = &imbalance_table,
	.run = run_notifier_memslot_imbalance,
};
