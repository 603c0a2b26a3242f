// SPDX-License-Identifier: MIT
/*
 * `ukvm run`: the main job.  vCPU threads run a memstress guest over
 * memslots of real memory while churn threads play the host kernel, the
 * VMM and other VMs, and a migration thread migrates the VM again and
 * again; at the end every guest word, every dirty log, every migrated page,
 * the invalidation counts, the invariants and the lock validator's verdict
 * are checked.  See docs/run.md and run.h for the file map.
 *
 * The stop sequence matters:
 *   1. the main loop ends (duration, passes, or SIGINT), then waits (10 s at
 *      most) until every enabled feature has done something;
 *   2. `deadline`: the migration thread makes its last migration, which
 *      stops the vCPUs for good; without migration the guests are stopped;
 *   3. the vCPU threads are joined, then `stop_churn`: the churn threads
 *      finish (the memslot-churn thread with a last dirty-log round, taken
 *      after the last guest write) and are joined; the dirty-ring collector
 *      last, after a pass that harvests whatever is left;
 *   4. checks on the live VMs, statistics, teardown, the remaining checks.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "host/host.h"
#include "lockdep/lockdep.h"
#include "machine.h"
#include "run.h"
#include "sync/race.h"
#include "sync/thread.h"
#include "ukvm_cmd.h"

#define MAX_UNEXPECTED_REPORTS	10
#define GRACE_S			10.0

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* The stop sequence did not finish: a thread is stuck (deadlock?). */
static void on_watchdog(int sig)
{
	static const char msg[] = "\nukvm run: FAIL: the stop sequence is stuck "
		"(a deadlock?); see --watchdog\n";
	ssize_t n;

	(void)sig;
	n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)n;
	_exit(1);
}

double run_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void run_sleep_us(unsigned long us)
{
	struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };

	if (!us) {
		sched_yield();
		return;
	}
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void run_unexpected(struct run *r, const char *what, int err)
{
	unsigned long n = atomic_fetch_add(&r->ctr[RC_UNEXPECTED], 1);

	if (n < MAX_UNEXPECTED_REPORTS)
		fprintf(stderr, "ukvm run: unexpected: %s: %s (%d)\n", what,
			err < 0 ? strerror(-err) : "bad result", err);
}

int run_start_thread(struct run *r, enum run_thread_kind k, const char *name,
		     void *(*fn)(void *))
{
	int ret = ukvm_thread_create(&r->threads[k], name, fn, r);

	if (ret)
		fprintf(stderr, "ukvm run: cannot start thread %s: %s\n", name, strerror(-ret));
	else
		r->thread_started[k] = true;
	return ret;
}

static void join_thread(struct run *r, enum run_thread_kind k)
{
	if (!r->thread_started[k])
		return;
	pthread_join(r->threads[k], NULL);
	r->thread_started[k] = false;
}

static int start_churn(struct run *r)
{
	static const struct {
		size_t opt;
		enum run_thread_kind k;
		const char *name;
		void *(*fn)(void *);
	} kinds[] = {
		{ offsetof(struct run_opts, host_churn), RT_HOST, "host-churn", run_host_thread },
		{ offsetof(struct run_opts, memslot_churn), RT_MEMSLOT, "memslot-churn", run_memslot_thread },
		{ offsetof(struct run_opts, age), RT_AGE, "age", run_age_thread },
		{ offsetof(struct run_opts, cpu_hotplug), RT_HOTPLUG, "cpu-hotplug", run_hotplug_thread },
		{ offsetof(struct run_opts, vm_churn), RT_VM, "vm-churn", run_vm_thread },
		{ offsetof(struct run_opts, param_writer), RT_PARAM, "param-writer", run_param_thread },
		{ offsetof(struct run_opts, vcpu_ioctls), RT_IOCTLS, "vcpu-ioctls", run_ioctls_thread },
		{ offsetof(struct run_opts, irqs), RT_IRQ, "irqs", run_irq_thread },
		{ offsetof(struct run_opts, migrate), RT_MIGRATE, "migrate", run_migrate_thread },
	};

	/* First: a vCPU whose ring is full waits for it. */
	if (r->ring && run_ring_start(r))
		return -EAGAIN;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (!*(const bool *)((const char *)&r->o + kinds[i].opt))
			continue;
		if (run_start_thread(r, kinds[i].k, kinds[i].name, kinds[i].fn))
			return -EAGAIN;
	}
	return 0;
}

/* Steps 2 and 3 of the stop sequence (also the error path). */
static void stop_all(struct run *r)
{
	atomic_store(&r->deadline, true);
	join_thread(r, RT_MIGRATE);
	if (r->w)
		guest_workload_stop(r->w);
	run_vcpus_join(r);
	r->elapsed = run_now() - r->t_start;
	atomic_store(&r->stop_churn, true);
	for (int k = 0; k < RT_NR; k++)
		if (k != RT_RING)
			join_thread(r, (enum run_thread_kind)k);
	/* The memslot-churn thread's last round needed the collector. */
	run_ring_stop(r);
	join_thread(r, RT_RING);
	if (r->o.cpu_hotplug)
		run_hotplug_restore(r);
	run_progress_tick(r, true);
}

static bool main_loop_done(struct run *r)
{
	if (r->o.duration_s > 0)
		return run_now() - r->t_start >= r->o.duration_s;
	return run_vcpus_all_finished(r);
}

static void main_loop(struct run *r)
{
	double grace_end;

	while (!interrupted && !main_loop_done(r)) {
		run_sleep_us(50000);
		run_progress_tick(r, false);
	}
	grace_end = run_now() + GRACE_S;
	while (!interrupted && !run_features_done(r) && run_now() < grace_end) {
		run_sleep_us(50000);
		run_progress_tick(r, false);
	}
}

static uint64_t guest_bytes(const struct run_opts *o)
{
	uint64_t total = (uint64_t)o->mem_per_vcpu * (uint64_t)o->vcpus;
	uint64_t per_slot = (total / (uint64_t)o->slots + PMD_SIZE - 1) & ~(PMD_SIZE - 1);

	return per_slot * (uint64_t)o->slots;
}

static void print_header(const struct run *r, uint64_t gbytes)
{
	const struct run_opts *o = &r->o;
	FILE *f = r->out;
	char churn[256];

	if (o->quiet)
		return;
	if (o->demo)
		fprintf(f, "demo: %d vCPU threads write and check %llu MiB of guest memory%s while "
		       "host, memslot, CPU and VM churn run and the VM is live-migrated again and "
		       "again%s; then every write, dirty page, migrated byte and lock order is "
		       "verified.\n", o->vcpus, (unsigned long long)(gbytes >> 20),
		       o->halt_every ? ", halting until interrupts wake them," : "",
		       o->dirty_ring ? " from its vCPUs' dirty rings" : "");
	run_opts_describe(o, churn, sizeof(churn));
	fprintf(f, "ukvm run: %d vCPUs, %llu MiB in %d memslot%s%s, %s, %d%% writes%s, ",
	       o->vcpus, (unsigned long long)(gbytes >> 20), o->slots, o->slots > 1 ? "s" : "",
	       o->huge ? " (THP)" : "", o->random ? "random" : "sequential",
	       o->write_percent, o->overlap ? ", overlapping" : "");
	if (o->halt_every)
		fprintf(f, "halt every %llu, ", (unsigned long long)o->halt_every);
	if (o->passes)
		fprintf(f, "%llu passes", (unsigned long long)o->passes);
	else
		fprintf(f, "%.1f s", o->duration_s);
	if (o->dirty_ring)
		fprintf(f, "; dirty ring %zu KiB/vCPU (%zu entries)", o->ring_bytes >> 10,
			o->ring_bytes / sizeof(struct kvm_dirty_gfn));
	fprintf(f, "; dirty log %s%s%s, A/D bits %s; %s; host %zu MiB, %u CPUs; validator %s\n",
	       o->dirty_mode == UKVM_DIRTY_DBIT ? "dbit" : "wrprot",
	       o->manual_protect ? " + manual protect" : "",
	       o->initially_set ? " (initially set)" : "", o->ad_bits ? "on" : "off",
	       churn, o->host_mem >> 20, o->host_cpus,
	       UKVM_LOCKDEP ? (o->lockdep ? "on" : "off") : "compiled out");
	fflush(f);
}

static int write_dot(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;

	if (!f) {
		fprintf(stderr, "ukvm run: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	lockdep_graph_write_dot(f);
	if (f != stdout && fclose(f)) {
		fprintf(stderr, "ukvm run: %s: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

/* Everything after the threads: checks, statistics, teardown, output. */
static int finish(struct run *r)
{
	struct run_verify v;
	int ret = 0;

	run_verify_live(r, &v);
	run_report_collect(r);
	run_churn_vm_destroy(r);
	run_vm_destroy(r);
	run_verify_host(r, &v);
	machine_stop();
	ukvm_unsafe_clear_all();
	run_verify_final(r, &v);

	if (r->o.dot_path && write_dot(r->o.dot_path))
		ret = 1;
	run_report_print(r, &v, r->out);
	fflush(r->out);
	if (r->o.json_path && run_report_json(r, &v, r->o.json_path))
		ret = 1;
	fflush(stdout);
	return v.pass && !ret ? 0 : 1;
}

int cmd_run(int argc, char **argv)
{
	struct machine_opts mo = MACHINE_OPTS_DEFAULT;
	struct sigaction sa = { .sa_handler = on_sigint, .sa_flags = SA_RESETHAND };
	struct run *r;
	uint64_t gbytes;
	int ret;

	r = calloc(1, sizeof(*r));
	if (!r)
		return 1;
	ret = run_parse_opts(argc, argv, &r->o);
	if (ret) {
		free(r);
		return ret == 1 ? 0 : ret;
	}
	/* With the JSON on stdout, everything else goes to stderr. */
	r->out = r->o.json_path && !strcmp(r->o.json_path, "-") ? stderr : stdout;
	gbytes = guest_bytes(&r->o);
	if (!r->o.host_mem) {
		r->o.host_mem = (size_t)(gbytes + gbytes / 2 + (64UL << 20));
		if (r->o.host_mem < (128UL << 20))
			r->o.host_mem = 128UL << 20;
	} else if (r->o.host_mem < gbytes + (16UL << 20)) {
		fprintf(stderr, "ukvm run: --host-mem %zuM cannot hold %lluM of guest memory "
			"(give at least 16M more)\n", r->o.host_mem >> 20,
			(unsigned long long)(gbytes >> 20));
		free(r);
		return UKVM_EXIT_USAGE;
	}
	mo.mem_bytes = r->o.host_mem;
	mo.nr_cpus = r->o.host_cpus;

	lockdep_set_enabled(r->o.lockdep);
	ret = machine_start(&mo);
	if (ret) {
		fprintf(stderr, "ukvm run: cannot start the machine: %s\n", strerror(-ret));
		free(r);
		return 1;
	}
	print_header(r, gbytes);
	for (int k = 0; k < UNSAFE_NR; k++) {
		if (!(r->o.unsafe_mask & (1u << k)))
			continue;
		ukvm_unsafe_set((enum ukvm_unsafe_knob)k, true);
		fprintf(r->out, "UNSAFE: %s: %s -- this run should FAIL\n",
		       ukvm_unsafe_knob_names[k], ukvm_unsafe_knob_descs[k]);
	}
	if (run_vm_create(r)) {
		run_vm_destroy(r);
		machine_stop();
		free(r);
		return 1;
	}

	interrupted = 0;
	sigaction(SIGINT, &sa, NULL);
	r->t_start = r->last_tick = run_now();
	if (!run_vcpus_start(r) && !start_churn(r))
		main_loop(r);
	else
		run_unexpected(r, "starting the threads", -EAGAIN);
	if (r->o.watchdog_s) {
		signal(SIGALRM, on_watchdog);
		alarm(r->o.watchdog_s);
	}
	stop_all(r);
	signal(SIGINT, SIG_DFL);
	if (interrupted)
		fprintf(stderr, "ukvm run: interrupted: stopped early, verifying what ran\n");

	ret = finish(r);
	alarm(0);
	free(r);
	return ret;
}
