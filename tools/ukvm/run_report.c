// SPDX-License-Identifier: MIT
/*
 * `ukvm run`: what it prints.  The progress line (live, on a terminal), and
 * at the end the summary table, the verification block and the JSON file.
 * Every number comes from the statistics the layers keep (struct kvm_stat,
 * struct kvm_vcpu_stat, the x86 MMU's, src/hw's, the host's, the guest
 * checker's) or from the run's own counters of what its threads did.
 */
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "host/host.h"
#include "hw/hw.h"
#include "kvm/kvm_host.h"
#include "run.h"

/* ---- the progress line ---- */

static void vcpu_faults(struct run *r, unsigned long long *pf, unsigned long long *fast)
{
	*pf = *fast = 0;
	for (int i = 0; i < r->o.vcpus; i++) {
		struct kvm_vcpu_stat *s = &r->vcpus[i].vcpu->stat;

		*pf += atomic_load_explicit(&s->pf_taken, memory_order_relaxed);
		*fast += atomic_load_explicit(&s->pf_fast, memory_order_relaxed);
	}
}

static int fmt_rate(char *buf, size_t len, double v)
{
	if (v >= 1e6)
		return snprintf(buf, len, "%.2fM", v / 1e6);
	if (v >= 1e3)
		return snprintf(buf, len, "%.1fk", v / 1e3);
	return snprintf(buf, len, "%.0f", v);
}

static unsigned long sum(struct run *r, enum run_counter a, enum run_counter b)
{
	unsigned long n = 0;

	for (int c = (int)a; c <= (int)b; c++)
		n += run_ctr(r, (enum run_counter)c);
	return n;
}

void run_progress_tick(struct run *r, bool final)
{
	bool tty = isatty(fileno(r->out));
	double now = run_now(), dt = now - r->last_tick;
	unsigned long long pf, fast;
	struct guest_stats gs;
	char line[512], a[16], f[16], fs[16], ff[16];
	int n = 0;

	if (r->o.quiet || (!final && dt < (tty ? 0.25 : 10.0)))
		return;
	if (final) {
		if (r->progress_shown && tty)
			fputs("\n", r->out);
		return;
	}
	guest_get_stats(r->w, &gs);
	vcpu_faults(r, &pf, &fast);
	fmt_rate(a, sizeof(a), (double)(gs.accesses - r->last_acc) / dt);
	fmt_rate(f, sizeof(f), (double)(pf - r->last_pf) / dt);
	fmt_rate(ff, sizeof(ff), (double)(fast - r->last_pf_fast) / dt);
	fmt_rate(fs, sizeof(fs), (double)((pf - r->last_pf) - (fast - r->last_pf_fast)) / dt);
	r->last_acc = gs.accesses;
	r->last_pf = pf;
	r->last_pf_fast = fast;
	r->last_tick = now;

	n += snprintf(line + n, sizeof(line) - (size_t)n,
		      "%6.1fs  %s acc/s  %s faults/s (slow %s fast %s)",
		      now - r->t_start, a, f, fs, ff);
#define PROGRESS(_on, _fmt, ...)                                              \
	if ((_on) && n < (int)sizeof(line))                                   \
		n += snprintf(line + n, sizeof(line) - (size_t)n, _fmt, __VA_ARGS__)
	PROGRESS(r->o.host_churn, "  host %lu", sum(r, RC_HOST_MIGRATE, RC_HOST_DISCARD));
	PROGRESS(r->o.memslot_churn, "  slot %lu", sum(r, RC_SPARE_CREATE, RC_SPARE_DELETE));
	PROGRESS(!r->o.migrate && r->o.memslot_churn, "  log %lu", run_ctr(r, RC_LOG_ROUNDS));
	PROGRESS(r->o.age, "  age %lu", sum(r, RC_AGE_CLEAR, RC_AGE_TEST));
	PROGRESS(r->o.cpu_hotplug, "  hp %lu", sum(r, RC_CPU_DOWN, RC_CPU_UP));
	PROGRESS(r->o.vm_churn, "  vm %lu", run_ctr(r, RC_VM_CREATED));
	PROGRESS(r->o.param_writer, "  param %lu", run_ctr(r, RC_PARAM_WRITES));
	PROGRESS(r->o.vcpu_ioctls, "  ioctl %lu", run_ctr(r, RC_IOCTL_ROUNDS));
	PROGRESS(r->o.irqs, "  irq %lu", sum(r, RC_IRQ_INJECTED, RC_IRQ_POSTED));
	PROGRESS(r->o.halt_every, "  hlt %llu", (unsigned long long)gs.halts);
	PROGRESS(r->o.dirty_ring, "  ring %lu", run_ctr(r, RC_RING_HARVESTED));
	PROGRESS(r->o.migrate, "  mig %lu/%lu rounds", run_ctr(r, RC_MIG_DONE),
		 run_ctr(r, RC_LOG_ROUNDS));
#undef PROGRESS
	if (tty)
		fprintf(r->out, "\r%s\033[K", line);
	else
		fprintf(r->out, "%s\n", line);
	fflush(r->out);
	r->progress_shown = true;
}

/* ---- collecting the summary ---- */

static void stat_add(struct run *r, const char *section, const char *name,
		     unsigned long long v)
{
	if (r->nr_stats < RUN_MAX_STATS)
		r->stats[r->nr_stats++] = (struct run_stat){ section, name, v };
}

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void collect_vcpus(struct run *r)
{
	unsigned long long pf = 0, fixed = 0, fast = 0, spur = 0, retry = 0, mmio = 0;
	unsigned long long exits = 0, flush = 0, req = 0;
	struct hw_vcpu_stat hw, t = { 0 };

	for (int i = 0; i < r->o.vcpus; i++) {
		struct kvm_vcpu_stat *s = &r->vcpus[i].vcpu->stat;

		pf += LD(s->pf_taken);
		fixed += LD(s->pf_fixed);
		fast += LD(s->pf_fast);
		spur += LD(s->pf_spurious);
		retry += LD(s->pf_retry);
		mmio += LD(s->pf_mmio);
		exits += LD(s->exits);
		flush += LD(s->tlb_flush);
		req += LD(s->requests_serviced);
		/* Exact: the vCPU threads have been joined. */
		hw_vcpu_get_stat(r->vcpus[i].vcpu, &hw);
		t.accesses += hw.accesses;
		t.tlb_hits += hw.tlb_hits;
		t.tlb_misses += hw.tlb_misses;
		t.walks += hw.walks;
		t.ad_assists += hw.ad_assists;
		t.tlb_flushes += hw.tlb_flushes;
		t.ept_violations += hw.ept_violations;
		t.kicks += hw.kicks;
		t.quantum_exits += hw.quantum_exits;
		t.interrupts += hw.interrupts;
	}
	stat_add(r, "faults", "taken", pf);
	stat_add(r, "faults", "fixed_slow", fixed - fast);
	stat_add(r, "faults", "fixed_fast", fast);
	stat_add(r, "faults", "spurious", spur);
	stat_add(r, "faults", "retried", retry);
	stat_add(r, "faults", "mmio", mmio);
	stat_add(r, "vcpu", "exits", exits);
	stat_add(r, "vcpu", "ept_violations", t.ept_violations);
	stat_add(r, "vcpu", "kicks", t.kicks);
	stat_add(r, "vcpu", "timer_exits", t.quantum_exits);
	stat_add(r, "vcpu", "interrupts", t.interrupts);
	stat_add(r, "vcpu", "requests_serviced", req);
	stat_add(r, "vcpu", "parks", run_ctr(r, RC_VCPU_PARKS));
	stat_add(r, "tlb", "vcpu_flushes", flush);
	stat_add(r, "tlb", "hw_flushes", t.tlb_flushes);
	stat_add(r, "tlb", "hits", t.tlb_hits);
	stat_add(r, "tlb", "misses", t.tlb_misses);
	stat_add(r, "tlb", "ept_walks", t.walks);
	stat_add(r, "tlb", "ad_assists", t.ad_assists);
}

static void collect_kvm(struct run *r)
{
	struct kvm_stat *k = &r->kvm->stat;
	struct kvm_arch *a = kvm_x86(r->kvm);
	unsigned long long logged = 0;	/* by vCPUs, then by everyone else */

	for (int i = 0; i < r->o.vcpus; i++)
		logged += LD(r->vcpus[i].vcpu->stat.dirty_pages_logged);
	stat_add(r, "tlb", "remote_flushes", LD(k->remote_tlb_flush));
	stat_add(r, "tlb", "remote_flush_requests", LD(k->remote_tlb_flush_requests));
	stat_add(r, "mmu", "zaps", LD(a->stat.zaps));
	stat_add(r, "mmu", "tables_allocated", LD(a->stat.tables_allocated));
	stat_add(r, "mmu", "tables_freed", LD(a->stat.tables_freed));
	stat_add(r, "mmu", "roots_allocated", LD(a->stat.roots_allocated));
	stat_add(r, "mmu", "huge_splits", LD(a->stat.huge_splits));
	stat_add(r, "mmu", "wrprot_flushes", LD(a->stat.wrprot_flushes));
	stat_add(r, "memslots", "create", LD(k->memslot_create));
	stat_add(r, "memslots", "delete", LD(k->memslot_delete));
	stat_add(r, "memslots", "move", LD(k->memslot_move));
	stat_add(r, "memslots", "flags", LD(k->memslot_flags));
	stat_add(r, "memslots", "errors", LD(k->memslot_errors));
	stat_add(r, "mmu_notifier", "start", LD(k->mmu_notifier_start));
	stat_add(r, "mmu_notifier", "start_with_memslot", LD(k->mmu_notifier_start_found));
	stat_add(r, "mmu_notifier", "end", LD(k->mmu_notifier_end));
	stat_add(r, "mmu_notifier", "aging", LD(k->mmu_notifier_age));
	stat_add(r, "dirty_log", "get", LD(k->dirty_log_get));
	stat_add(r, "dirty_log", "clear", LD(k->dirty_log_clear));
	stat_add(r, "dirty_log", "pages_logged", LD(k->dirty_pages_logged) + logged);
	stat_add(r, "dirty_log", "rounds", run_ctr(r, RC_LOG_ROUNDS));
	stat_add(r, "dirty_log", "pages_in_logs", run_ctr(r, RC_LOG_PAGES));
	stat_add(r, "dirty_log", "logging_on", run_ctr(r, RC_LOG_ENABLE));
	stat_add(r, "dirty_log", "logging_off", run_ctr(r, RC_LOG_DISABLE));
}

/* The dirty ring (--dirty-ring): KVM's counts and the collector's. */
static void collect_ring(struct run *r)
{
	unsigned long long full = 0;

	for (int i = 0; i < r->o.vcpus; i++)
		full += LD(r->vcpus[i].vcpu->stat.dirty_ring_full_exits);
	stat_add(r, "dirty_ring", "pushed", LD(r->kvm->stat.dirty_ring_pushes));
	stat_add(r, "dirty_ring", "harvested", run_ctr(r, RC_RING_HARVESTED));
	stat_add(r, "dirty_ring", "passes", run_ctr(r, RC_RING_PASSES));
	stat_add(r, "dirty_ring", "resets", run_ctr(r, RC_RING_RESETS));
	stat_add(r, "dirty_ring", "entries_reset", LD(r->kvm->stat.dirty_ring_resets));
	stat_add(r, "dirty_ring", "full_exits", full);
	stat_add(r, "dirty_ring", "full_waits", run_ctr(r, RC_RING_FULL_WAITS));
}

/*
 * Interrupts the guests took, by kind (injected: a KVM_REQ_EVENT serviced;
 * posted: a PIR synced on entry), and halts: those a waker ended (an
 * injection, the posted-interrupt wakeup handler, a kick) and those the
 * wakeup handler ended, walking its CPU's wakeup list.
 */
static void collect_interrupts(struct run *r)
{
	unsigned long long intr = 0, posted = 0, halts = 0, wakeups = 0;
	struct hw_vcpu_stat hw;

	for (int i = 0; i < r->o.vcpus; i++) {
		hw_vcpu_get_stat(r->vcpus[i].vcpu, &hw);
		intr += hw.interrupts;
		posted += hw.posted_interrupts;
		halts += hw.halts;
		wakeups += LD(r->vcpus[i].vcpu->stat.halt_wakeup);
	}
	stat_add(r, "interrupts", "delivered_injected", intr - posted);
	stat_add(r, "interrupts", "delivered_posted", posted);
	stat_add(r, "interrupts", "pi_notifications",
		 LD(kvm_x86(r->kvm)->stat.pi_notifications));
	stat_add(r, "interrupts", "halts", halts);
	stat_add(r, "interrupts", "wakeups", wakeups);
	stat_add(r, "interrupts", "pi_wakeups", LD(kvm_x86(r->kvm)->stat.pi_wakeups));
}

static void collect_host(struct run *r)
{
	struct host_mm_stats h;
	struct host_mem_stats m;

	host_mm_get_stats(host_current_mm, &h);
	host_mem_get_stats(&m);
	stat_add(r, "host_mm", "faults", h.faults);
	stat_add(r, "host_mm", "thp_faults", h.thp_faults);
	stat_add(r, "host_mm", "cow", h.cow);
	stat_add(r, "host_mm", "swapouts", h.swapouts);
	stat_add(r, "host_mm", "swapins", h.swapins);
	stat_add(r, "host_mm", "migrations", h.migrations);
	stat_add(r, "host_mm", "ksm_merges", h.ksm_merges);
	stat_add(r, "host_mm", "thp_splits", h.thp_splits);
	stat_add(r, "host_mm", "unmaps", h.unmaps);
	stat_add(r, "host_mm", "aging_passes", h.aging_passes);
	stat_add(r, "host_mm", "migration_waits", h.migration_waits);
	stat_add(r, "host_mm", "pinned_aborts", h.pinned_aborts);
	stat_add(r, "host_mm", "notifier_starts", h.notifier_starts);
	stat_add(r, "host_mm", "notifier_ends", h.notifier_ends);
	stat_add(r, "host_mem", "frames_total", m.frames_total);
	stat_add(r, "host_mem", "frames_free", m.frames_free);
	stat_add(r, "host_mem", "frames_anon", m.frames_anon);
	stat_add(r, "host_mem", "frames_kernel", m.frames_kernel);
	stat_add(r, "host_mem", "alloc_failures", m.alloc_failures);
	stat_add(r, "host_mem", "swap_slots_used", m.swap_slots_used);
}

static const struct {
	const char *section, *name;
	enum run_counter c;
} run_stats[] = {
	{ "host_churn", "migrate", RC_HOST_MIGRATE },
	{ "host_churn", "swap_out", RC_HOST_SWAP_OUT },
	{ "host_churn", "swap_in", RC_HOST_SWAP_IN },
	{ "host_churn", "ksm_merge", RC_HOST_KSM },
	{ "host_churn", "thp_split", RC_HOST_SPLIT },
	{ "host_churn", "discard", RC_HOST_DISCARD },
	{ "host_churn", "busy", RC_HOST_BUSY },
	{ "spare_slot", "create", RC_SPARE_CREATE },
	{ "spare_slot", "move", RC_SPARE_MOVE },
	{ "spare_slot", "flags", RC_SPARE_FLAGS },
	{ "spare_slot", "delete", RC_SPARE_DELETE },
	{ "aging", "clear_young", RC_AGE_CLEAR },
	{ "aging", "clear_flush_young", RC_AGE_CLEAR_FLUSH },
	{ "aging", "test_young", RC_AGE_TEST },
	{ "aging", "young_pages", RC_AGE_YOUNG },
	{ "cpu_hotplug", "offline", RC_CPU_DOWN },
	{ "cpu_hotplug", "online", RC_CPU_UP },
	{ "cpu_hotplug", "cpufreq", RC_CPUFREQ },
	{ "cpu_hotplug", "suspend_resume", RC_SUSPEND },
	{ "vm_churn", "vms_created", RC_VM_CREATED },
	{ "vm_churn", "guest_accesses", RC_VM_ACCESSES },
	{ "param_writer", "writes", RC_PARAM_WRITES },
	{ "param_writer", "vms_reached", RC_PARAM_VMS },
	{ "vcpu_ioctls", "kicks", RC_IOCTL_KICKS },
	{ "vcpu_ioctls", "rounds", RC_IOCTL_ROUNDS },
	{ "vcpu_ioctls", "apic_base", RC_IOCTL_APIC_BASE },
	{ "vcpu_ioctls", "hyperv", RC_IOCTL_HV },
	{ "vcpu_ioctls", "xen", RC_IOCTL_XEN },
	{ "vcpu_ioctls", "tsc", RC_IOCTL_TSC },
	{ "vcpu_ioctls", "apicv", RC_IOCTL_APICV },
	{ "vcpu_ioctls", "first_shadow_root", RC_IOCTL_SHADOW_ROOT },
	{ "irqs", "injected", RC_IRQ_INJECTED },
	{ "irqs", "posted", RC_IRQ_POSTED },
	{ "irqs", "vcpus_reached", RC_IRQ_REACHED },
	{ "irqs", "routing_updates", RC_IRQ_ROUTING },
	{ "migration", "migrations", RC_MIG_DONE },
	{ "migration", "rounds", RC_MIG_ROUNDS },
	{ "migration", "pages_copied", RC_MIG_PAGES },
	{ "migration", "converged", RC_MIG_CONVERGED },
	{ "migration", "throttle_parks", RC_MIG_THROTTLE_PARKS },
	{ "migration", "downtime_pages", RC_MIG_DOWNTIME_PAGES },
	{ "migration", "diff_bytes", RC_MIG_DIFF_BYTES },
};

void run_report_collect(struct run *r)
{
	struct guest_stats gs;

	r->nr_stats = 0;
	guest_get_stats(r->w, &gs);
	stat_add(r, "guest", "accesses", gs.accesses);
	stat_add(r, "guest", "reads", gs.reads);
	stat_add(r, "guest", "writes", gs.writes);
	stat_add(r, "guest", "pattern_writes", gs.pattern_writes);
	stat_add(r, "guest", "passes", gs.passes_done);
	collect_vcpus(r);
	collect_kvm(r);
	collect_ring(r);
	collect_host(r);
	for (size_t i = 0; i < sizeof(run_stats) / sizeof(run_stats[0]); i++) {
		stat_add(r, run_stats[i].section, run_stats[i].name,
			 run_ctr(r, run_stats[i].c));
		/* What the guests took, after what the irqs thread raised. */
		if (run_stats[i].c == RC_IRQ_ROUTING)
			collect_interrupts(r);
	}
}
