// SPDX-License-Identifier: MIT
/*
 * `ukvm race usage-lock-deadlock`: the deadlock fixed by commit 44d17459
 * ("KVM: Use dedicated mutex to protect kvm_usage_count to avoid deadlock"),
 * with real threads really holding their locks:
 *
 *   CPU 0   memslot update: slots_lock, then synchronize_srcu(&kvm->srcu)
 *   CPU 1   VM creation, legacy: cpus_read_lock(), then kvm_lock
 *   CPU 1'  set_nx_huge_pages()-like writer, legacy: kvm_lock, then slots_lock
 *   CPU 2   vCPU sets its APIC base: vcpu->mutex, kvm->srcu, then a static
 *           key: cpus_read_lock()
 *   CPU 3   CPU hotplug: cpus_write_lock(), queued behind CPU 1's read hold,
 *           so that (the rwsem is fair) CPU 2's cpus_read_lock() really waits
 *
 * In the legacy design every thread but CPU 2 ends up blocked, each on the
 * next; CPU 2's cpus_read_lock() closes the cycle, the validator reports it
 * and its bail-out hook takes CPU 2 back out of the acquisition (no lock is
 * left held: the hook runs before the lock is taken, the landing code drops
 * the two CPU 2 held); the others then finish one after the other.  In the
 * current design (kvm_usage_lock; vm_list walkers under RCU) the same script
 * finds nobody waiting on anybody, and the validator is silent.
 */
#include <errno.h>
#include <setjmp.h>

#include "kvm/kvm_internal.h"
#include "lockdep/lockdep.h"
#include "race_harness.h"
#include "x86/mmu/mmu.h"

#define RACE_GPA	0x10000000ULL
#define RACE_PAGES	16
#define GPA_SLOT1	0x20000000ULL
#define HOTPLUG_CPU	3
#define APIC_BASE	0xfee00000ULL
#define APIC_ENABLE	(1ULL << 11)

static const struct race_table_row usage_rows[] = {
	{ 0, "KVM_SET_USER_MEMORY_REGION:\n"
	     "mutex_lock(slots_lock)\n"
	     "[stopped at SLOTS_LOCK_HELD]", NULL },
	{ 2, "KVM_SET_MSRS(APIC_BASE):\n"
	     "mutex_lock(vcpu->mutex)\n"
	     "srcu_read_lock(kvm->srcu)\n"
	     "[stopped at VCPU_SRCU_LOCKED]", NULL },
	{ 1, "set_nx_huge_pages():\n"
	     "RCU walk of vm_list: a\n"
	     "reference on each VM\n"
	     "[stopped at VM_LIST_WALK]",
	     "set_nx_huge_pages():\n"
	     "mutex_lock(kvm_lock)\n"
	     "[stopped at VM_LIST_WALK]" },
	{ 1, "KVM_CREATE_VM, enabling:\n"
	     "mutex_lock(kvm_usage_lock)\n"
	     "count already > 0: done\n"
	     "(cpu_hotplug_lock untouched)",
	     "KVM_CREATE_VM, enabling:\n"
	     "cpus_read_lock()\n"
	     "mutex_lock(kvm_lock): waits" },
	{ 3, "cpu_down():\n"
	     "cpus_write_lock(): no reader\n"
	     "the CPU goes offline",
	     "cpu_down():\n"
	     "cpus_write_lock(): waits\n"
	     "for CPU 1's read hold;\n"
	     "queued: new readers wait" },
	{ 1, "mutex_lock(slots_lock): waits\n"
	     "for CPU 0 (no lock held)",
	     "mutex_lock(slots_lock):\n"
	     "waits for CPU 0" },
	{ 0, "synchronize_srcu(kvm->srcu):\n"
	     "waits for CPU 2's reader", NULL },
	{ 2, "static_key_slow_inc():\n"
	     "cpus_read_lock(): no writer\n"
	     "srcu_read_unlock(kvm->srcu)\n"
	     "mutex_unlock(vcpu->mutex)",
	     "static_key_slow_inc():\n"
	     "cpus_read_lock(): behind the\n"
	     "queued writer: DEADLOCK;\n"
	     "the validator stops it, CPU 2\n"
	     "backs out and unlocks" },
	{ -1, "CPU 2 finishes, then CPU 0, then CPU 1: nobody waits on anybody, no report.",
	      "CPU 1' waits for CPU 0 (slots_lock), CPU 0 for CPU 2 (kvm->srcu), CPU 2 for\n"
	      "CPU 3 (the queued writer), CPU 3 for CPU 1 (its read hold), CPU 1 for CPU 1'\n"
	      "(kvm_lock): a cycle.  Once CPU 2 backs out, everybody finishes." },
};

static const struct race_table usage_table = {
	.nr_cols = 4,
	.cols = { "CPU 0: VMM", "CPU 1: VMM, module param", "CPU 2: vCPU 0",
		  "CPU 3: hotplug" },
	.rows = usage_rows,
	.nr_rows = sizeof(usage_rows) / sizeof(usage_rows[0]),
};

/* ---- the threads' jobs ---- */

struct usage_state {
	struct race_vm vm;
	struct kvm *new_vm;
	struct race_slot_job slot;	/* CPU 0's memslot update: create slot 1 */
	int create_r, nx_r, down_r, apic_r;
	/* CPU 2's way back out of a deadlocking acquisition */
	jmp_buf env;
	bool bailed;
	enum lockdep_report_kind bail_kind;
};

static void job_create_vm(struct race_actor *a, void *arg)
{
	struct usage_state *u = arg;

	(void)a;
	u->create_r = ukvm_create_vm(NULL, &u->new_vm);
}

static void job_nx_huge_pages(struct race_actor *a, void *arg)
{
	struct usage_state *u = arg;

	(void)a;
	u->nx_r = ukvm_param_write_all_vms();
}

static void job_cpu_down(struct race_actor *a, void *arg)
{
	struct usage_state *u = arg;

	(void)a;
	u->down_r = host_cpu_down(HOTPLUG_CPU);
}

static void apic_bailout(void *arg, enum lockdep_report_kind kind)
{
	struct usage_state *u = arg;

	u->bail_kind = kind;
	longjmp(u->env, 1);
}

/*
 * At VCPU_SRCU_LOCKED CPU 2 holds exactly vcpu->mutex and kvm->srcu: from
 * here on, a report of the validator brings it back to job_apic_base().
 */
static void apic_hook(struct race_actor *a, enum ukvm_race_point rp, void *arg)
{
	(void)a;
	if (rp == RP_VCPU_SRCU_LOCKED)
		lockdep_set_thread_bailout(apic_bailout, arg);
}

static void job_apic_base(struct race_actor *a, void *arg)
{
	struct usage_state *u = arg;

	(void)a;
	if (setjmp(u->env)) {
		/* The acquisition that would deadlock was not made: unwind. */
		lockdep_set_thread_bailout(NULL, NULL);
		u->bailed = true;
		kvm_vcpu_srcu_read_unlock(u->vm.vcpu);
		kvm_vcpu_ioctl_end(u->vm.vcpu);
		return;
	}
	/* Clearing the enable bit flips the APIC static key. */
	u->apic_r = kvm_x86_vcpu_set_apic_base(u->vm.vcpu, APIC_BASE);
	lockdep_set_thread_bailout(NULL, NULL);
}

static bool writer_queued(void *arg)
{
	(void)arg;
	return rwsem_writers_waiting(&cpu_hotplug_lock) > 0;
}

/* ---- the script ---- */

static void replay(struct race_ctx *ctx, struct usage_state *u, bool legacy)
{
	struct race_actor *mem, *vcpu, *nx, *create, *down;

	mem = race_actor_new(ctx, "cpu0-set-memory-region", "CPU 0");
	vcpu = race_actor_new(ctx, "cpu2-vcpu-set-msrs", "CPU 2");
	nx = race_actor_new(ctx, "cpu1-nx-huge-pages", "CPU 1'");
	create = race_actor_new(ctx, "cpu1-create-vm", "CPU 1");
	down = race_actor_new(ctx, "cpu3-hotplug", "CPU 3");
	vcpu->hook = apic_hook;
	vcpu->hook_arg = u;

	race_stop_at(mem, RP_SLOTS_LOCK_HELD, 1);
	race_post(mem, race_job_set_slot, &u->slot);
	if (!race_wait_parked(mem, RP_SLOTS_LOCK_HELD))
		return;
	race_step(ctx, "CPU 0: KVM_SET_USER_MEMORY_REGION (create slot 1): holds slots_lock");
	race_stop_at(vcpu, RP_VCPU_SRCU_LOCKED, 1);
	race_post(vcpu, job_apic_base, u);
	if (!race_wait_parked(vcpu, RP_VCPU_SRCU_LOCKED))
		return;
	race_step(ctx, "CPU 2: KVM_SET_MSRS(APIC_BASE, disabled): holds vcpu->mutex and "
		  "kvm->srcu (read)");
	race_stop_at(nx, RP_VM_LIST_WALK, 1);
	race_post(nx, job_nx_huge_pages, u);
	if (!race_wait_parked(nx, RP_VM_LIST_WALK))
		return;
	race_step(ctx, "CPU 1': set_nx_huge_pages(): %s", legacy ?
		  "walks vm_list holding kvm_lock" :
		  "took a reference on each VM under RCU, holds no lock");

	race_post(create, job_create_vm, u);
	if (legacy) {
		race_wait_dep(ctx, "cpu_hotplug_lock", "kvm_lock");
		race_step(ctx, "CPU 1: KVM_CREATE_VM enables virtualization: holds "
			  "cpu_hotplug_lock (read), waits for kvm_lock");
	} else {
		race_wait_idle(create);
		race_step(ctx, "CPU 1: KVM_CREATE_VM: kvm_usage_lock only (the count was "
			  "already 1); VM %d created", u->create_r ? -1 : u->new_vm->id);
	}
	race_post(down, job_cpu_down, u);
	if (legacy) {
		race_wait_until(ctx, writer_queued, NULL, "the hotplug writer to queue");
		race_step(ctx, "CPU 3: cpu_down(%d): cpus_write_lock() queued behind CPU 1's "
			  "read hold: new readers now wait", HOTPLUG_CPU);
	} else {
		race_wait_idle(down);
		race_step(ctx, "CPU 3: cpu_down(%d): nobody held cpu_hotplug_lock: CPU %d "
			  "offline (%d)", HOTPLUG_CPU, HOTPLUG_CPU, u->down_r);
	}
	race_continue(nx);
	if (legacy) {
		race_wait_dep(ctx, "kvm_lock", "&kvm->slots_lock");
		race_step(ctx, "CPU 1': mutex_lock(slots_lock) inside kvm_lock: waits for "
			  "CPU 0");
	} else {
		race_step(ctx, "CPU 1': mutex_lock(slots_lock), no lock held: waits for CPU 0");
	}
	race_continue(mem);
	race_wait_dep(ctx, "&kvm->slots_lock", "&kvm->srcu");
	race_step(ctx, "CPU 0: synchronize_srcu(&kvm->srcu) inside slots_lock: waits for "
		  "CPU 2's reader");
	race_continue(vcpu);
	race_wait_idle(vcpu);
	if (u->bailed)
		race_step(ctx, "CPU 2: static_key_slow_inc() -> cpus_read_lock() would wait "
			  "behind CPU 3: the validator reported the cycle and stopped the "
			  "acquisition; CPU 2 dropped kvm->srcu and vcpu->mutex");
	else
		race_step(ctx, "CPU 2: static_key_slow_inc() -> cpus_read_lock(): %s; "
			  "the ioctl returned %d", legacy ? "taken" : "no writer waiting, taken",
			  u->apic_r);
	race_wait_idle(mem);
	race_wait_idle(nx);
	race_wait_idle(create);
	race_wait_idle(down);
	race_step(ctx, "then: CPU 0's memslot update (%d), CPU 1's set_nx_huge_pages (%d VMs), "
		  "CPU 1's VM creation (%d) and CPU 3's cpu_down (%d) all finished",
		  u->slot.r, u->nx_r, u->create_r, u->down_r);
}

static enum race_verdict run_usage_lock_deadlock(struct race_ctx *ctx)
{
	bool legacy = kvm_legacy_usage_locking();
	unsigned long circular;
	struct usage_state u = { 0 };
	bool clean;
	int r;

	r = race_vm_create(&u.vm, NULL, RACE_GPA, RACE_PAGES, 0);
	if (!r)
		r = race_slot_job_init(&u.slot, u.vm.kvm, 1, GPA_SLOT1);
	if (r)
		return race_setup_failed(ctx, &u.vm, r);
	race_step(ctx, "machine: %s design; VM %d with slot 0 and vCPU 0", legacy ?
		  "legacy (0bf50497: kvm_usage_count under kvm_lock, vm_list walkers under "
		  "kvm_lock)" : "current (kvm_usage_lock, vm_list walkers under RCU)",
		  u.vm.kvm->id);
	race_setup_done(ctx);

	replay(ctx, &u, legacy);
	race_finish(ctx);

	if (!u.down_r && host_cpu_up(HOTPLUG_CPU))
		race_evidence(ctx, "could not bring CPU %d back up", HOTPLUG_CPU);
	if (!u.bailed && !u.apic_r)
		kvm_x86_vcpu_set_apic_base(u.vm.vcpu, APIC_BASE | APIC_ENABLE);
	circular = race_validator_evidence(ctx, u.bailed ? " (CPU 2 stopped by it)" : "");
	clean = !u.slot.r && !u.create_r && u.nx_r >= 1 && !u.down_r && !u.apic_r &&
		!u.bailed;
	if (u.new_vm)
		ukvm_destroy_vm(u.new_vm);
	race_vm_destroy(&u.vm);
	race_slot_job_fini(&u.slot);
	clean &= race_common_checks(ctx);
	return race_judge(u.bailed && circular > 0, clean);
}

const struct race_scenario race_usage_lock_deadlock = {
	.name = "usage-lock-deadlock",
	.summary = "kvm_usage_count under kvm_lock: the 44d17459 deadlock (legacy design)",
	.rule = "locking.rst 1: cpus_read_lock() is taken outside kvm_lock and\n"
		"kvm_usage_lock, but taking it outside kvm_lock is hazardous: enabling\n"
		"virtualization under kvm_lock (0bf50497) closed a cycle with\n"
		"set_nx_huge_pages(), memslot updates and a vCPU's static key, fixed by\n"
		"commit 44d17459 with a dedicated kvm_usage_lock.  --unsafe runs the legacy\n"
		"design: ukvm restarts with legacy_usage = true.",
	.knob = -1,
	.needs_lockdep = true,
	.legacy_unsafe = true,
	.table = &usage_table,
	.run = run_usage_lock_deadlock,
};
