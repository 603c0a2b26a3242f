// SPDX-License-Identifier: MIT
/*
 * `ukvm bench --plot DIR`: run the benchmarks the plots need as child
 * processes of this same binary, each writing its --json file into DIR,
 * turn those into gnuplot data files, and draw PNGs:
 *   demand-paging.png  pages/s (total and per vCPU) vs vCPUs, next to the
 *                      kernel's anonymous fault with as many threads, and
 *                      the big-lock baseline when bench baseline ran;
 *   memslot.png        memslot ioctl latency vs existing slots (log x),
 *                      idle, with vCPUs running, and on the real KVM.
 * Options given with --plot (--quick, --runs, --vcpus, --mem-per-vcpu) are
 * passed on; a DIR/NAME.json already there (make bench) is used as it is.
 * Skipped with a message when gnuplot is not installed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"

const char *bench_self_exe(void)
{
	static char path[4096];
	ssize_t n;

	if (!path[0]) {
		n = readlink("/proc/self/exe", path, sizeof(path) - 1);
		path[n > 0 ? n : 0] = 0;
	}
	return path;
}

static int run_child(const struct bench_opts *opts, const char *dir,
		     const char *bench)
{
	char cmd[1024], extra[256] = "";
	int st;

	/* A run already there (make bench) is used as it is. */
	snprintf(cmd, sizeof(cmd), "%s/%s.json", dir, bench);
	if (!access(cmd, R_OK)) {
		printf("using %s\n", cmd);
		return 0;
	}

	if (opts->scale < 1)
		strcat(extra, " --quick");
	snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
		 " --runs %d", opts->runs);
	if (opts->vcpus)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
			 " --vcpus %d", opts->vcpus);
	if (opts->mem_per_vcpu)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
			 " --mem-per-vcpu %lluK",
			 (unsigned long long)(opts->mem_per_vcpu >> 10));
	snprintf(cmd, sizeof(cmd), "'%.512s' bench %s%s --json '%s/%s.json'",
		 bench_self_exe(), bench, extra, dir, bench);
	printf("+ ukvm bench %s%s --json %s/%s.json\n", bench, extra, dir, bench);
	fflush(stdout);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

/* The value of "key": in one JSON result line (NAN if absent or null). */
static double jnum(const char *line, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(line, pat);
	if (!p || !strncmp(p + strlen(pat), "null", 4))
		return __builtin_nan("");
	return strtod(p + strlen(pat), NULL);
}

static FILE *open_in(const char *dir, const char *name, const char *mode)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return fopen(path, mode);
}

/* demand-paging.json (+ baseline.json) -> demand.dat */
static int demand_data(const char *dir)
{
	FILE *in = open_in(dir, "demand-paging.json", "r");
	FILE *bl = open_in(dir, "baseline.json", "r");
	FILE *out = open_in(dir, "demand.dat", "w");
	char line[1024];

	if (!in || !out)
		return -1;
	fprintf(out, "# vcpus ukvm_total ukvm_per_vcpu kernel_total big_lock_total\n");
	while (fgets(line, sizeof(line), in)) {
		double n = jnum(line, "vcpus"), big = __builtin_nan("");

		if (!strstr(line, "\"demand paging\"") || n != n)
			continue;
		if (bl) {
			char l2[1024];

			rewind(bl);
			while (fgets(l2, sizeof(l2), bl))
				if (strstr(l2, "\"name\": \"demand paging, big lock\"") &&
				    jnum(l2, "vcpus") == n)
					big = jnum(l2, "rate_total");
		}
		fprintf(out, "%g %g %g %g %g\n", n, jnum(line, "rate_total"),
			jnum(line, "rate_vcpu"), jnum(line, "ref_rate_thread") * n, big);
	}
	fclose(in);
	if (bl)
		fclose(bl);
	fclose(out);
	return 0;
}

/* memslot.json -> memslot.dat: slots, then ukvm/readers/real per op. */
static int memslot_data(const char *dir)
{
	/* In the order bench memslot records them. */
	static const char *const ops[] = { "\"name\": \"create\"",
		"\"name\": \"flags-only (dirty log on)\"", "\"name\": \"move\"",
		"\"name\": \"delete\"" };
	FILE *in = open_in(dir, "memslot.json", "r");
	FILE *out = open_in(dir, "memslot.dat", "w");
	char line[1024];
	double last = -1;

	if (!in || !out)
		return -1;
	fprintf(out, "# slots create create_vcpus create_kvm flags flags_vcpus "
		     "flags_kvm move move_vcpus move_kvm delete delete_vcpus delete_kvm (us)\n");
	while (fgets(line, sizeof(line), in)) {
		double k = jnum(line, "slots");

		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
			if (!strstr(line, ops[i]))
				continue;
			if (k != last) {
				fprintf(out, last < 0 ? "%g" : "\n%g", k);
				last = k;
			}
			fprintf(out, " %g %g %g", jnum(line, "ns") / 1000,
				jnum(line, "ns_readers") / 1000,
				jnum(line, "ref_ns") / 1000);
		}
	}
	fprintf(out, "\n");
	fclose(in);
	fclose(out);
	return 0;
}

static const char demand_gp[] =
	"set terminal png size 900,560\n"
	"set output '%s/demand-paging.png'\n"
	"set title 'ukvm demand paging (4 KiB, disjoint) vs vCPUs'\n"
	"set xlabel 'vCPUs (threads)'\nset ylabel 'pages/s'\n"
	"set logscale x 2\nset key top left\nset grid\n"
	"plot '%s/demand.dat' u 1:2 w lp t 'ukvm total', "
	"'' u 1:3 w lp t 'ukvm per vCPU', "
	"'' u 1:4 w lp t 'kernel anon fault, total', "
	"'' u 1:5 w lp t 'ukvm big mmu_lock (baseline), total'\n";

static const char memslot_gp[] =
	"set terminal png size 900,560\n"
	"set output '%s/memslot.png'\n"
	"set title 'KVM_SET_USER_MEMORY_REGION latency vs existing slots'\n"
	"set xlabel 'existing memslots'\nset ylabel 'microseconds (median)'\n"
	"set logscale xy\nset key outside right\nset grid\n"
	"plot '%s/memslot.dat' u 1:2 w lp t 'ukvm create', "
	"'' u 1:3 w lp t 'ukvm create, 2 vCPUs running', "
	"'' u 1:4 w lp t 'real KVM create', "
	"'' u 1:11 w lp t 'ukvm delete', '' u 1:12 w lp t 'ukvm delete, vCPUs', "
	"'' u 1:13 w lp t 'real KVM delete', "
	"'' u 1:8 w lp t 'ukvm move', '' u 1:5 w lp t 'ukvm flags-only'\n";

static int gnuplot(const char *dir, const char *name, const char *fmt)
{
	char cmd[600];
	FILE *f = open_in(dir, name, "w");

	if (!f)
		return -1;
	fprintf(f, fmt, dir, dir);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "gnuplot '%s/%s'", dir, name);
	return system(cmd) ? -1 : 0;
}

int bench_plot(const struct bench_opts *opts)
{
	const char *dir = opts->plot_dir;
	int r = 0;

	if (system("command -v gnuplot >/dev/null 2>&1")) {
		printf("ukvm bench --plot: gnuplot is not installed "
		       "(scripts/deps.sh bench installs it): skipped\n");
		return 0;
	}
	if (mkdir(dir, 0755) && errno != EEXIST) {
		perror(dir);
		return 1;
	}
	r |= run_child(opts, dir, "demand-paging");
	r |= run_child(opts, dir, "baseline");
	r |= run_child(opts, dir, "memslot");
	if (r) {
		fprintf(stderr, "ukvm bench --plot: a benchmark failed\n");
		return 1;
	}
	if (demand_data(dir) || memslot_data(dir) ||
	    gnuplot(dir, "demand-paging.gp", demand_gp) ||
	    gnuplot(dir, "memslot.gp", memslot_gp)) {
		fprintf(stderr, "ukvm bench --plot: cannot write the plots in %s\n", dir);
		return 1;
	}
	printf("wrote %s/demand-paging.png and %s/memslot.png\n", dir, dir);
	return 0;
}
