/* SPDX-License-Identifier: MIT */
/*
 * The scenarios of `ukvm race`: one interleaving of locking.rst each, run as
 * ukvm does it (the protection in place) and with --unsafe (one knob of
 * src/sync/race.h removes exactly that protection).
 */
#ifndef UKVM_TOOLS_RACE_SCENARIOS_H
#define UKVM_TOOLS_RACE_SCENARIOS_H

#include <stdbool.h>

#include "race_harness.h"

struct race_scenario {
	const char *name;
	const char *summary;		/* one line, for `ukvm race list` */
	const char *rule;		/* the rule of locking.rst, in our words */
	int knob;			/* enum ukvm_unsafe_knob, -1 if none */
	const char *skip;		/* why it can never run here, or NULL */
	const char *tsan_unsafe_skip;	/* why the unsafe run cannot run under TSan */
	bool needs_lockdep;		/* judged (or kept from hanging) by it */
	bool legacy_unsafe;		/* the unsafe run needs legacy_usage */
	const struct race_table *table;
	/* Set up, replay the interleaving (ctx->unsafe: knob on), tear down. */
	enum race_verdict (*run)(struct race_ctx *ctx);
};

/* race_mmu.c */
extern const struct race_scenario race_lost_dirty_bit;
extern const struct race_scenario race_missed_tlb_flush;
extern const struct race_scenario race_stale_pfn_install;
extern const struct race_scenario race_notifier_memslot_imbalance;
/* race_locks.c */
extern const struct race_scenario race_srcu_sync_in_reader;
extern const struct race_scenario race_usage_lock_deadlock;
extern const struct race_scenario race_vcpu_mutex_vs_slots_lock;
extern const struct race_scenario race_notifier_takes_slots_lock;
extern const struct race_scenario race_fast_pf_aba;

/* Verdict of a run from what its own check saw and whether all else was clean. */
static inline enum race_verdict race_judge(bool bug_caught, bool clean)
{
	if (bug_caught)
		return RACE_BUG;
	return clean ? RACE_CORRECT : RACE_BROKEN;
}

#endif /* UKVM_TOOLS_RACE_SCENARIOS_H */
