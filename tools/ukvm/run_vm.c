// SPDX-License-Identifier: MIT
/*
 * `ukvm run`: the VM, its memslots over host memory, the memstress guest
 * workload, and the vCPU threads.
 *
 * A vCPU thread calls KVM_RUN in a loop.  It leaves KVM_RUN on a kick
 * (KVM_EXIT_INTR, ukvm_vcpu_kick_exit()) or when its guest is done
 * (KVM_EXIT_HYPERCALL), and between two KVM_RUNs it makes the vCPU ioctls
 * the vcpu-ioctls thread asked for, parks while the migration stops the
 * vCPUs, and returns when told to.  Parking is a handshake on two atomics
 * (seq_cst): the stopper stores pause_vcpus then reads each vCPU's
 * `active`; a vCPU stores `active` then reads pause_vcpus before entering
 * KVM_RUN.  One of the two sees the other's store, so a vCPU the stopper
 * sees inactive does not enter KVM_RUN until it is resumed.
 *
 * With --dirty-ring the VM gets its rings before its vCPUs exist, and a
 * vCPU whose ring is soft-full (KVM_EXIT_DIRTY_RING_FULL) waits out of
 * KVM_RUN for the collector's next pass (run_ring.c).  With --halt-every
 * the guests halt (HLT) and an interrupt, or the kick that stops them,
 * wakes them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host/host.h"
#include "kvm/kvm_host.h"
#include "run.h"
#include "sync/thread.h"

static unsigned int map_flags(const struct run *r)
{
	return VM_READ | VM_WRITE | (r->o.huge ? VM_THP : 0);
}

static int set_slot(struct run *r, int s, bool logging)
{
	const struct run_slot *sl = &r->slots[s];
	struct kvm_userspace_memory_region mem = {
		.slot = (uint32_t)s,
		.flags = logging ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		.guest_phys_addr = sl->gpa,
		.memory_size = sl->npages << PAGE_SHIFT,
		.userspace_addr = sl->hva,
	};

	return ukvm_set_user_memory_region(r->kvm, &mem);
}

int run_set_logging(struct run *r, bool on)
{
	for (int s = 0; s < r->nr_slots; s++) {
		int ret = set_slot(r, s, on);

		if (ret) {
			run_unexpected(r, on ? "dirty logging on" : "dirty logging off", ret);
			return ret;
		}
	}
	run_count(r, on ? RC_LOG_ENABLE : RC_LOG_DISABLE, 1);
	return 0;
}

static const struct run_slot *gpa_to_slot(const struct run *r, uint64_t gpa)
{
	int s = (int)((gpa - RUN_GUEST_GPA) / (r->slots[0].npages << PAGE_SHIFT));

	return s >= 0 && s < r->nr_slots ? &r->slots[s] : NULL;
}

int run_host_read64(void *arg, uint64_t gpa, uint64_t *v)
{
	const struct run_slot *sl = gpa_to_slot(arg, gpa);

	if (!sl)
		return -EFAULT;
	return ukvm_host_read(sl->hva + (gpa - sl->gpa), v, sizeof(*v));
}

static int host_write64(void *arg, uint64_t gpa, uint64_t v)
{
	const struct run_slot *sl = gpa_to_slot(arg, gpa);

	if (!sl)
		return -EFAULT;
	return ukvm_host_write(sl->hva + (gpa - sl->gpa), &v, sizeof(v));
}

static int enable_manual_protect(struct run *r)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };

	cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
		      (r->o.initially_set ? KVM_DIRTY_LOG_INITIALLY_SET : 0);
	return ukvm_enable_cap(r->kvm, &cap);
}

/* KVM_CAP_DIRTY_LOG_RING_ACQ_REL: once, before any vCPU exists. */
static int enable_dirty_ring(struct run *r)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL };

	cap.args[0] = r->o.ring_bytes;
	return ukvm_enable_cap(r->kvm, &cap);
}

int run_vm_create(struct run *r)
{
	const struct ukvm_vm_config cfg = {
		.ad_disabled = !r->o.ad_bits,
		.dirty_mode = r->o.dirty_mode,
	};
	uint64_t total = (uint64_t)r->o.mem_per_vcpu * (uint64_t)r->o.vcpus;
	uint64_t per_slot = (total / (uint64_t)r->o.slots + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
	struct guest_region *regions;
	struct guest_config gc;
	int ret;

	ret = ukvm_create_vm(&cfg, &r->kvm);
	if (ret) {
		fprintf(stderr, "ukvm run: cannot create the VM: %s\n", strerror(-ret));
		return ret;
	}
	if (r->o.manual_protect) {
		ret = enable_manual_protect(r);
		if (ret) {
			fprintf(stderr, "ukvm run: manual dirty-log protect: %s\n", strerror(-ret));
			return ret;
		}
	}
	if (r->o.dirty_ring) {
		ret = enable_dirty_ring(r);
		if (ret) {
			fprintf(stderr, "ukvm run: the dirty ring (%zu bytes per vCPU): %s\n",
				r->o.ring_bytes, strerror(-ret));
			return ret;
		}
	}
	r->nr_slots = r->o.slots;
	r->slots = calloc((size_t)r->nr_slots, sizeof(*r->slots));
	regions = calloc((size_t)r->nr_slots, sizeof(*regions));
	if (!r->slots || !regions) {
		free(regions);
		return -ENOMEM;
	}
	for (int s = 0; s < r->nr_slots; s++) {
		struct run_slot *sl = &r->slots[s];

		sl->gpa = RUN_GUEST_GPA + (uint64_t)s * per_slot;
		sl->npages = per_slot >> PAGE_SHIFT;
		sl->hva = host_mmap(host_current_mm, per_slot, map_flags(r));
		if (IS_ERR_HVA(sl->hva)) {
			ret = (int)(long)sl->hva;
			sl->hva = 0;
			fprintf(stderr, "ukvm run: host mmap of %llu bytes: %s\n",
				(unsigned long long)per_slot, strerror(-ret));
			free(regions);
			return ret;
		}
		ret = set_slot(r, s, false);
		if (ret) {
			fprintf(stderr, "ukvm run: memslot %d: %s\n", s, strerror(-ret));
			free(regions);
			return ret;
		}
		regions[s] = (struct guest_region){ sl->gpa, sl->npages };
		r->guest_pages += sl->npages;
	}

	gc = (struct guest_config){
		.nr_vcpus = r->o.vcpus, .regions = regions, .nr_regions = r->nr_slots,
		.overlap = r->o.overlap, .random = r->o.random,
		.write_percent = r->o.write_percent, .seed = r->o.seed,
		.passes = r->o.passes, .scratch_every = 8, .pattern_every = 8,
		.halt_every = r->o.halt_every,
	};
	r->w = guest_workload_create(&gc);
	free(regions);
	if (!r->w) {
		fprintf(stderr, "ukvm run: cannot create the guest workload\n");
		return -EINVAL;
	}
	ret = guest_prefill(r->w, host_write64, r);
	if (ret) {
		fprintf(stderr, "ukvm run: writing the pattern pages: %s\n", strerror(-ret));
		return ret;
	}

	r->vcpus = calloc((size_t)r->o.vcpus, sizeof(*r->vcpus));
	if (!r->vcpus)
		return -ENOMEM;
	for (int i = 0; i < r->o.vcpus; i++) {
		struct run_vcpu *v = &r->vcpus[i];

		v->run = r;
		v->idx = i;
		ret = ukvm_create_vcpu(r->kvm, (unsigned long)i, &v->vcpu);
		if (!ret)
			/* Here, before any other thread can kick it. */
			ret = ukvm_vcpu_set_guest(v->vcpu, &guest_memstress_ops,
						  guest_vcpu_ctx(r->w, i));
		if (ret) {
			fprintf(stderr, "ukvm run: vCPU %d: %s\n", i, strerror(-ret));
			return ret;
		}
	}
	if (r->o.dirty_ring) {
		ret = run_ring_create(r);
		if (ret) {
			fprintf(stderr, "ukvm run: the dirty rings: %s\n", strerror(-ret));
			return ret;
		}
	}
	return 0;
}

void run_vm_destroy(struct run *r)
{
	run_ring_destroy(r);
	if (r->kvm)
		ukvm_destroy_vm(r->kvm);
	r->kvm = NULL;
	for (int s = 0; r->slots && s < r->nr_slots; s++)
		if (r->slots[s].hva)
			host_munmap(host_current_mm, r->slots[s].hva,
				    r->slots[s].npages << PAGE_SHIFT);
	free(r->slots);
	r->slots = NULL;
	free(r->vcpus);
	r->vcpus = NULL;
	guest_workload_destroy(r->w);
	r->w = NULL;
}

/* ---- vCPU threads ---- */

static bool must_wait(struct run *r, struct run_vcpu *v)
{
	return atomic_load(&r->pause_vcpus) || atomic_load(&v->finished);
}

/* Outside KVM_RUN: make requested ioctls until allowed to run again. */
static void vcpu_wait(struct run *r, struct run_vcpu *v)
{
	atomic_store(&v->active, false);
	while (must_wait(r, v) && !atomic_load(&r->stop_vcpus)) {
		/* Parked for a migration: no ioctl (the request waits). */
		if (!atomic_load(&r->pause_vcpus) && atomic_exchange(&v->want_ioctls, false))
			run_vcpu_do_ioctls(v);
		run_sleep_us(100);
	}
	/* Announce before looking again (see the top of this file). */
	atomic_store(&v->active, true);
}

static void *vcpu_thread(void *arg)
{
	struct run_vcpu *v = arg;
	struct run *r = v->run;
	struct kvm_run run;
	int ret;

	for (;;) {
		if (atomic_load(&r->stop_vcpus))
			break;
		if (must_wait(r, v)) {
			if (atomic_load(&r->pause_vcpus))
				run_count(r, RC_VCPU_PARKS, 1);
			vcpu_wait(r, v);
			continue;
		}
		atomic_store(&v->in_run, true);
		ret = ukvm_vcpu_run(v->vcpu, &run);
		/* After KVM_RUN: the ring collector may count on it (run_ring.c). */
		atomic_store(&v->in_run, false);
		if (ret) {
			run_unexpected(r, "KVM_RUN", ret);
			break;
		}
		switch (run.exit_reason) {
		case KVM_EXIT_HYPERCALL:	/* the guest is done */
			atomic_store(&v->finished, true);
			break;
		case KVM_EXIT_INTR:
			if (atomic_exchange(&v->want_ioctls, false))
				run_vcpu_do_ioctls(v);
			break;
		case KVM_EXIT_DIRTY_RING_FULL:
			if (r->ring) {
				run_ring_full(v);
				break;
			}
			__attribute__((fallthrough));	/* no ring: no such exit */
		default:
			/* All guest memory is in memslots: no MMIO, nothing else. */
			run_unexpected(r, "KVM_RUN exit reason", -(int)run.exit_reason);
			atomic_store(&v->finished, true);
			break;
		}
	}
	if (r->o.vcpu_ioctls)
		run_vcpu_ioctls_restore(v);
	atomic_store(&v->active, false);
	atomic_store(&v->finished, true);
	return NULL;
}

int run_vcpus_start(struct run *r)
{
	char name[32];

	for (int i = 0; i < r->o.vcpus; i++) {
		struct run_vcpu *v = &r->vcpus[i];
		int ret;

		atomic_store(&v->active, true);
		snprintf(name, sizeof(name), "vcpu%d", i);
		ret = ukvm_thread_create(&v->thread, name, vcpu_thread, v);
		if (ret) {
			fprintf(stderr, "ukvm run: cannot start %s: %s\n", name, strerror(-ret));
			return ret;
		}
		v->started = true;
	}
	return 0;
}

void run_vcpus_join(struct run *r)
{
	atomic_store(&r->stop_vcpus, true);
	for (int i = 0; r->vcpus && i < r->o.vcpus; i++) {
		if (!r->vcpus[i].started)
			continue;
		ukvm_vcpu_kick_exit(r->vcpus[i].vcpu);
		pthread_join(r->vcpus[i].thread, NULL);
		r->vcpus[i].started = false;
	}
}

void run_vcpus_stop(struct run *r, bool forever)
{
	atomic_store(forever ? &r->stop_vcpus : &r->pause_vcpus, true);
	for (int i = 0; i < r->o.vcpus; i++)
		ukvm_vcpu_kick_exit(r->vcpus[i].vcpu);
	for (int i = 0; i < r->o.vcpus; i++)
		while (atomic_load(&r->vcpus[i].active))
			run_sleep_us(50);
}

void run_vcpus_resume(struct run *r)
{
	atomic_store(&r->pause_vcpus, false);
}

bool run_vcpus_all_finished(struct run *r)
{
	for (int i = 0; i < r->o.vcpus; i++)
		if (!atomic_load(&r->vcpus[i].finished))
			return false;
	return true;
}
