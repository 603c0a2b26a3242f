/* SPDX-License-Identifier: MIT */
/* The ukvm command: one file per subcommand, dispatched by main.c. */
#ifndef UKVM_TOOLS_CMD_H
#define UKVM_TOOLS_CMD_H

struct ukvm_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

int cmd_locks(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Exit status for bad usage (getopt errors, unknown names). */
#define UKVM_EXIT_USAGE 2

#endif /* UKVM_TOOLS_CMD_H */
