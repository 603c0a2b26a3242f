// SPDX-License-Identifier: MIT
/*
 * `ukvm run`: the end checks.  Every one is a count that must be 0.
 *
 *   lost writes             guest_verify(): a tag word not holding the last
 *                           tag its vCPU wrote; + what the guests saw
 *                           themselves when reading back their own words;
 *                           + words the --vm-churn guests read back wrong
 *   pattern/scratch damage  a pattern page changed, a scratch page not zero
 *   missed dirty pages      a completed write absent from every dirty log
 *                           taken after it started (the guest checker)
 *   migration differences   destination pages differing from the source
 *                           after a migration's stop-and-copy
 *   writes into freed frames  the host's poisoned free frames, changed
 *   invariant failures      kvm-brief.md Appendix B assertions
 *   validator reports       lockdep errors + warnings (undocumented orders)
 *   unbalanced invalidations  a live VM at the end with
 *                           mmu_invalidate_in_progress or
 *                           mn_active_invalidate_count not 0
 *   unexpected errors       an operation failing where it must not
 *   idle features           an enabled churn kind that did nothing (or
 *                           rings never harvested, guests that never
 *                           halted though they made enough accesses)
 */
#include <errno.h>
#include <string.h>

#include "host/host.h"
#include "kvm/kvm_host.h"
#include "lockdep/lockdep.h"
#include "run.h"
#include "sync/bug.h"

const char *const run_check_names[CK_NR] = {
	[CK_LOST_WRITES] = "lost writes",
	[CK_DAMAGE] = "pattern/scratch damage",
	[CK_MISSED_DIRTY] = "missed dirty pages",
	[CK_MIGRATION_DIFF] = "migration differences (pages)",
	[CK_POISON] = "writes into freed frames",
	[CK_INVARIANTS] = "invariant failures",
	[CK_VALIDATOR] = "validator reports",
	[CK_INVALIDATIONS] = "unbalanced invalidations",
	[CK_ERRORS] = "unexpected errors",
	[CK_IDLE] = "idle features",
};

static const struct {
	size_t opt;			/* the bool in struct run_opts */
	const char *name;
	enum run_counter first, last;	/* any of these > 0: it worked */
} features[] = {
	{ offsetof(struct run_opts, host_churn), "host-churn", RC_HOST_MIGRATE, RC_HOST_DISCARD },
	{ offsetof(struct run_opts, memslot_churn), "memslot-churn", RC_SPARE_CREATE, RC_SPARE_CREATE },
	{ offsetof(struct run_opts, age), "age", RC_AGE_CLEAR, RC_AGE_TEST },
	{ offsetof(struct run_opts, cpu_hotplug), "cpu-hotplug", RC_CPU_DOWN, RC_CPU_DOWN },
	{ offsetof(struct run_opts, vm_churn), "vm-churn", RC_VM_CREATED, RC_VM_CREATED },
	{ offsetof(struct run_opts, param_writer), "param-writer", RC_PARAM_WRITES, RC_PARAM_WRITES },
	{ offsetof(struct run_opts, vcpu_ioctls), "vcpu-ioctls", RC_IOCTL_ROUNDS, RC_IOCTL_ROUNDS },
	{ offsetof(struct run_opts, irqs), "irqs", RC_IRQ_INJECTED, RC_IRQ_POSTED },
	{ offsetof(struct run_opts, migrate), "migrate", RC_MIG_DONE, RC_MIG_DONE },
};

#define NR_FEATURES (sizeof(features) / sizeof(features[0]))

static bool feature_on(const struct run *r, size_t i)
{
	return *(const bool *)((const char *)&r->o + features[i].opt);
}

static bool feature_done(struct run *r, size_t i)
{
	for (int c = (int)features[i].first; c <= (int)features[i].last; c++)
		if (run_ctr(r, (enum run_counter)c))
			return true;
	return false;
}

/*
 * With --halt-every N, a guest halts on its N + 1st step at the latest
 * (unless it finished): guests that made more than N accesses each on
 * average and never halted did not do what they were asked.
 */
static bool halts_missing(const struct run *r, const struct guest_stats *gs)
{
	return r->o.halt_every && !gs->halts &&
	       gs->accesses > r->o.halt_every * (uint64_t)r->o.vcpus;
}

/* Every enabled feature has done something (and the guests have run). */
bool run_features_done(struct run *r)
{
	struct guest_stats gs;

	for (size_t i = 0; i < NR_FEATURES; i++) {
		/* Migration completes only when the run ends. */
		if (feature_on(r, i) && features[i].first != RC_MIG_DONE &&
		    !feature_done(r, i))
			return false;
	}
	if (r->o.memslot_churn && !r->o.migrate && !run_ctr(r, RC_LOG_ROUNDS))
		return false;
	if (r->o.dirty_ring && !run_ctr(r, RC_RING_PASSES))
		return false;
	guest_get_stats(r->w, &gs);
	return gs.accesses > 0 && !halts_missing(r, &gs);
}

static unsigned long invalidation_imbalance(struct kvm *kvm)
{
	unsigned long bad = 0;
	long active;

	if (!kvm)
		return 0;
	if (atomic_load(&kvm->mmu_invalidate_in_progress)) {
		fprintf(stderr, "verify: VM %d: mmu_invalidate_in_progress = %ld\n",
			kvm->id, atomic_load(&kvm->mmu_invalidate_in_progress));
		bad++;
	}
	spin_lock(&kvm->mn_invalidate_lock);
	active = kvm->mn_active_invalidate_count;
	spin_unlock(&kvm->mn_invalidate_lock);
	if (active) {
		fprintf(stderr, "verify: VM %d: mn_active_invalidate_count = %ld\n",
			kvm->id, active);
		bad++;
	}
	return bad;
}

void run_verify_live(struct run *r, struct run_verify *v)
{
	int ret;

	memset(v, 0, sizeof(*v));
	ret = guest_verify(r->w, run_host_read64, r, &v->gv);
	if (ret)
		run_unexpected(r, "guest_verify: reading guest memory", ret);
	else if (v->gv.pages_checked != r->guest_pages)
		run_unexpected(r, "guest_verify: not every page checked", -EIO);
	guest_get_stats(r->w, &v->gs);
	if (v->gv.lost_writes + v->gv.bad_pattern + v->gv.bad_scratch)
		fprintf(stderr, "verify: first bad word at gpa %#llx\n",
			(unsigned long long)v->gv.first_bad_gpa);

	v->check[CK_LOST_WRITES] = v->gv.lost_writes + v->gs.read_mismatches +
				   run_ctr(r, RC_VM_MISMATCH);
	v->check[CK_DAMAGE] = v->gv.bad_pattern + v->gv.bad_scratch;
	v->check[CK_MISSED_DIRTY] = v->gs.missed_dirty;
	v->check[CK_MIGRATION_DIFF] = run_ctr(r, RC_MIG_DIFF_PAGES);
	v->check[CK_INVALIDATIONS] = invalidation_imbalance(r->kvm) +
				     invalidation_imbalance(r->churn_vm);

	for (size_t i = 0; i < NR_FEATURES; i++)
		if (feature_on(r, i) && !feature_done(r, i))
			v->idle[v->nr_idle++] = features[i].name;
	if (r->o.memslot_churn && !r->o.migrate && !run_ctr(r, RC_LOG_ROUNDS))
		v->idle[v->nr_idle++] = "memslot-churn (dirty-log rounds)";
	if (r->o.dirty_ring && !run_ctr(r, RC_RING_PASSES))
		v->idle[v->nr_idle++] = "dirty-ring (never harvested)";
	if (halts_missing(r, &v->gs))
		v->idle[v->nr_idle++] = "halt-every (no guest halted)";
	if (!v->gs.accesses)
		v->idle[v->nr_idle++] = "guests";
	run_ring_verify(r);
	v->check[CK_IDLE] = (unsigned long)v->nr_idle;
}

/* While the host still exists (after the VMs are gone). */
void run_verify_host(struct run *r, struct run_verify *v)
{
	struct host_mem_stats ms;

	(void)r;
	host_mem_get_stats(&ms);
	v->check[CK_POISON] = ms.poison_violations;
}

void run_verify_final(struct run *r, struct run_verify *v)
{
	struct lockdep_stats ls;

	v->check[CK_INVARIANTS] = ukvm_invariant_failures();
	v->lockdep_errors = lockdep_report_count();
	v->lockdep_warnings = lockdep_warning_count();
	v->check[CK_VALIDATOR] = v->lockdep_errors + v->lockdep_warnings;
	lockdep_get_stats(&ls);
	v->lock_classes = ls.classes;
	v->lock_deps = ls.dependencies;
	/* Last: errors of the teardown count too. */
	v->check[CK_ERRORS] = run_ctr(r, RC_UNEXPECTED);
	v->pass = true;
	for (int c = 0; c < CK_NR; c++)
		if (v->check[c])
			v->pass = false;
}
