// SPDX-License-Identifier: MIT
/*
 * `ukvm locks`: the lock validator from the command line.  Prints the
 * documented lock order as a table or a Graphviz picture, checks it (and
 * the lock classes compiled into this binary) for consistency, and runs the
 * validator's self-test.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "lockdep/lockdep.h"
#include "lockdep/order.h"
#include "lockdep/selftest.h"
#include "ukvm_cmd.h"

static void locks_usage(FILE *f)
{
	fprintf(f,
		"usage: ukvm locks [OPTIONS]\n"
		"\n"
		"The lock validator and the documented lock order (src/lockdep/lock-order.txt).\n"
		"\n"
		"  --order             print the documented order: classes by section (type,\n"
		"                      scope, leaf, what they protect, source), then the rules\n"
		"                      OUTER => INNER, outermost first\n"
		"  --dot FILE          write the documented order as Graphviz DOT ('-': stdout)\n"
		"  --png FILE          render it to PNG with Graphviz 'dot' (must be on PATH)\n"
		"  --check             check the order (no deadlock cycle among the rules, every\n"
		"                      rule names declared classes, modes fit types) and that\n"
		"                      every lock class compiled into ukvm is declared in it;\n"
		"                      exit 0 if consistent, 1 if not\n"
		"  --selftest          run the validator's self-test cases; exit 0 if all pass\n"
		"  --tap               with --selftest: print TAP (ok N - name) for test harnesses\n"
		"  --verbose           with --selftest: show the report each case produced\n"
		"  --filter TEXT       with --selftest: only the cases whose name contains TEXT\n"
		"  --order-file FILE   use FILE instead of the built-in order for the options above\n"
		"  --legacy            use the legacy variant of the order (kvm_lock protecting\n"
		"                      kvm_usage_count, before commit 44d17459) instead of current\n"
		"  -h, --help          this text\n"
		"\n"
		"With no option, --order is assumed.\n");
}

struct locks_opts {
	bool order, check, selftest, tap, verbose, legacy;
	const char *dot, *png, *order_file, *filter;
};

static int parse_opts(int argc, char **argv, struct locks_opts *o)
{
	static const struct option longopts[] = {
		{ "order", no_argument, NULL, 'o' },
		{ "dot", required_argument, NULL, 'd' },
		{ "png", required_argument, NULL, 'p' },
		{ "check", no_argument, NULL, 'c' },
		{ "selftest", no_argument, NULL, 's' },
		{ "tap", no_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "filter", required_argument, NULL, 'f' },
		{ "order-file", required_argument, NULL, 'F' },
		{ "legacy", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': o->order = true; break;
		case 'd': o->dot = optarg; break;
		case 'p': o->png = optarg; break;
		case 'c': o->check = true; break;
		case 's': o->selftest = true; break;
		case 't': o->tap = true; break;
		case 'v': o->verbose = true; break;
		case 'f': o->filter = optarg; break;
		case 'F': o->order_file = optarg; break;
		case 'l': o->legacy = true; break;
		case 'h': locks_usage(stdout); return 0;
		default:
			fprintf(stderr, "ukvm locks: see 'ukvm locks --help'\n");
			return UKVM_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ukvm locks: unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return UKVM_EXIT_USAGE;
	}
	if ((o->tap || o->verbose || o->filter) && !o->selftest) {
		fprintf(stderr, "ukvm locks: --tap, --verbose and --filter go with --selftest\n");
		return UKVM_EXIT_USAGE;
	}
	if (!o->dot && !o->png && !o->check && !o->selftest)
		o->order = true;
	return -1;
}

static int load_order(const struct locks_opts *o)
{
	const char *variant = o->legacy ? "legacy" : "current";
	char err[4096];
	int ret;

	if (o->order_file)
		ret = lockdep_order_load_file(o->order_file, variant, err, sizeof(err));
	else
		ret = lockdep_order_load_text(ukvm_lock_order_text,
					      "src/lockdep/lock-order.txt",
					      variant, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "ukvm locks: cannot load the lock order:\n%s", err);
		return 1;
	}
	return 0;
}

static int write_dot(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;

	if (!f) {
		perror(path);
		return 1;
	}
	lockdep_order_write_dot(f);
	if (f != stdout && fclose(f)) {
		perror(path);
		return 1;
	}
	return 0;
}

static int write_png(const char *path)
{
	FILE *p;
	char cmd[4200];
	int status;

	if (system("command -v dot >/dev/null 2>&1") != 0) {
		fprintf(stderr, "ukvm locks: --png needs Graphviz's 'dot' on PATH "
			"(Debian: apt-get install graphviz); --dot FILE writes the source\n");
		return 1;
	}
	if (strchr(path, '\'')) {
		fprintf(stderr, "ukvm locks: --png: quote characters in the file name are not supported\n");
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "dot -Tpng -o '%s'", path);
	p = popen(cmd, "w");
	if (!p) {
		perror("dot");
		return 1;
	}
	lockdep_order_write_dot(p);
	status = pclose(p);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "ukvm locks: dot failed to render %s\n", path);
		return 1;
	}
	return 0;
}

static int run_check(void)
{
	int bad = lockdep_order_check(stdout, true);

	if (bad) {
		printf("%s (variant %s): %d problem%s\n", lockdep_order_origin(),
		       lockdep_order_variant(), bad, bad > 1 ? "s" : "");
		return 1;
	}
	printf("%s (variant %s): %d classes, %d rules, no cycle; every compiled-in lock class is declared\n",
	       lockdep_order_origin(), lockdep_order_variant(),
	       lockdep_order_nr_classes(), lockdep_order_nr_rules());
	return 0;
}

static int run_selftest(const struct locks_opts *o)
{
#if UKVM_LOCKDEP
	int failed = lockdep_selftest(stdout, o->tap, o->verbose, o->filter);

	return failed ? 1 : 0;
#else
	(void)o;
	fprintf(stderr, "ukvm locks: the validator is compiled out of this build (-Dlockdep=false)\n");
	return 1;
#endif
}

int cmd_locks(int argc, char **argv)
{
	struct locks_opts o = { 0 };
	int ret = parse_opts(argc, argv, &o);

	if (ret >= 0)
		return ret;
	ret = 0;
	if (o.selftest)
		ret |= run_selftest(&o);
	if (load_order(&o))
		return 1;
	if (o.order)
		lockdep_order_print_table(stdout);
	if (o.dot)
		ret |= write_dot(o.dot);
	if (o.png)
		ret |= write_png(o.png);
	if (o.check)
		ret |= run_check();
	return ret;
}
