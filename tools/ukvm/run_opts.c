// SPDX-License-Identifier: MIT
/*
 * `ukvm run` options: getopt_long, --help, the --demo preset.  The preset
 * is applied first, so every other option given on the command line
 * overrides it whatever its position.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "machine.h"
#include "run.h"
#include "sync/race.h"
#include "ukvm_cmd.h"

#define DEFAULT_DURATION	10.0
#define DEFAULT_CHURN_DELAY	300
#define DEFAULT_MIG_ROUNDS	30
#define DEFAULT_RING_BYTES	(64UL << 10)	/* 4096 entries, QEMU's default */
#define MIN_RING_BYTES		(4UL << 10)	/* a page: 256 entries */
#define MAX_RING_BYTES		(1UL << 20)	/* 65536 entries */
#define DEFAULT_HALT_EVERY	4096
#define DEMO_RING_BYTES		(16UL << 10)

static void run_usage(FILE *f)
{
	fprintf(f,
"usage: ukvm run [OPTIONS]\n"
"\n"
"Run vCPU threads executing a memstress guest over memslots of real memory,\n"
"optionally with host, memslot, CPU and VM churn and live migration, then\n"
"verify that no guest write, dirty page or migrated byte was lost and that\n"
"the lock validator saw nothing wrong.  Exit status 0 when every check holds,\n"
"1 when one fails, 2 for bad usage.\n"
"\n"
"Shape of the VM and its guests:\n"
"  --vcpus N            vCPU threads (default 2, at most 64)\n"
"  --mem-per-vcpu SIZE  guest memory per vCPU, e.g. 64M (default 64M); the\n"
"                       total is rounded up to 2 MiB per memslot\n"
"  --slots N            split guest memory over N memslots (default 2)\n"
"  --huge               back guest memory with THP (2 MiB) host pages\n"
"  --ad-bits on|off     EPT Accessed/Dirty bits (default on; off: access\n"
"                       tracking by making SPTEs non-present)\n"
"  --access seq|random  each guest's order over its pages (default random)\n"
"  --write-percent P    share of guest accesses that are writes (default 50)\n"
"  --overlap            every vCPU walks all pages (default: its own share)\n"
"  --passes N           stop after each guest made N passes over its pages\n"
"  --duration S         stop after S seconds (default %.0f; not with --passes)\n"
"  --seed N             seed of the guests and of every churn thread (default 1)\n"
"  --dirty-mode M       wrprot: write-protection + fast page fault (default);\n"
"                       dbit: harvest the EPT Dirty bits (PML-like)\n"
"  --manual-protect     KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: every GET_DIRTY_LOG\n"
"                       is followed by CLEAR_DIRTY_LOG of what it returned\n"
"  --initially-set      with manual protect, KVM_DIRTY_LOG_INITIALLY_SET\n"
"                       (implies --manual-protect)\n"
"  --dirty-ring[=SIZE]  dirty logging through per-vCPU dirty rings of SIZE\n"
"                       bytes (KVM_CAP_DIRTY_LOG_RING_ACQ_REL; default %luK,\n"
"                       a power of two from 4K to 1M; 'off': bitmaps): a\n"
"                       collector thread harvests and resets them, migration\n"
"                       and the dirty-log checker work from their entries;\n"
"                       needs --dirty-mode wrprot and --migrate or\n"
"                       --memslot-churn, excludes --manual-protect\n"
"  --halt-every N       the guests halt (HLT) every N accesses until an\n"
"                       interrupt wakes them (default %d with --irqs, which\n"
"                       it needs; 0: never)\n"
"\n"
"The machine:\n"
"  --host-mem SIZE      host physical memory (default: 1.5 x guest memory\n"
"                       + 64M, at least 128M)\n"
"  --host-cpus N        simulated host CPUs (default 4)\n"
"  --lockdep on|off     the lock validator, switched at run time (default on)\n"
"\n"
"Churn, each its own thread (all off by default):\n"
"  --host-churn         host mm operations on guest pages: migrate, swap out,\n"
"                       swap in, KSM merge of identical pattern pages, THP split,\n"
"                       madvise(DONTNEED) of scratch pages (never written)\n"
"  --memslot-churn      a spare memslot created, moved, flag-toggled, deleted;\n"
"                       dirty logging turned on and off on the guest slots with\n"
"                       rounds of GET_DIRTY_LOG checked against the guests'\n"
"                       writes (with --migrate, migration owns dirty logging)\n"
"  --age                clear_young / clear_flush_young / test_young passes\n"
"  --cpu-hotplug        host CPUs offline/online, cpufreq transitions,\n"
"                       occasional suspend/resume\n"
"  --vm-churn           other VMs (a vCPU and a small memslot each) created,\n"
"                       run and destroyed in a loop\n"
"  --param-writer       a set_nx_huge_pages-like write reaching every VM\n"
"  --vcpu-ioctls        vCPUs kicked out of KVM_RUN to make ioctls that take\n"
"                       the rarer locks: APIC base (static key), Hyper-V,\n"
"                       Xen, TSC, APICv inhibit (internal memslot), first\n"
"                       shadow root (slots_arch_lock inside kvm->srcu)\n"
"  --irqs               interrupts into the vCPUs, injected and VT-d posted\n"
"                       (halted vCPUs woken through the per-CPU wakeup lists),\n"
"                       and routing updates (irq_lock, irq_srcu); the guests\n"
"                       halt (see --halt-every)\n"
"  --all-churn          all of the above\n"
"  --churn-delay US     pause of a churn thread between operations, in\n"
"                       microseconds (default %u; slower kinds pause a\n"
"                       multiple: aging 4x, VMs and vCPU ioctls 10x, CPU\n"
"                       hotplug 20x, parameter writes 1000x)\n"
"  --migrate            live migration, again and again: dirty logging on,\n"
"                       full copy, dirty-log rounds until the dirty set is\n"
"                       small, vCPUs stopped, final copy, byte-for-byte compare;\n"
"                       the last one ends the run\n"
"  --migrate-rounds N   pre-copy round limit of a migration (default %u)\n"
"\n"
"Proving the checks:\n"
"  --unsafe KNOB        remove one protection of the code (repeatable) to see\n"
"                       the checks catch the bug; the run should FAIL (or, for\n"
"                       a deadlock knob, be stopped by the validator or hang).\n"
"                       KNOB (case and '-'/'_' do not matter):\n"
"Output:\n"
"  --json FILE          write options, counters and checks as JSON ('-': stdout)\n"
"  --locks-dot FILE     write the lock graph observed in the run as Graphviz\n"
"  --quiet              no progress line and no summary: only the checks\n"
"  --watchdog S         fail (exit 1) if stopping and checking take more than\n"
"                       S seconds: a stuck thread (default 600; 0: never)\n"
"  --demo               the preset of 'make demo': 2 vCPUs, 256 MiB in 4 THP\n"
"                       slots, every kind of churn, vCPU ioctls, halting\n"
"                       guests, migration from 16K dirty rings, 25 s; other\n"
"                       options override it\n"
"  -h, --help           this text\n",
		DEFAULT_DURATION, DEFAULT_RING_BYTES >> 10, DEFAULT_HALT_EVERY,
		DEFAULT_CHURN_DELAY, DEFAULT_MIG_ROUNDS);
}

static void knobs_usage(FILE *f)
{
	fprintf(f, "\nunsafe knobs%s:\n", UKVM_RACE_POINTS ? "" :
		" (compiled out of this build: -Drace_points=false)");
	for (int k = 0; k < UNSAFE_NR; k++)
		fprintf(f, "  %-32s %s\n", ukvm_unsafe_knob_names[k], ukvm_unsafe_knob_descs[k]);
}

/* NO_WRPROT_FLUSH, no-wrprot-flush, No_Wrprot_Flush: the same knob. */
static int knob_by_name(const char *s)
{
	for (int k = 0; k < UNSAFE_NR; k++) {
		const char *n = ukvm_unsafe_knob_names[k];
		size_t i;

		for (i = 0; n[i] && s[i]; i++) {
			char c = s[i] == '-' ? '_' : (char)toupper((unsigned char)s[i]);

			if (c != n[i])
				break;
		}
		if (!n[i] && !s[i])
			return k;
	}
	return -1;
}

enum {
	O_VCPUS = 256, O_MEM, O_SLOTS, O_HUGE, O_AD, O_ACCESS, O_WRITE_PCT,
	O_OVERLAP, O_PASSES, O_DURATION, O_SEED, O_DIRTY_MODE, O_MANUAL,
	O_INIT_SET, O_HOST_MEM, O_HOST_CPUS, O_LOCKDEP, O_JSON, O_DOT, O_QUIET,
	O_HOST_CHURN, O_MEMSLOT_CHURN, O_AGE, O_HOTPLUG, O_VM_CHURN, O_PARAM,
	O_IOCTLS, O_ALL_CHURN, O_CHURN_DELAY, O_MIGRATE, O_MIG_ROUNDS, O_DEMO,
	O_UNSAFE, O_WATCHDOG, O_IRQS, O_DIRTY_RING, O_HALT_EVERY,
};

static const struct option run_longopts[] = {
	{ "vcpus", required_argument, NULL, O_VCPUS },
	{ "mem-per-vcpu", required_argument, NULL, O_MEM },
	{ "slots", required_argument, NULL, O_SLOTS },
	{ "huge", no_argument, NULL, O_HUGE },
	{ "ad-bits", required_argument, NULL, O_AD },
	{ "access", required_argument, NULL, O_ACCESS },
	{ "write-percent", required_argument, NULL, O_WRITE_PCT },
	{ "overlap", no_argument, NULL, O_OVERLAP },
	{ "passes", required_argument, NULL, O_PASSES },
	{ "duration", required_argument, NULL, O_DURATION },
	{ "seed", required_argument, NULL, O_SEED },
	{ "dirty-mode", required_argument, NULL, O_DIRTY_MODE },
	{ "manual-protect", no_argument, NULL, O_MANUAL },
	{ "initially-set", no_argument, NULL, O_INIT_SET },
	{ "dirty-ring", optional_argument, NULL, O_DIRTY_RING },
	{ "halt-every", required_argument, NULL, O_HALT_EVERY },
	{ "host-mem", required_argument, NULL, O_HOST_MEM },
	{ "host-cpus", required_argument, NULL, O_HOST_CPUS },
	{ "lockdep", required_argument, NULL, O_LOCKDEP },
	{ "json", required_argument, NULL, O_JSON },
	{ "locks-dot", required_argument, NULL, O_DOT },
	{ "quiet", no_argument, NULL, O_QUIET },
	{ "host-churn", no_argument, NULL, O_HOST_CHURN },
	{ "memslot-churn", no_argument, NULL, O_MEMSLOT_CHURN },
	{ "age", no_argument, NULL, O_AGE },
	{ "cpu-hotplug", no_argument, NULL, O_HOTPLUG },
	{ "vm-churn", no_argument, NULL, O_VM_CHURN },
	{ "param-writer", no_argument, NULL, O_PARAM },
	{ "vcpu-ioctls", no_argument, NULL, O_IOCTLS },
	{ "irqs", no_argument, NULL, O_IRQS },
	{ "all-churn", no_argument, NULL, O_ALL_CHURN },
	{ "churn-delay", required_argument, NULL, O_CHURN_DELAY },
	{ "migrate", no_argument, NULL, O_MIGRATE },
	{ "migrate-rounds", required_argument, NULL, O_MIG_ROUNDS },
	{ "demo", no_argument, NULL, O_DEMO },
	{ "unsafe", required_argument, NULL, O_UNSAFE },
	{ "watchdog", required_argument, NULL, O_WATCHDOG },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void set_defaults(struct run_opts *o)
{
	*o = (struct run_opts){
		.vcpus = 2, .mem_per_vcpu = 64UL << 20, .slots = 2,
		.ad_bits = true, .random = true, .write_percent = 50,
		.duration_s = DEFAULT_DURATION, .seed = 1,
		.dirty_mode = UKVM_DIRTY_WRPROT, .host_cpus = 4, .lockdep = true,
		.churn_delay_us = DEFAULT_CHURN_DELAY,
		.migrate_rounds = DEFAULT_MIG_ROUNDS, .watchdog_s = 600,
	};
}

static void set_all_churn(struct run_opts *o)
{
	o->host_churn = o->memslot_churn = o->age = o->cpu_hotplug = true;
	o->vm_churn = o->param_writer = o->vcpu_ioctls = o->irqs = true;
}

static void apply_demo(struct run_opts *o)
{
	o->demo = true;
	o->vcpus = 2;
	o->mem_per_vcpu = 128UL << 20;
	o->slots = 4;
	o->huge = true;
	o->duration_s = 25.0;
	set_all_churn(o);
	o->migrate = true;
	/* Small rings: the collector is outrun now and then (full exits). */
	o->dirty_ring = true;
	o->ring_bytes = DEMO_RING_BYTES;
}

static int bad(const char *opt, const char *arg, const char *want)
{
	fprintf(stderr, "ukvm run: bad value '%s' for --%s: %s (see 'ukvm run --help')\n",
		arg, opt, want);
	return UKVM_EXIT_USAGE;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static int on_off(const char *opt, const char *arg, bool *out)
{
	if (!strcmp(arg, "on"))
		*out = true;
	else if (!strcmp(arg, "off"))
		*out = false;
	else
		return bad(opt, arg, "expected on or off");
	return 0;
}

#define NUM_ARG(_name, _min, _max, _dst)                                      \
	do {                                                                  \
		uint64_t __v;                                                 \
		if (!parse_u64(optarg, (_min), (_max), &__v))                 \
			return bad((_name), optarg, "expected an integer in " \
				   #_min ".." #_max);                         \
		(_dst) = __v;                                                 \
	} while (0)

/* Options given on the command line (not by the --demo preset). */
struct given {
	bool passes, duration, ring, halt;
};

/* One option of the second pass; 0 or UKVM_EXIT_USAGE. */
static int parse_one(int c, struct run_opts *o, struct given *set)
{
	char *end;

	switch (c) {
	case O_VCPUS: NUM_ARG("vcpus", 1, 64, o->vcpus); break;
	case O_MEM:
		if (!parse_size(optarg, &o->mem_per_vcpu) || o->mem_per_vcpu < (64UL << 10))
			return bad("mem-per-vcpu", optarg, "expected a size of at least 64K, e.g. 64M");
		break;
	case O_SLOTS: NUM_ARG("slots", 1, 512, o->slots); break;
	case O_HUGE: o->huge = true; break;
	case O_AD: return on_off("ad-bits", optarg, &o->ad_bits);
	case O_ACCESS:
		if (!strcmp(optarg, "seq"))
			o->random = false;
		else if (!strcmp(optarg, "random"))
			o->random = true;
		else
			return bad("access", optarg, "expected seq or random");
		break;
	case O_WRITE_PCT: NUM_ARG("write-percent", 0, 100, o->write_percent); break;
	case O_OVERLAP: o->overlap = true; break;
	case O_PASSES:
		NUM_ARG("passes", 1, 1000000000, o->passes);
		set->passes = true;
		break;
	case O_DURATION:
		errno = 0;
		o->duration_s = strtod(optarg, &end);
		if (errno || end == optarg || *end || !(o->duration_s > 0) ||
		    o->duration_s > 7 * 86400.0)
			return bad("duration", optarg, "expected seconds, > 0");
		set->duration = true;
		break;
	case O_SEED:
		if (!parse_u64(optarg, 0, UINT64_MAX, &o->seed))
			return bad("seed", optarg, "expected an unsigned 64-bit integer");
		break;
	case O_DIRTY_MODE:
		if (!strcmp(optarg, "wrprot"))
			o->dirty_mode = UKVM_DIRTY_WRPROT;
		else if (!strcmp(optarg, "dbit"))
			o->dirty_mode = UKVM_DIRTY_DBIT;
		else
			return bad("dirty-mode", optarg, "expected wrprot or dbit");
		break;
	case O_MANUAL: o->manual_protect = true; break;
	case O_INIT_SET: o->manual_protect = o->initially_set = true; break;
	case O_DIRTY_RING:
		set->ring = true;
		if (optarg && !strcmp(optarg, "off")) {
			o->dirty_ring = false;
			break;
		}
		o->dirty_ring = true;
		o->ring_bytes = DEFAULT_RING_BYTES;
		if (optarg && (!parse_size(optarg, &o->ring_bytes) ||
			       o->ring_bytes < MIN_RING_BYTES || o->ring_bytes > MAX_RING_BYTES ||
			       (o->ring_bytes & (o->ring_bytes - 1))))
			return bad("dirty-ring", optarg,
				   "expected a power of two from 4K to 1M, or off");
		break;
	case O_HALT_EVERY:
		NUM_ARG("halt-every", 0, 1000000000, o->halt_every);
		set->halt = true;
		break;
	case O_HOST_MEM:
		if (!parse_size(optarg, &o->host_mem) || o->host_mem < (16UL << 20))
			return bad("host-mem", optarg, "expected a size of at least 16M");
		break;
	case O_HOST_CPUS: NUM_ARG("host-cpus", 1, 64, o->host_cpus); break;
	case O_LOCKDEP: return on_off("lockdep", optarg, &o->lockdep);
	case O_JSON: o->json_path = optarg; break;
	case O_DOT: o->dot_path = optarg; break;
	case O_QUIET: o->quiet = true; break;
	case O_HOST_CHURN: o->host_churn = true; break;
	case O_MEMSLOT_CHURN: o->memslot_churn = true; break;
	case O_AGE: o->age = true; break;
	case O_HOTPLUG: o->cpu_hotplug = true; break;
	case O_VM_CHURN: o->vm_churn = true; break;
	case O_PARAM: o->param_writer = true; break;
	case O_IOCTLS: o->vcpu_ioctls = true; break;
	case O_IRQS: o->irqs = true; break;
	case O_ALL_CHURN: set_all_churn(o); break;
	case O_CHURN_DELAY: NUM_ARG("churn-delay", 0, 1000000, o->churn_delay_us); break;
	case O_MIGRATE: o->migrate = true; break;
	case O_MIG_ROUNDS: NUM_ARG("migrate-rounds", 1, RUN_MAX_MIG_ROUNDS - 2, o->migrate_rounds); break;
	case O_WATCHDOG: NUM_ARG("watchdog", 0, 86400, o->watchdog_s); break;
	case O_DEMO: break;	/* applied in the first pass */
	case O_UNSAFE: {
		int k = knob_by_name(optarg);

		if (k < 0)
			return bad("unsafe", optarg, "not a knob (the list is at the end of --help)");
		if (!UKVM_RACE_POINTS) {
			fprintf(stderr, "ukvm run: --unsafe: the knobs are compiled out of this "
				"build (-Drace_points=false)\n");
			return UKVM_EXIT_USAGE;
		}
		o->unsafe_mask |= 1u << k;
		break;
	}
	default:
		fprintf(stderr, "ukvm run: see 'ukvm run --help'\n");
		return UKVM_EXIT_USAGE;
	}
	return 0;
}

/* Combinations; 0 or UKVM_EXIT_USAGE. */
static int check_combinations(struct run_opts *o, const struct given *set)
{
	if (set->passes && set->duration) {
		fprintf(stderr, "ukvm run: --passes and --duration exclude each other\n");
		return UKVM_EXIT_USAGE;
	}
	if (set->passes)
		o->duration_s = 0;
	if (!o->overlap && (uint64_t)o->mem_per_vcpu / 4096 < 1) {
		fprintf(stderr, "ukvm run: --mem-per-vcpu is too small\n");
		return UKVM_EXIT_USAGE;
	}
	/* The demo's ring gives way to a dirty-log protocol chosen explicitly. */
	if (o->dirty_ring && !set->ring &&
	    (o->dirty_mode == UKVM_DIRTY_DBIT || o->manual_protect))
		o->dirty_ring = false;
	if (o->dirty_ring && o->dirty_mode == UKVM_DIRTY_DBIT) {
		fprintf(stderr, "ukvm run: --dirty-ring needs --dirty-mode wrprot: the Dirty-bit "
			"mode (PML-like) has no dirty ring (KVM_ENABLE_CAP refuses it: EINVAL)\n");
		return UKVM_EXIT_USAGE;
	}
	if (o->dirty_ring && o->manual_protect) {
		fprintf(stderr, "ukvm run: --dirty-ring excludes --manual-protect and "
			"--initially-set (protocols of the dirty bitmap)\n");
		return UKVM_EXIT_USAGE;
	}
	if (o->dirty_ring && !o->migrate && !o->memslot_churn) {
		fprintf(stderr, "ukvm run: --dirty-ring needs a dirty-log user: --migrate or "
			"--memslot-churn\n");
		return UKVM_EXIT_USAGE;
	}
	if (!set->halt)
		o->halt_every = o->irqs ? DEFAULT_HALT_EVERY : 0;
	else if (o->halt_every && !o->irqs) {
		fprintf(stderr, "ukvm run: --halt-every needs --irqs: a halted vCPU sleeps "
			"until an interrupt wakes it\n");
		return UKVM_EXIT_USAGE;
	}
	return 0;
}

int run_parse_opts(int argc, char **argv, struct run_opts *o)
{
	struct given set = { 0 };
	size_t size;
	int c, ret;

	set_defaults(o);
	argv[0] = (char *)"ukvm run";	/* getopt's own messages */
	/* First pass: --help and --demo (quietly: errors come in the second). */
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", run_longopts, NULL)) != -1) {
		if (c == 'h') {
			run_usage(stdout);
			knobs_usage(stdout);
			return 1;
		}
		if (c == O_DEMO)
			apply_demo(o);
	}
	opterr = 1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", run_longopts, NULL)) != -1) {
		ret = parse_one(c, o, &set);
		if (ret)
			return ret;
	}
	if (optind < argc) {
		fprintf(stderr, "ukvm run: unexpected argument '%s'%s (see 'ukvm run --help')\n",
			argv[optind], parse_size(argv[optind], &size) ?
			" (the ring's size goes with an '=': --dirty-ring=SIZE)" : "");
		return UKVM_EXIT_USAGE;
	}
	ret = check_combinations(o, &set);
	if (ret)
		return ret;
#if !UKVM_LOCKDEP
	if (o->lockdep) {
		fprintf(stderr, "ukvm run: note: the validator is compiled out of this "
			"build (-Dlockdep=false): --lockdep on has no effect\n");
	}
#endif
	return 0;
}

void run_opts_describe(const struct run_opts *o, char *buf, size_t len)
{
	static const struct { size_t off; const char *name; } flags[] = {
		{ offsetof(struct run_opts, host_churn), "host" },
		{ offsetof(struct run_opts, memslot_churn), "memslot" },
		{ offsetof(struct run_opts, age), "age" },
		{ offsetof(struct run_opts, cpu_hotplug), "cpu-hotplug" },
		{ offsetof(struct run_opts, vm_churn), "vm" },
		{ offsetof(struct run_opts, param_writer), "param-writer" },
		{ offsetof(struct run_opts, vcpu_ioctls), "vcpu-ioctls" },
		{ offsetof(struct run_opts, irqs), "irqs" },
		{ offsetof(struct run_opts, migrate), "migrate" },
	};
	size_t n = 0;
	bool any = false;

	n += (size_t)snprintf(buf + n, len - n, "churn:");
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]) && n < len; i++) {
		if (!*(const bool *)((const char *)o + flags[i].off))
			continue;
		n += (size_t)snprintf(buf + n, len - n, " %s", flags[i].name);
		any = true;
	}
	if (!any && n < len)
		snprintf(buf + n, len - n, " none");
}
