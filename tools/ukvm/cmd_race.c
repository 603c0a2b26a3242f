// SPDX-License-Identifier: MIT
/*
 * `ukvm race`: deterministic replays of the races and deadlocks of
 * locking.rst.  Each scenario runs as ukvm does it (the protection in place:
 * the outcome must be correct) and with --unsafe (one knob removes exactly
 * that protection: the bug must happen and be caught by the check that
 * guards real runs).  See docs/race.md.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "lockdep/lockdep.h"
#include "lockdep/order.h"
#include "machine.h"
#include "race_harness.h"
#include "ukvm_cmd.h"

static const struct race_scenario *const scenarios[] = {
	&race_lost_dirty_bit,
	&race_missed_tlb_flush,
	&race_stale_pfn_install,
	&race_notifier_memslot_imbalance,
	&race_srcu_sync_in_reader,
	&race_usage_lock_deadlock,
	&race_vcpu_mutex_vs_slots_lock,
	&race_notifier_takes_slots_lock,
	&race_fast_pf_aba,
};

#define NR_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

struct race_opts {
	bool unsafe, verbose, tap;
};

/* ---- the machine: current design, or legacy usage locking for one run ---- */

static bool machine_running, machine_legacy;

static int machine_up(bool legacy)
{
	struct machine_opts o = MACHINE_OPTS_DEFAULT;
	int r;

	if (machine_running && machine_legacy == legacy)
		return 0;
	if (machine_running)
		machine_stop();
	machine_running = false;
	o.mem_bytes = 256UL << 20;
	o.legacy_usage = legacy;
	/* The validator checks against the order of the design that runs. */
	lockdep_order_set_variant(legacy ? "legacy" : "current");
	r = machine_start(&o);
	if (r) {
		fprintf(stderr, "ukvm race: machine start (%s design) failed: %s\n",
			legacy ? "legacy" : "current", strerror(-r));
		return r;
	}
	machine_running = true;
	machine_legacy = legacy;
	return 0;
}

static void machine_down(void)
{
	if (machine_running)
		machine_stop();
	machine_running = false;
	lockdep_order_set_variant("current");
}

/* ---- one run ---- */

/* Why @s cannot run (@unsafe: its unsafe run) in this build (NULL: it can). */
static const char *skip_reason(const struct race_scenario *s, bool unsafe)
{
	if (s->skip)
		return s->skip;
	if (UKVM_TSAN && unsafe && s->tsan_unsafe_skip)
		return s->tsan_unsafe_skip;
	if (!UKVM_RACE_POINTS)
		return "race points compiled out (-Drace_points=false)";
	if (s->needs_lockdep && !UKVM_LOCKDEP)
		return "needs the lock validator (compiled out: -Dlockdep=false)";
	return NULL;
}

static const char *verdict_word(enum race_verdict v)
{
	switch (v) {
	case RACE_CORRECT:
		return "CORRECT";
	case RACE_BUG:
		return "BUG SHOWN";
	case RACE_SKIPPED:
		return "SKIPPED";
	default:
		return "BROKEN";
	}
}

static void print_header(const struct race_scenario *s, const struct race_opts *o,
			 const char *pfx)
{
	printf("%s=== %s, %s ===\n", pfx, s->name,
	       o->unsafe ? "unsafe" : "safe (as ukvm does it)");
	race_print_prefixed(stdout, s->rule, pfx);
	if (o->unsafe && s->knob >= 0)
		printf("%sknob UNSAFE_%s removes exactly one protection: %s\n", pfx,
		       ukvm_unsafe_knob_names[s->knob], ukvm_unsafe_knob_descs[s->knob]);
	printf("%s\n", pfx);
	if (s->table)
		race_print_table(stdout, s->table, o->unsafe, pfx);
	printf("%s\n%ssteps:\n", pfx, pfx);
	fflush(stdout);
}

/*
 * Run @s once.  @full: print the header, table, steps and evidence (else
 * only what `all` prints).  Returns the verdict; *@ok says whether it is
 * the expected one.
 */
static enum race_verdict run_one(const struct race_scenario *s,
				 const struct race_opts *o, bool full,
				 int tap_nr, bool *ok)
{
	const char *pfx = o->tap ? "# " : "", *why = skip_reason(s, o->unsafe);
	enum race_verdict v;
	struct race_ctx ctx;

	if (why) {
		*ok = true;
		if (o->tap)
			printf("ok %d - %s %s # SKIP %s\n", tap_nr, s->name,
			       o->unsafe ? "unsafe" : "safe", why);
		else
			printf("%-28s %-7s SKIPPED: %s\n", s->name,
			       o->unsafe ? "unsafe" : "safe", why);
		return RACE_SKIPPED;
	}
	if (machine_up(o->unsafe && s->legacy_unsafe))
		return *ok = false, RACE_BROKEN;
	if (full)
		print_header(s, o, pfx);
	race_ctx_init(&ctx, s->name, o->unsafe, o->verbose, !full, o->tap);
	if (o->unsafe && s->knob >= 0)
		ukvm_unsafe_set((enum ukvm_unsafe_knob)s->knob, true);
	v = s->run(&ctx);
	ukvm_unsafe_clear_all();
	race_ctx_end_capture(&ctx);
	*ok = o->unsafe ? v == RACE_BUG : v == RACE_CORRECT;

	if (full && o->verbose) {
		printf("%s\n", pfx);
		race_print_hits(&ctx, pfx);
	}
	if (full && ctx.lockdep_text && *ctx.lockdep_text) {
		printf("%s\n%sthe lock validator's report%s:\n%s\n", pfx, pfx,
		       o->unsafe ? "" : " (unexpected)", pfx);
		race_print_prefixed(stdout, ctx.lockdep_text +
				    strspn(ctx.lockdep_text, "\n"), pfx);
	}
	if (o->tap)
		printf("%sok %d - %s %s: %s\n", *ok ? "" : "not ", tap_nr, s->name,
		       o->unsafe ? "unsafe" : "safe", verdict_word(v));
	if (full || o->tap) {
		if (!o->tap)
			printf("\noutcome: %s (expected: %s)%s\n", verdict_word(v),
			       o->unsafe ? "the bug shown" : "correct",
			       *ok ? "" : "  <-- UNEXPECTED");
		for (int i = 0; i < ctx.nr_evidence; i++)
			printf("%s  %s\n", o->tap ? "# " : "", ctx.evidence[i]);
	} else {
		printf("%-28s %-7s %-9s %s%s\n", s->name, o->unsafe ? "unsafe" : "safe",
		       verdict_word(v), ctx.nr_evidence ? ctx.evidence[0] : "",
		       *ok ? "" : "  <-- UNEXPECTED");
	}
	if (full)
		printf("%s\n", pfx);
	fflush(stdout);
	race_ctx_fini(&ctx);
	return v;
}

/* ---- the command ---- */

static void race_usage(FILE *f)
{
	fprintf(f,
		"usage: ukvm race list\n"
		"       ukvm race NAME [--unsafe] [--verbose] [--tap]\n"
		"       ukvm race all [--verbose] [--tap]\n"
		"\n"
		"Deterministic replays of the races and deadlocks of locking.rst.  A\n"
		"scenario stops one thread at a race point until another reaches another\n"
		"point, so the interleaving of locking.rst's CPU 0 / CPU 1 table happens\n"
		"every time: no sleeps, no timing.  As ukvm does it, the protection holds\n"
		"and the outcome is correct; with --unsafe one knob removes exactly that\n"
		"protection, the bug happens, and the check that guards real runs catches\n"
		"it (guest tags and dirty-round checks, host poison, Appendix B\n"
		"invariants, the lock validator).\n"
		"\n"
		"  list          the scenarios, one line each\n"
		"  NAME          run one scenario: its table, the steps as they happen,\n"
		"                the outcome and its evidence\n"
		"  all           every scenario, safe then unsafe (a summary line each)\n"
		"  --unsafe      with NAME: remove the protection (the scenario's knob)\n"
		"  --verbose     print every race point the scenario's threads reach; with\n"
		"                all: the full output of every run\n"
		"  --tap         TAP output (ok N - ... / # SKIP) for test harnesses\n"
		"  -h, --help    this text\n"
		"\n"
		"Exit status: 0 when every run had its expected outcome (safe: correct,\n"
		"unsafe: the bug shown; skipped runs count as expected), 1 otherwise,\n"
		"2 for bad usage.  Documentation: docs/race.md.\n");
}

static int race_bad_usage(void)
{
	fprintf(stderr, "usage: ukvm race list | NAME [--unsafe] [--verbose] [--tap] | "
		"all [--verbose] [--tap]\n       (ukvm race --help for details)\n");
	return UKVM_EXIT_USAGE;
}

static void race_list(void)
{
	for (size_t i = 0; i < NR_SCENARIOS; i++) {
		const struct race_scenario *s = scenarios[i];
		const char *why = skip_reason(s, false);

		if (why)
			printf("%-28s %s  [skipped: %s]\n", s->name, s->summary, why);
		else
			printf("%-28s %s\n", s->name, s->summary);
	}
}

static const struct race_scenario *find_scenario(const char *name)
{
	for (size_t i = 0; i < NR_SCENARIOS; i++)
		if (!strcmp(scenarios[i]->name, name))
			return scenarios[i];
	return NULL;
}

static int race_all(struct race_opts *o)
{
	int nr = 0, failed = 0;
	bool ok;

	if (o->tap)
		printf("1..%zu\n", 2 * NR_SCENARIOS);
	for (size_t i = 0; i < NR_SCENARIOS; i++) {
		for (int unsafe = 0; unsafe <= 1; unsafe++) {
			o->unsafe = unsafe;
			run_one(scenarios[i], o, o->verbose, ++nr, &ok);
			failed += !ok;
		}
	}
	machine_down();
	if (!o->tap)
		printf("\n%d run%s, %d unexpected\n", nr, nr == 1 ? "" : "s", failed);
	return failed ? 1 : 0;
}

int cmd_race(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "unsafe", no_argument, NULL, 'u' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "tap", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct race_opts o = { 0 };
	const struct race_scenario *s;
	const char *what;
	bool ok;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "uvth", longopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			o.unsafe = true;
			break;
		case 'v':
			o.verbose = true;
			break;
		case 't':
			o.tap = true;
			break;
		case 'h':
			race_usage(stdout);
			return 0;
		default:
			return race_bad_usage();
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "ukvm race: %s\n", optind == argc ?
			"missing scenario name (or list, all)" : "one scenario at a time");
		return race_bad_usage();
	}
	what = argv[optind];
	if (!strcmp(what, "list")) {
		if (o.unsafe || o.tap || o.verbose) {
			fprintf(stderr, "ukvm race: list takes no option\n");
			return UKVM_EXIT_USAGE;
		}
		race_list();
		return 0;
	}
	if (!strcmp(what, "all")) {
		if (o.unsafe) {
			fprintf(stderr, "ukvm race: all runs every scenario both ways; "
				"--unsafe is for one scenario\n");
			return UKVM_EXIT_USAGE;
		}
		return race_all(&o);
	}
	s = find_scenario(what);
	if (!s) {
		fprintf(stderr, "ukvm race: unknown scenario '%s' (ukvm race list)\n", what);
		return UKVM_EXIT_USAGE;
	}
	if (o.tap)
		printf("1..1\n");
	run_one(s, &o, true, 1, &ok);
	machine_down();
	return ok ? 0 : 1;
}
