/* SPDX-License-Identifier: MIT */
/*
 * ukvm: KVM's memory-virtualization core and locking design in userspace.
 * `ukvm COMMAND [OPTIONS]`; `ukvm COMMAND --help` documents each command.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ukvm_cmd.h"

static const struct ukvm_cmd commands[] = {
	{ "run", cmd_run, "run guests with churn, live migration and end-to-end verification" },
	{ "race", cmd_race, "deterministic replays of the races and deadlocks of locking.rst" },
	{ "locks", cmd_locks, "the lock validator: documented order, self-test, checks" },
	{ "bench", cmd_bench, "benchmarks, each next to a reference measured in the same run" },
	{ "diff-kvm", cmd_diff_kvm, "differential tests against the real /dev/kvm" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ukvm COMMAND [OPTIONS]   (ukvm COMMAND --help for details)\n\n"
		   "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].fn)
			fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nukvm %s\n", UKVM_VERSION);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? UKVM_EXIT_USAGE : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("ukvm %s\n", UKVM_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].fn && !strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "ukvm: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return UKVM_EXIT_USAGE;
}
