/* SPDX-License-Identifier: MIT */
/* The ukvm command: one file per subcommand, dispatched by main.c. */
#ifndef UKVM_TOOLS_CMD_H
#define UKVM_TOOLS_CMD_H

struct ukvm_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

/*
 * Each command lives in its own file (cmd_<name>.c).  Declared weak so that
 * the table of main.c lists only the commands this binary was built with.
 */
int cmd_run(int argc, char **argv) __attribute__((weak));
int cmd_race(int argc, char **argv) __attribute__((weak));
int cmd_locks(int argc, char **argv) __attribute__((weak));
int cmd_bench(int argc, char **argv) __attribute__((weak));
int cmd_diff_kvm(int argc, char **argv) __attribute__((weak));

/* Exit status for bad usage (getopt errors, unknown names). */
#define UKVM_EXIT_USAGE 2

#endif /* UKVM_TOOLS_CMD_H */
