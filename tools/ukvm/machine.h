/* SPDX-License-Identifier: MIT */
/*
 * The machine every subcommand runs on: the host (physical memory, the VMM's
 * address space, simulated CPUs) and the KVM "module" (x86), set up and torn
 * down the same way everywhere.
 */
#ifndef UKVM_TOOLS_MACHINE_H
#define UKVM_TOOLS_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct machine_opts {
	size_t mem_bytes;	/* host physical memory */
	unsigned int nr_cpus;	/* simulated host CPUs */
	size_t swap_bytes;
	bool poison_frames;	/* detect writes into freed frames (debug) */
	bool legacy_usage;	/* kvm_usage_count under kvm_lock (0bf50497) */
};

#define MACHINE_OPTS_DEFAULT { .mem_bytes = 1UL << 30, .nr_cpus = 4, \
			       .swap_bytes = 64UL << 20, .poison_frames = true }

/* Register the calling thread, create the host, load KVM.  0 or -errno. */
int machine_start(const struct machine_opts *o);
void machine_stop(void);

/* Parse "512M", "2G", "4096K", "123" (bytes); false on a bad string. */
bool parse_size(const char *s, size_t *out);

/* @s as a JSON string, quoted and escaped ("" for NULL). */
void json_string(FILE *f, const char *s);

#endif /* UKVM_TOOLS_MACHINE_H */
