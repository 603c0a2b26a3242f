// SPDX-License-Identifier: MIT
/*
 * `ukvm diff-kvm`: differential tests against the real /dev/kvm.  The same
 * calls go to the real KVM and to ukvm, and the results must be identical:
 * the memslot API (diff_memslot.c) and dirty logging driven by a guest
 * (diff_dirty.c).  See docs/diff-kvm.md.
 *
 * Where /dev/kvm is absent or unusable the command says why and exits 0
 * ("skipped"; TAP "# SKIP" with --tap).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diff_kvm.h"
#include "lockdep/lockdep.h"
#include "machine.h"
#include "sync/bug.h"
#include "ukvm_cmd.h"

#define DEFAULT_CALLS	20000
#define MAX_PRINTED	20

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ukvm diff-kvm [OPTIONS]\n"
		"\n"
		"Make the same calls on the real /dev/kvm and on ukvm and compare the\n"
		"results: random sequences of KVM_SET_USER_MEMORY_REGION, KVM_ENABLE_CAP\n"
		"(MANUAL_DIRTY_LOG_PROTECT2), KVM_GET_DIRTY_LOG and KVM_CLEAR_DIRTY_LOG,\n"
		"valid and invalid; and a tiny guest on the real KVM and ukvm's vCPU\n"
		"making the same writes, with dirty logs, memory and MMIO exits compared.\n"
		"Exits 0 only with no disagreement; where /dev/kvm is unusable it says\n"
		"why and exits 0 (skipped).\n"
		"\n"
		"  --calls N         calls compared in each part (default %d)\n"
		"  --seed N          random seed (default: from the clock, printed)\n"
		"  --memslots-only   only the memslot API sequences\n"
		"  --dirty-only      only the guest-driven dirty-log rounds\n"
		"  --sequence N      run only sequence N of each part (reproduce a report)\n"
		"  --max-print N     disagreements printed in full (default %d)\n"
		"  --tap             TAP output (one test per part)\n"
		"  -v, --verbose     print every disagreement; twice: every call\n"
		"  -h, --help        this text\n", DEFAULT_CALLS, MAX_PRINTED);
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !*s || *s == '-')
		return false;
	*out = strtoull(s, &end, 0);
	return !*end;
}

struct part {
	const char *name;
	int (*run)(struct diff_ctx *c, struct diff_stats *st);
	bool enabled;
	bool needs_guest;
	struct diff_stats st;
	const char *skip;		/* why the part did not run */
	int err;
};

static void report(const struct diff_ctx *c, struct part *parts, int n, int *tap_nr)
{
	for (int i = 0; i < n; i++) {
		struct part *p = &parts[i];

		if (!p->enabled)
			continue;
		if (p->skip) {
			if (c->tap)
				printf("ok %d - %s # SKIP %s\n", ++*tap_nr, p->name, p->skip);
			else
				printf("%s: skipped (%s)\n", p->name, p->skip);
			continue;
		}
		if (c->tap)
			printf("%s %d - ", p->st.disagreements || p->err ? "not ok" : "ok",
			       ++*tap_nr);
		printf("%s: %" PRIu64 " calls compared, %" PRIu64 " disagreements%s\n",
		       p->name, p->st.calls, p->st.disagreements,
		       p->err ? " (stopped by an error)" : "");
		printf("# %s: %" PRIu64 " %s\n", p->name, p->st.sequences,
		       p->needs_guest ? "scenarios" : "sequences (fresh VMs)");
		diff_stats_print(&p->st, "#");
	}
}

int cmd_diff_kvm(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "calls", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 's' },
		{ "memslots-only", no_argument, NULL, 'm' },
		{ "dirty-only", no_argument, NULL, 'd' },
		{ "max-print", required_argument, NULL, 'p' },
		{ "sequence", required_argument, NULL, 'S' },
		{ "tap", no_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct part parts[] = {
		{ .name = "memslot API", .run = diff_memslot_run, .enabled = true },
		{ .name = "dirty log", .run = diff_dirty_run, .enabled = true,
		  .needs_guest = true },
	};
	struct machine_opts mo = MACHINE_OPTS_DEFAULT;
	struct diff_ctx c = { .calls = DEFAULT_CALLS, .max_printed = MAX_PRINTED,
			      .only_seq = -1 };
	bool seeded = false, only_m = false, only_d = false;
	uint64_t total = 0, bad = 0, v;
	char why[256], guest_why[256];
	int ch, r, tap_nr = 0, failures = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			if (!parse_u64(optarg, &c.calls) || !c.calls)
				goto bad_usage;
			break;
		case 's':
			if (!parse_u64(optarg, &c.seed))
				goto bad_usage;
			seeded = true;
			break;
		case 'm': only_m = true; break;
		case 'd': only_d = true; break;
		case 'p':
			if (!parse_u64(optarg, &v) || v > 1000000)
				goto bad_usage;
			c.max_printed = (unsigned int)v;
			break;
		case 'S':
			if (!parse_u64(optarg, &v) || v > INT64_MAX)
				goto bad_usage;
			c.only_seq = (int64_t)v;
			break;
		case 't': c.tap = true; break;
		case 'v': c.verbose++; break;
		case 'h': usage(stdout); return 0;
		default: goto bad_usage;
		}
	}
	if (optind < argc || (only_m && only_d))
		goto bad_usage;
	parts[0].enabled = !only_d;
	parts[1].enabled = !only_m;
	if (!seeded)
		c.seed = (uint64_t)time(NULL);

	if (!realkvm_available(why, sizeof(why)) ||
	    diff_host_probe(&c.host, why, sizeof(why))) {
		if (c.tap)
			printf("1..1\nok 1 - diff-kvm # SKIP %s\n", why);
		printf("%sdiff-kvm: skipped: %s\n", c.tap ? "# " : "", why);
		return 0;
	}
	c.vm_cfg = (struct ukvm_vm_config){
		.max_gpa_bits = c.host.max_gpa_bits,
		.nr_address_spaces = c.host.nr_as,
		.hva_limit = c.host.hva_limit,
		.dirty_log_ro_reads = c.host.ro_reads > 0,
	};
	mo.mem_bytes = 512UL << 20;
	mo.nr_cpus = 2;
	r = machine_start(&mo);
	if (r) {
		fprintf(stderr, "diff-kvm: cannot start ukvm's machine: %s\n", diff_err(r));
		return 1;
	}
	if (c.tap)
		printf("1..%d\n", (int)parts[0].enabled + (int)parts[1].enabled);
	printf("# diff-kvm: seed %" PRIu64 ", %" PRIu64 " calls per part\n", c.seed, c.calls);
	diff_host_print(&c.host);

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		struct part *p = &parts[i];

		if (!p->enabled)
			continue;
		if (p->needs_guest && !realkvm_guest_available(guest_why, sizeof(guest_why))) {
			p->skip = guest_why;
			continue;
		}
		p->err = p->run(&c, &p->st);
		if (p->err)
			fprintf(stderr, "diff-kvm: %s stopped: %s\n", p->name, diff_err(p->err));
		total += p->st.calls;
		bad += p->st.disagreements;
		failures += p->err != 0;
	}
	report(&c, parts, 2, &tap_nr);

	/* ukvm's own checks ran all along: they must have stayed silent. */
	if (ukvm_invariant_failures() || lockdep_report_count()) {
		printf("%sukvm reported %lu invariant failures, %lu validator reports\n",
		       c.tap ? "# " : "", ukvm_invariant_failures(), lockdep_report_count());
		failures++;
	}
	printf("%s%" PRIu64 " calls compared, %" PRIu64 " disagreements\n",
	       c.tap ? "# " : "", total, bad);
	machine_stop();
	return bad || failures ? 1 : 0;

bad_usage:
	usage(stderr);
	return UKVM_EXIT_USAGE;
}
