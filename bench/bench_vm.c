// SPDX-License-Identifier: MIT
/* The benchmarks' VM, vCPU threads and guest (see bench_vm.h). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_vm.h"
#include "host/host.h"
#include "kvm/kvm_host.h"
#include "machine.h"
#include "sync/sync.h"
#include "sync/thread.h"

/* ---- the guest ---------------------------------------------------------- */

static enum ukvm_guest_step bvm_guest_next(void *ctx, struct ukvm_guest_access *a)
{
	struct bvm_vcpu *bv = ctx;

	if (bv->pos >= bv->end ||
	    atomic_load_explicit(&bv->vm->stop, memory_order_relaxed))
		return UKVM_GUEST_EXIT;
	a->gpa = bv->gpa + (bv->pos % bv->npages) * bv->stride;
	a->len = 8;
	a->type = bv->type;
	a->value = ++bv->value;
	return UKVM_GUEST_ACCESS;
}

static void bvm_guest_complete(void *ctx, const struct ukvm_guest_access *a)
{
	struct bvm_vcpu *bv = ctx;

	(void)a;
	bv->pos++;
}

static const struct ukvm_guest_ops bvm_guest_ops = {
	.next = bvm_guest_next,
	.complete = bvm_guest_complete,
};

/* ---- vCPU threads ------------------------------------------------------- */

static void bvm_phase_setup(struct bvm_vcpu *bv, const struct bvm_phase *ph)
{
	struct bvm *vm = bv->vm;

	bv->active = ph->only_vcpu < 0 || ph->only_vcpu == bv->idx;
	bv->type = ph->type;
	bv->stride = ph->stride ? ph->stride : 4096;
	if (ph->gpa) {
		bv->gpa = ph->gpa;
		bv->npages = ph->npages;
	} else if (vm->cfg.overlap) {
		bv->gpa = vm->gpa;
		bv->npages = bvm_total_pages(vm);
	} else {
		bv->gpa = bvm_vcpu_gpa(vm, bv->idx);
		bv->npages = vm->cfg.pages_per_vcpu;
	}
	if (!ph->gpa && ph->npages && ph->npages < bv->npages)
		bv->npages = ph->npages;
	bv->npages = bv->npages * 4096 / bv->stride;
	bv->pos = 0;
	bv->end = ph->passes ? ph->passes * bv->npages : UINT64_MAX;
	bv->ns = 0;
	bv->accesses = 0;
}

static void bvm_vcpu_phase(struct bvm_vcpu *bv)
{
	struct kvm_run run;
	uint64_t t0 = bench_now_ns();
	int r;

	atomic_fetch_add(&bv->vm->running, 1);
	for (;;) {
		r = ukvm_vcpu_run(bv->vcpu, &run);
		if (r) {
			bv->error = r;
			break;
		}
		if (run.exit_reason == KVM_EXIT_HYPERCALL)
			break;
		/* A moved or deleted slot: reads of the hole return 0. */
		if (run.exit_reason == KVM_EXIT_MMIO && !run.mmio.is_write)
			memset(run.mmio.data, 0, sizeof(run.mmio.data));
	}
	bv->ns = bench_now_ns() - t0;
	bv->accesses = bv->pos;
	atomic_fetch_sub(&bv->vm->running, 1);
}

static void *bvm_vcpu_fn(void *arg)
{
	struct bvm_vcpu *bv = arg;
	struct bvm *vm = bv->vm;

	bench_pin(bv->idx);
	bv->error = ukvm_vcpu_set_guest(bv->vcpu, &bvm_guest_ops, bv);
	for (;;) {
		pthread_barrier_wait(&vm->start);
		if (atomic_load(&vm->quit))
			break;
		bvm_phase_setup(bv, &vm->phase);
		if (bv->active && !bv->error)
			bvm_vcpu_phase(bv);
		pthread_barrier_wait(&vm->done);
	}
	return NULL;
}

/* ---- the machine and the VM --------------------------------------------- */

int bvm_machine_start(uint64_t guest_bytes, int nr_vcpus)
{
	struct machine_opts mo = MACHINE_OPTS_DEFAULT;
	/* Page tables: 1/512 of the memory per level, plus slack. */
	uint64_t mem = guest_bytes + guest_bytes / 256 + (192UL << 20);

	mo.mem_bytes = (size_t)((mem + (2UL << 20) - 1) & ~((2UL << 20) - 1));
	mo.nr_cpus = nr_vcpus > 4 ? (unsigned int)nr_vcpus : 4;
	if (mo.nr_cpus > HOST_MAX_CPUS)
		mo.nr_cpus = HOST_MAX_CPUS;
	mo.poison_frames = false;	/* a debug aid, not part of the design */
	return machine_start(&mo);
}

void bvm_machine_stop(void)
{
	machine_stop();
}

unsigned long bvm_fast_faults(const struct bvm *vm)
{
	unsigned long n = 0;

	for (int i = 0; i < vm->cfg.nr_vcpus; i++)
		n += atomic_load(&vm->vcpu[i].vcpu->stat.pf_fast);
	return n;
}

uint64_t bvm_total_pages(const struct bvm *vm)
{
	return vm->size >> 12;
}

uint64_t bvm_vcpu_gpa(const struct bvm *vm, int v)
{
	return vm->gpa + ((uint64_t)v * vm->cfg.pages_per_vcpu << 12);
}

static int bvm_slot(struct bvm *vm, uint32_t flags)
{
	const struct kvm_userspace_memory_region mem = {
		.slot = 0, .flags = flags, .guest_phys_addr = vm->gpa,
		.memory_size = vm->size, .userspace_addr = vm->hva,
	};

	return ukvm_set_user_memory_region(vm->kvm, &mem);
}

int bvm_set_logging(struct bvm *vm, bool on)
{
	return bvm_slot(vm, on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
}

int bvm_create(struct bvm *vm, const struct bvm_config *cfg)
{
	int r, n = cfg->nr_vcpus;

	if (n < 1 || n > BVM_MAX_VCPUS)
		return -EINVAL;
	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->size = cfg->pages_per_vcpu * (uint64_t)n << 12;
	vm->gpa = BVM_GPA_TOP - vm->size;
	r = ukvm_create_vm(&cfg->vm, &vm->kvm);
	if (r)
		return r;
	if (cfg->manual_protect) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };

		cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
			      (cfg->initially_set ? KVM_DIRTY_LOG_INITIALLY_SET : 0);
		r = ukvm_enable_cap(vm->kvm, &cap);
		if (r)
			goto err_vm;
	}
	vm->hva = host_mmap(host_current_mm, vm->size, VM_READ | VM_WRITE);
	if (IS_ERR_HVA(vm->hva)) {
		r = (int)(long)vm->hva;
		goto err_vm;
	}
	r = bvm_slot(vm, 0);
	if (r)
		goto err_mmap;
	pthread_barrier_init(&vm->start, NULL, (unsigned int)n + 1);
	pthread_barrier_init(&vm->done, NULL, (unsigned int)n + 1);
	for (int i = 0; i < n; i++) {
		struct bvm_vcpu *bv = &vm->vcpu[i];

		bv->vm = vm;
		bv->idx = i;
		r = ukvm_create_vcpu(vm->kvm, (unsigned long)i, &bv->vcpu);
		if (!r)
			r = ukvm_thread_create(&bv->tid, "vcpu", bvm_vcpu_fn, bv);
		if (r) {
			/* Threads already started wait at the barrier: none yet
			 * is the common case; give up on the process. */
			fprintf(stderr, "bench: cannot create vCPU %d: %d\n", i, r);
			exit(1);
		}
	}
	return 0;
err_mmap:
	host_munmap(host_current_mm, vm->hva, vm->size);
err_vm:
	ukvm_destroy_vm(vm->kvm);
	return r;
}

void bvm_destroy(struct bvm *vm)
{
	atomic_store(&vm->quit, true);
	pthread_barrier_wait(&vm->start);
	for (int i = 0; i < vm->cfg.nr_vcpus; i++)
		pthread_join(vm->vcpu[i].tid, NULL);
	pthread_barrier_destroy(&vm->start);
	pthread_barrier_destroy(&vm->done);
	ukvm_destroy_vm(vm->kvm);
	host_munmap(host_current_mm, vm->hva, vm->size);
}

static void bvm_check(struct bvm *vm)
{
	for (int i = 0; i < vm->cfg.nr_vcpus; i++) {
		if (vm->vcpu[i].error) {
			fprintf(stderr, "bench: vCPU %d: KVM_RUN failed: %s\n", i,
				strerror(-vm->vcpu[i].error));
			exit(1);
		}
	}
}

uint64_t bvm_run(struct bvm *vm, const struct bvm_phase *ph)
{
	uint64_t t0;

	vm->phase = *ph;
	atomic_store(&vm->stop, false);
	t0 = bench_now_ns();
	pthread_barrier_wait(&vm->start);
	pthread_barrier_wait(&vm->done);
	t0 = bench_now_ns() - t0;
	bvm_check(vm);
	return t0;
}

void bvm_start(struct bvm *vm, const struct bvm_phase *ph)
{
	vm->phase = *ph;
	atomic_store(&vm->stop, false);
	pthread_barrier_wait(&vm->start);
}

/* Until every active vCPU is inside KVM_RUN (and has run a little). */
void bvm_wait_running(struct bvm *vm)
{
	int want = 0;

	for (int i = 0; i < vm->cfg.nr_vcpus; i++)
		want += vm->phase.only_vcpu < 0 || vm->phase.only_vcpu == i;
	while (atomic_load(&vm->running) < want)
		sched_yield();
	usleep(2000);
}

void bvm_stop(struct bvm *vm)
{
	atomic_store(&vm->stop, true);
	pthread_barrier_wait(&vm->done);
	bvm_check(vm);
}

/* ---- printing ----------------------------------------------------------- */

void bprint_val(const char *fmt_width, double v)
{
	if (isnan(v)) {
		int width = atoi(fmt_width + 1);

		/* The width of "%9.1f" is 9: print "n/a" in as many columns. */
		printf("%*s", width > 0 ? width : 3, "n/a");
	} else {
		printf(fmt_width, v);
	}
}

static void bprint_last_target(const struct bench_report *rep, const char *op)
{
	const struct bench_target_row *t = &rep->targets[rep->nr_targets - 1];

	printf("  %-58s ", t->name);
	bprint_val("%10.2f", t->value);
	printf(" %-5s %s %8.2f %-5s  %s\n", t->unit, op, t->limit, t->unit,
	       isnan(t->value) ? "n/a" : t->met ? "met" : "NOT MET");
}

void bprint_target(struct bench_report *rep, const char *name, double value,
		   double limit, const char *unit)
{
	bench_target(rep, name, value, limit, unit);
	bprint_last_target(rep, "<=");
}

void bprint_target_min(struct bench_report *rep, const char *name,
		       double value, double limit, const char *unit)
{
	struct bench_target_row *t;

	bench_target(rep, name, value, limit, unit);
	t = &rep->targets[rep->nr_targets - 1];
	t->met = !isnan(value) && value >= limit;
	bprint_last_target(rep, ">=");
}

void bench_note(struct bench_report *rep, const struct bench_opts *opts)
{
	snprintf(rep->note, sizeof(rep->note),
		 "build: validator %s%s, race points %s, invariant checks %s; "
		 "%ld CPUs; median of %d runs%s",
		 UKVM_LOCKDEP ? "compiled in" : "compiled out",
		 UKVM_LOCKDEP ? (lockdep_enabled() ? " (on)" : " (off)") : "",
		 UKVM_RACE_POINTS ? "in" : "out",
		 UKVM_DEBUG_CHECKS ? "in" : "out",
		 sysconf(_SC_NPROCESSORS_ONLN), opts->runs,
		 opts->scale < 1 ? "; --quick" : "");
}
