// SPDX-License-Identifier: MIT
/*
 * `ukvm bench validator` (issue 7): what the lock validator costs on the
 * whole system.  `ukvm run`'s default scenario (vCPUs, host churn, memslot
 * churn, dirty logging, migration...) as child processes, three ways:
 *   compiled out   the release build's binary (--release-binary PATH, else
 *                  build-release/ukvm next to or above this binary's build
 *                  directory; skipped with a message if there is none);
 *   compiled in, switched off   this binary, `--lockdep off`;
 *   on             this binary, the default.
 * Each child writes `--json FILE`; the figure is guest accesses per second
 * (stats.guest.accesses / elapsed_s).  The three modes alternate round by
 * round so that they share the machine's noise; medians over the rounds.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_vm.h"

#define VAL_DURATION_S	3.0
#define VAL_MAX_ROUNDS	5

enum { V_OUT, V_OFF, V_ON, NR_V };
static const char *const v_names[NR_V] = {
	"validator compiled out (release build)",
	"compiled in, --lockdep off",
	"compiled in, on",
};

static bool find_release(const struct bench_opts *opts, char *out, size_t len)
{
	char self[PATH_MAX - 32];
	ssize_t n;

	if (opts->ukvm_release) {
		snprintf(out, len, "%s", opts->ukvm_release);
		return access(out, X_OK) == 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash;

		self[n] = 0;
		slash = strrchr(self, '/');
		if (slash)
			*slash = 0;
		snprintf(out, len, "%s/../build-release/ukvm", self);
		if (!access(out, X_OK))
			return true;
	}
	snprintf(out, len, "build-release/ukvm");
	return access(out, X_OK) == 0;
}

/* Guest accesses per second of one `ukvm run`, NAN on failure. */
static double run_one(const char *bin, bool lockdep_off, double duration,
		      const char *json)
{
	char cmd[PATH_MAX + 256], buf[65536];
	const char *p;
	double acc, el;
	size_t n;
	FILE *f;
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' run --duration %.1f --json '%s'%s "
		 ">/dev/null 2>&1", bin, duration, json,
		 lockdep_off ? " --lockdep off" : "");
	st = system(cmd);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fprintf(stderr, "bench validator: '%s' exited with %d\n", cmd,
			WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	f = fopen(json, "r");
	if (!f)
		return NAN;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strstr(buf, "\"elapsed_s\": ");
	if (!p)
		return NAN;
	el = strtod(p + 13, NULL);
	p = strstr(buf, "\"guest\": {");
	p = p ? strstr(p, "\"accesses\": ") : NULL;
	if (!p || !(el > 0))
		return NAN;
	acc = strtod(p + 12, NULL);
	return acc / el;
}

int bench_validator(const struct bench_opts *opts, struct bench_report *rep)
{
	const double duration = opts->scale < 1 ? 1.0 : VAL_DURATION_S;
	const int rounds = opts->runs < VAL_MAX_ROUNDS ? opts->runs : VAL_MAX_ROUNDS;
	double v[NR_V][BENCH_MAX_RUNS], med[NR_V];
	char release[PATH_MAX], json[64];
	bool have_release = find_release(opts, release, sizeof(release));

	snprintf(json, sizeof(json), "/tmp/ukvm-bench-validator-%d.json", (int)getpid());
	snprintf(rep->note, sizeof(rep->note), "ukvm run default scenario, "
		 "--duration %.0f s, median of %d rounds; release binary: %.120s",
		 duration, rounds, have_release ? release : "absent");
	printf("ukvm bench validator: %s\n\n", rep->note);
	if (!have_release)
		printf("  (no release binary: build it with `make release` or pass "
		       "--release-binary PATH; that column is skipped)\n");
	for (int r = 0; r < rounds; r++) {
		v[V_OUT][r] = have_release ? run_one(release, false, duration, json) : NAN;
		v[V_OFF][r] = run_one(bench_self_exe(), true, duration, json);
		v[V_ON][r] = run_one(bench_self_exe(), false, duration, json);
	}
	unlink(json);
	printf("%-40s %16s %12s\n", "binary", "accesses/s", "vs out");
	for (int k = 0; k < NR_V; k++) {
		med[k] = bench_median(v[k], rounds);
		if (k == V_OUT && !have_release)
			med[k] = NAN;
	}
	for (int k = 0; k < NR_V; k++) {
		const struct bench_metric m[] = {
			{ "accesses_per_s", med[k] }, { "ratio", med[k] / med[V_OUT] },
		};

		printf("%-40s ", v_names[k]);
		bprint_val("%16.0f", med[k]);
		printf(" ");
		bprint_val("%12.2f", med[k] / med[V_OUT]);
		printf("\n");
		bench_record(rep, v_names[k], 0, v_names[V_OUT], m, 2);
	}
	printf("\nvalidator on / off (same binary): ");
	bprint_val("%.2f", med[V_ON] / med[V_OFF]);
	printf("; off / compiled out: ");
	bprint_val("%.2f", med[V_OFF] / med[V_OUT]);
	printf("\n");
	return 0;
}
