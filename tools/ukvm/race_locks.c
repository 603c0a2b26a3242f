// SPDX-License-Identifier: MIT
/*
 * `ukvm race`: the lock-order rules of locking.rst section 1, judged by the
 * lock validator: synchronize_srcu() inside slots_lock vs slots_lock inside
 * a kvm->srcu reader, vcpu->mutex outside slots_lock, MMU notifiers that
 * must not take slots_lock.  (The kvm_usage_lock deadlock is race_usage.c.)
 */
#include <errno.h>

#include "kvm/kvm_host.h"
#include "race_harness.h"
#include "x86/mmu/mmu.h"

#define RACE_GPA	0x10000000ULL
#define RACE_PAGES	16
#define GPA_SLOT1	0x20000000ULL

/* ====================================================================== */
/* 5. srcu-sync-in-reader                                                  */
/* ====================================================================== */

static const struct race_table_row srcu_rows[] = {
	{ 0, "mutex_lock(slots_lock)\n"
	     "publish the new memslots\n"
	     "synchronize_srcu(&kvm->srcu)\n"
	     "mutex_unlock(slots_lock)", NULL },
	{ 1, "srcu_read_lock(&kvm->srcu)\n"
	     "mutex_lock(slots_arch_lock)\n"
	     "  memslot arch data\n"
	     "mutex_unlock(slots_arch_lock)\n"
	     "srcu_read_unlock(&kvm->srcu)",
	     "srcu_read_lock(&kvm->srcu)\n"
	     "mutex_lock(slots_lock)\n"
	     "  memslot arch data\n"
	     "mutex_unlock(slots_lock)\n"
	     "srcu_read_unlock(&kvm->srcu)" },
	{ -1, "slots_arch_lock is dropped before synchronize_srcu(): a reader waiting for it\n"
	      "always gets it.  No cycle, nothing to report.",
	      "Had the two overlapped, CPU 0 would hold slots_lock and wait for CPU 1 to\n"
	      "leave its reader, and CPU 1 would wait for slots_lock: a deadlock.  Run one\n"
	      "after the other, nothing hangs, and the validator reports it anyway." },
};

static const struct race_table srcu_table = {
	.nr_cols = 2,
	.cols = { "CPU 0: VMM (KVM_SET_USER_MEMORY_REGION)",
		  "CPU 1: vCPU 0 (first shadow root, in KVM_RUN)" },
	.rows = srcu_rows,
	.nr_rows = sizeof(srcu_rows) / sizeof(srcu_rows[0]),
};

struct vcpu_job {
	struct kvm_vcpu *vcpu;
	int r;
};

static void job_first_shadow_root(struct race_actor *a, void *arg)
{
	struct vcpu_job *j = arg;

	(void)a;
	j->r = kvm_x86_vcpu_first_shadow_root(j->vcpu);
}

static enum race_verdict run_srcu_sync_in_reader(struct race_ctx *ctx)
{
	struct race_actor *vmm, *cpu;
	struct vcpu_job vj;
	struct race_slot_job sj = { 0 };
	struct race_vm vm;
	bool bug, clean;
	int r;

	r = race_vm_create(&vm, NULL, RACE_GPA, RACE_PAGES, 0);
	if (!r)
		r = race_slot_job_init(&sj, vm.kvm, 1, GPA_SLOT1);
	if (r)
		return race_setup_failed(ctx, &vm, r);
	race_setup_done(ctx);
	race_step(ctx, "VMM: VM, slot 0 = %d pages at gpa %#llx, vCPU 0", RACE_PAGES, RACE_GPA);
	vmm = race_actor_new(ctx, "cpu0-set-memory-region", "CPU 0");
	cpu = race_actor_new(ctx, "cpu1-vcpu0-run", "CPU 1");
	vj = (struct vcpu_job){ .vcpu = vm.vcpu };

	race_post(vmm, race_job_set_slot, &sj);
	race_wait_idle(vmm);
	race_step(ctx, "CPU 0: KVM_SET_USER_MEMORY_REGION creates slot 1: synchronize_srcu("
		  "&kvm->srcu) under slots_lock (validator: slots_lock -> kvm->srcu %s)",
		  race_dep_recorded("&kvm->slots_lock", "&kvm->srcu") ? "recorded" : "NOT seen");
	race_post(cpu, job_first_shadow_root, &vj);
	race_wait_idle(cpu);
	race_step(ctx, "CPU 1: inside kvm->srcu, takes %s for the memslot arch data "
		  "(%d memslots)", ctx->unsafe ? "slots_lock (knob SLOTS_LOCK_IN_SRCU)" :
		  "slots_arch_lock", vj.r);

	race_finish(ctx);
	ukvm_unsafe_clear_all();
	bug = race_validator_evidence(ctx, "") > 0;
	clean = !sj.r && vj.r >= 0;
	race_vm_destroy(&vm);
	race_slot_job_fini(&sj);
	clean &= race_common_checks(ctx);
	return race_judge(bug, clean);
}

const struct race_scenario race_srcu_sync_in_reader = {
	.name = "srcu-sync-in-reader",
	.summary = "slots_lock taken inside a kvm->srcu reader, where slots_arch_lock belongs",
	.rule = "locking.rst 1, For SRCU: synchronize_srcu(&kvm->srcu) runs inside\n"
		"kvm->lock, vcpu->mutex and kvm->slots_lock, so none of them may be taken in a\n"
		"kvm->srcu read-side section; kvm->slots_arch_lock is released before the\n"
		"synchronize_srcu() and may be.",
	.knob = UNSAFE_SLOTS_LOCK_IN_SRCU,
	.needs_lockdep = true,
	.table = &srcu_table,
	.run = run_srcu_sync_in_reader,
};

/* ====================================================================== */
/* 7. vcpu-mutex-vs-slots-lock                                             */
/* ====================================================================== */

static const struct race_table_row vcpu_rows[] = {
	{ 0, "mutex_lock(vcpu->mutex)\n"
	     "APICv un-inhibited, deep in KVM_RUN:\n"
	     "kvm_inhibit_apic_access_page():\n"
	     "  mutex_lock(slots_lock)\n"
	     "  create the APIC-access memslot\n"
	     "  mutex_unlock(slots_lock)\n"
	     "mutex_unlock(vcpu->mutex)", NULL },
	{ 1, "mutex_lock(slots_lock)\n"
	     "harvest, re-protect, flush\n"
	     "mutex_unlock(slots_lock)",
	     "mutex_lock(slots_lock)\n"
	     "for each vCPU:\n"
	     "  mutex_lock(vcpu->mutex)\n"
	     "  mutex_unlock(vcpu->mutex)\n"
	     "harvest, re-protect, flush\n"
	     "mutex_unlock(slots_lock)" },
	{ -1, "Only vcpu->mutex => slots_lock is ever taken: no cycle, nothing to report.",
	      "vcpu->mutex => slots_lock and slots_lock => vcpu->mutex: had they overlapped,\n"
	      "each would wait for the other.  Run one after the other, nothing hangs, and\n"
	      "the validator reports the cycle and the documented-order violation." },
};

static const struct race_table vcpu_table = {
	.nr_cols = 2,
	.cols = { "CPU 0: vCPU 0 (KVM_RUN)", "CPU 1: VMM (KVM_GET_DIRTY_LOG)" },
	.rows = vcpu_rows,
	.nr_rows = sizeof(vcpu_rows) / sizeof(vcpu_rows[0]),
};

/* What KVM_RUN does when APICv is un-inhibited: vcpu->mutex, then srcu. */
static void job_uninhibit_apicv(struct race_actor *a, void *arg)
{
	struct vcpu_job *j = arg;

	(void)a;
	j->r = kvm_vcpu_ioctl_begin(j->vcpu);
	if (j->r)
		return;
	kvm_vcpu_srcu_read_lock(j->vcpu);
	j->r = kvm_x86_inhibit_apic_access_page(j->vcpu, false);
	kvm_vcpu_srcu_read_unlock(j->vcpu);
	kvm_vcpu_ioctl_end(j->vcpu);
}

static enum race_verdict run_vcpu_mutex_vs_slots_lock(struct race_ctx *ctx)
{
	struct race_actor *cpu, *vmm;
	struct vcpu_job vj;
	struct race_log_job lj;
	struct race_vm vm;
	bool bug, clean;
	int r;

	r = race_vm_create(&vm, NULL, RACE_GPA, RACE_PAGES, KVM_MEM_LOG_DIRTY_PAGES);
	if (!r)
		r = race_vm_set_guest(&vm, RACE_GPA);
	if (r)
		return race_setup_failed(ctx, &vm, r);
	race_setup_done(ctx);
	race_step(ctx, "VMM: VM, slot 0 = %d pages at gpa %#llx with dirty logging, vCPU 0",
		  RACE_PAGES, RACE_GPA);
	cpu = race_actor_new(ctx, "cpu0-vcpu0-run", "CPU 0");
	vmm = race_actor_new(ctx, "cpu1-get-dirty-log", "CPU 1");
	vj = (struct vcpu_job){ .vcpu = vm.vcpu };
	lj = (struct race_log_job){ .vm = &vm };

	race_post(cpu, job_uninhibit_apicv, &vj);
	race_wait_idle(cpu);
	race_step(ctx, "CPU 0: KVM_RUN un-inhibits APICv: the APIC-access memslot is created "
		  "with slots_lock taken inside vcpu->mutex (%s)", vj.r ? "failed" : "done");
	race_post(vmm, race_job_get_log, &lj);
	race_wait_idle(vmm);
	race_step(ctx, "CPU 1: KVM_GET_DIRTY_LOG %s", ctx->unsafe ?
		  "takes each vcpu->mutex inside slots_lock (knob "
		  "SLOTS_LOCK_UNDER_VCPU_REVERSED)" : "takes no vCPU lock inside slots_lock");

	race_finish(ctx);
	ukvm_unsafe_clear_all();
	bug = race_validator_evidence(ctx, "") > 0;
	clean = !vj.r && !lj.r;
	race_vm_destroy(&vm);
	clean &= race_common_checks(ctx);
	return race_judge(bug, clean);
}

const struct race_scenario race_vcpu_mutex_vs_slots_lock = {
	.name = "vcpu-mutex-vs-slots-lock",
	.summary = "a VM-wide path takes vcpu->mutex inside slots_lock, KVM_RUN the reverse",
	.rule = "locking.rst 1 (2026): vcpu->mutex is taken outside kvm->slots_lock and\n"
		"kvm->slots_arch_lock; KVM_RUN takes slots_lock deep inside it\n"
		"(kvm_inhibit_apic_access_page()), so nothing may take a vcpu->mutex inside\n"
		"slots_lock.",
	.knob = UNSAFE_SLOTS_LOCK_UNDER_VCPU_REVERSED,
	.tsan_unsafe_skip = "ThreadSanitizer's own deadlock detector sees the deliberate "
			    "vcpu->mutex / slots_lock inversion on the pthread mutexes "
			    "underneath and fails the process (it catches the bug too)",
	.needs_lockdep = true,
	.table = &vcpu_table,
	.run = run_vcpu_mutex_vs_slots_lock,
};

/* ====================================================================== */
/* 8. notifier-takes-slots-lock                                            */
/* ====================================================================== */

static const struct race_table_row notifier_rows[] = {
	{ 0, "invalidate_range_start(H):\n"
	     "  mn_active_invalidate_count++\n"
	     "  zap, flush\n"
	     "[stopped at MN_START_DONE]",
	     "invalidate_range_start(H):\n"
	     "  mn_active_invalidate_count++\n"
	     "[stopped at MN_START_IN_CALLBACK]" },
	{ 1, "mutex_lock(slots_lock)\n"
	     "mutex_lock(slots_arch_lock)\n"
	     "kvm_swap_active_memslots():\n"
	     "  the count is 1: wait for 0", NULL },
	{ 0, "invalidate_range_end(H):\n"
	     "  count-- (0): wake CPU 1",
	     "mutex_lock(slots_lock): CPU 1\n"
	     "holds it and waits for us: the\n"
	     "validator reports the deadlock;\n"
	     "the knob backs out, no lock\n"
	     "zap, flush\n"
	     "invalidate_range_end(H):\n"
	     "  count-- (0): wake CPU 1" },
	{ 1, "publish the new memslots\n"
	     "mutex_unlock(slots_lock)", NULL },
	{ -1, "MMU-notifier handlers never take slots_lock: the writer's wait always ends.",
	      "Without the validator's bail-out, CPU 0 would sleep on slots_lock for ever and\n"
	      "CPU 1 on the count: the wait is modelled as &kvm->mn_active_invalidate_count,\n"
	      "held (read) by the handler and synced by the memslot writer." },
};

static const struct race_table notifier_table = {
	.nr_cols = 2,
	.cols = { "CPU 0: host (madvise DONTNEED of H)", "CPU 1: VMM (KVM_SET_USER_MEMORY_REGION)" },
	.rows = notifier_rows,
	.nr_rows = sizeof(notifier_rows) / sizeof(notifier_rows[0]),
};

static enum race_verdict run_notifier_takes_slots_lock(struct race_ctx *ctx)
{
	enum ukvm_race_point stop = ctx->unsafe ? RP_MN_START_IN_CALLBACK : RP_MN_START_DONE;
	struct race_actor *host, *vmm;
	struct race_slot_job sj = { 0 };
	struct race_madvise_job mj;
	struct race_vm vm;
	uint64_t one = 1;
	bool ok, bug, clean;
	int r;

	r = race_vm_create(&vm, NULL, RACE_GPA, RACE_PAGES, 0);
	if (!r)
		r = race_slot_job_init(&sj, vm.kvm, 1, GPA_SLOT1);
	if (!r)
		r = ukvm_host_write(vm.hva, &one, sizeof(one));
	if (r)
		return race_setup_failed(ctx, &vm, r);
	race_setup_done(ctx);
	race_step(ctx, "VMM: VM, slot 0 = %d pages at gpa %#llx over host memory; the VMM "
		  "touched its first page H", RACE_PAGES, RACE_GPA);
	host = race_actor_new(ctx, "cpu0-host", "CPU 0");
	vmm = race_actor_new(ctx, "cpu1-set-memory-region", "CPU 1");
	mj = (struct race_madvise_job){ .hva = vm.hva };

	race_stop_at(host, stop, 1);
	race_post(host, race_job_madvise, &mj);
	ok = race_wait_parked(host, stop);
	if (ok) {
		race_step(ctx, "CPU 0: madvise(DONTNEED) of H: invalidate_range_start counted "
			  "itself (mn_active_invalidate_count = %ld); stopped at %s",
			  vm.kvm->mn_active_invalidate_count, ukvm_race_point_names[stop]);
		race_stop_at(vmm, RP_SWAP_BEFORE_WAIT, 1);
		race_post(vmm, race_job_set_slot, &sj);
		ok = race_wait_parked(vmm, RP_SWAP_BEFORE_WAIT);
		if (ok) {
			race_continue(vmm);
			race_wait_until(ctx, race_swap_waiting, vm.kvm, "the memslot swap to wait");
			race_step(ctx, "CPU 1: creating slot 1, slots_lock held: the memslot "
				  "swap waits for mn_active_invalidate_count to drop to 0");
		}
		race_continue(host);
	}
	race_finish(ctx);
	race_step(ctx, "CPU 0: %sinvalidation finished; CPU 1: slot 1 %s",
		  ctx->unsafe ? "the validator stopped mutex_lock(slots_lock), the " : "",
		  sj.r ? "NOT created" : "created");

	race_finish(ctx);
	ukvm_unsafe_clear_all();
	bug = race_validator_evidence(ctx, "") > 0;
	race_evidence(ctx, "both threads finished: the invalidation %s, the memslot update %s",
		      mj.r ? "failed" : "completed", sj.r ? "failed" : "completed");
	clean = ok && !sj.r && !mj.r;
	race_vm_destroy(&vm);
	race_slot_job_fini(&sj);
	clean &= race_common_checks(ctx);
	return race_judge(ok && bug && !sj.r && !mj.r, clean);
}

const struct race_scenario race_notifier_takes_slots_lock = {
	.name = "notifier-takes-slots-lock",
	.summary = "an MMU-notifier handler takes slots_lock while a memslot update waits for it",
	.rule = "locking.rst 1: mn_active_invalidate_count makes the memslot writer wait,\n"
		"holding kvm->slots_lock and kvm->slots_arch_lock, until every\n"
		"invalidate_range_start() has had its _end(); so MMU notifiers must not take\n"
		"either lock.",
	.knob = UNSAFE_NOTIFIER_SLOTS_LOCK,
	.needs_lockdep = true,
	.table = &notifier_table,
	.run = run_notifier_takes_slots_lock,
};

/* ====================================================================== */
/* 9. fast-pf-aba                                                          */
/* ====================================================================== */

const struct race_scenario race_fast_pf_aba = {
	.name = "fast-pf-aba",
	.summary = "fast page fault cmpxchg on an indirect SPTE whose gfn changed (ABA)",
	.rule = "locking.rst 2 (Exception), \"The mapping from gfn to pfn\": the fast page\n"
		"fault's cmpxchg cannot see a gfn change behind an unchanged SPTE, so it only\n"
		"runs on direct shadow pages.",
	.knob = -1,
	.skip = "needs the shadow MMU: guest accesses go through the TDP MMU's direct "
		"pages, where the ABA cannot happen (the nested-EPT shadow pages model "
		"write protection only, no SPTEs)",
};
