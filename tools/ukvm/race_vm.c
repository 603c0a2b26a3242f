// SPDX-License-Identifier: MIT
/*
 * Set-up helpers of the `ukvm race` scenarios and the jobs they share (see
 * race_harness.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/host.h"
#include "kvm/kvm_host.h"
#include "race_harness.h"
#include "x86/mmu/mmu.h"
#include "x86/mmu/tdp_mmu.h"

/* ---- the guest: memstress on one page, a budget of accesses per run ---- */

static enum ukvm_guest_step race_guest_next(void *ctx, struct ukvm_guest_access *a)
{
	struct race_vm *vm = ctx;

	if (atomic_load_explicit(&vm->budget, memory_order_relaxed) <= 0)
		return UKVM_GUEST_EXIT;
	atomic_fetch_sub_explicit(&vm->budget, 1, memory_order_relaxed);
	return guest_memstress_ops.next(guest_vcpu_ctx(vm->w, 0), a);
}

static void race_guest_complete(void *ctx, const struct ukvm_guest_access *a)
{
	struct race_vm *vm = ctx;

	guest_memstress_ops.complete(guest_vcpu_ctx(vm->w, 0), a);
	atomic_fetch_add_explicit(&vm->completed, 1, memory_order_relaxed);
}

static const struct ukvm_guest_ops race_guest_ops = {
	.next = race_guest_next,
	.complete = race_guest_complete,
};

int race_vm_set_guest(struct race_vm *vm, uint64_t page_gpa)
{
	const struct guest_region region = { .gpa = page_gpa, .npages = 1 };
	const struct guest_config cfg = {
		.nr_vcpus = 1,
		.regions = &region,
		.nr_regions = 1,
		.write_percent = 100,
		.seed = 1,
	};

	guest_workload_destroy(vm->w);
	vm->w = guest_workload_create(&cfg);
	if (!vm->w)
		return -ENOMEM;
	vm->guest_gpa = page_gpa;
	vm->tracking = false;
	return ukvm_vcpu_set_guest(vm->vcpu, &race_guest_ops, vm);
}

int race_vm_run(struct race_vm *vm, int n, uint32_t *exit_reason)
{
	struct kvm_run run;
	int r;

	atomic_store(&vm->budget, n);
	do {
		r = ukvm_vcpu_run(vm->vcpu, &run);
		if (!r && run.exit_reason == KVM_EXIT_MMIO && !run.mmio.is_write)
			memset(run.mmio.data, 0, sizeof(run.mmio.data));
	} while (!r && run.exit_reason == KVM_EXIT_MMIO);
	if (exit_reason)
		*exit_reason = r ? KVM_EXIT_UNKNOWN : run.exit_reason;
	return r;
}

void race_vm_track_dirty(struct race_vm *vm)
{
	guest_dirty_tracking_begin(vm->w);
	vm->tracking = true;
}

int race_vm_get_log(struct race_vm *vm, bool *logged, uint64_t *missed)
{
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = vm->bitmap };
	uint64_t rel = (vm->guest_gpa - vm->gpa) >> PAGE_SHIFT;
	uint32_t round = guest_dirty_round_close(vm->w);
	int r;

	memset(vm->bitmap, 0, ((vm->npages + 63) / 64) * 8);
	r = ukvm_get_dirty_log(vm->kvm, &log);
	if (r)
		return r;
	guest_dirty_log_record(vm->w, vm->gpa >> PAGE_SHIFT, vm->bitmap,
			       vm->npages, round);
	if (logged)
		*logged = rel < vm->npages && (vm->bitmap[rel / 64] & (1UL << (rel % 64)));
	if (missed)
		*missed = vm->tracking ? guest_dirty_check(vm->w, round) : 0;
	return 0;
}

static int race_read64(void *arg, uint64_t gpa, uint64_t *value)
{
	struct race_vm *vm = arg;

	if (gpa < vm->gpa || gpa >= vm->gpa + (vm->npages << PAGE_SHIFT))
		return -EFAULT;
	return ukvm_host_read(vm->hva + (gpa - vm->gpa), value, sizeof(*value));
}

int race_vm_verify(struct race_vm *vm, struct guest_verify_result *res)
{
	return guest_verify(vm->w, race_read64, vm, res);
}

/* ---- VM, memslots, SPTEs ---- */

int race_set_slot(struct kvm *kvm, int slot, uint64_t gpa, uint64_t size,
		  unsigned long hva, uint32_t flags)
{
	const struct kvm_userspace_memory_region mem = {
		.slot = (uint32_t)slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = hva,
	};

	return ukvm_set_user_memory_region(kvm, &mem);
}

enum race_verdict race_setup_failed(struct race_ctx *ctx, struct race_vm *vm, int r)
{
	race_evidence(ctx, "set-up failed: %d", r);
	race_vm_destroy(vm);
	return RACE_BROKEN;
}

int race_vm_create(struct race_vm *vm, const struct ukvm_vm_config *cfg,
		   uint64_t gpa, uint64_t npages, uint32_t flags)
{
	int r;

	memset(vm, 0, sizeof(*vm));
	vm->gpa = gpa;
	vm->npages = npages;
	vm->flags = flags;
	vm->bitmap = calloc((npages + 63) / 64, 8);
	if (!vm->bitmap)
		return -ENOMEM;
	r = ukvm_create_vm(cfg, &vm->kvm);
	if (r)
		return r;
	vm->hva = ukvm_host_mmap(npages << PAGE_SHIFT, 0);
	if (IS_ERR_HVA(vm->hva)) {
		r = (int)(long)vm->hva;
		vm->hva = 0;
		return r;
	}
	r = race_set_slot(vm->kvm, 0, gpa, npages << PAGE_SHIFT, vm->hva, flags);
	if (r)
		return r;
	return ukvm_create_vcpu(vm->kvm, 0, &vm->vcpu);
}

void race_vm_destroy(struct race_vm *vm)
{
	if (vm->kvm)
		ukvm_destroy_vm(vm->kvm);
	if (vm->hva)
		ukvm_host_munmap(vm->hva, vm->npages << PAGE_SHIFT);
	guest_workload_destroy(vm->w);
	free(vm->bitmap);
	memset(vm, 0, sizeof(*vm));
}

uint64_t race_vm_spte(struct race_vm *vm, uint64_t gpa)
{
	uint64_t sptes[PT64_ROOT_MAX_LEVEL + 1] = { 0 };
	int root_level, leaf;

	leaf = kvm_tdp_mmu_get_walk(vm->vcpu, gpa >> PAGE_SHIFT, sptes, &root_level);
	if (leaf < 0 || !is_shadow_present_pte(sptes[leaf]))
		return 0;
	return sptes[leaf];
}

const char *race_spte_str(uint64_t spte, char *buf, size_t len)
{
	if (!is_shadow_present_pte(spte)) {
		snprintf(buf, len, "not present");
		return buf;
	}
	snprintf(buf, len, "pfn %#llx, W=%d A=%d D=%d%s",
		 (unsigned long long)spte_to_pfn(spte),
		 !!(spte & VMX_EPT_WRITABLE_MASK), !!(spte & VMX_EPT_ACCESS_BIT),
		 !!(spte & VMX_EPT_DIRTY_BIT),
		 !(spte & VMX_EPT_WRITABLE_MASK) && (spte & EPT_SPTE_MMU_WRITABLE) ?
		 " (MMU-writable)" : "");
	return buf;
}

/* ---- the jobs ---- */

void race_job_guest_write(struct race_actor *a, void *arg)
{
	struct race_guest_job *j = arg;

	(void)a;
	j->r = race_vm_run(j->vm, 1, &j->exit_reason);
}

void race_job_get_log(struct race_actor *a, void *arg)
{
	struct race_log_job *j = arg;

	(void)a;
	j->r = race_vm_get_log(j->vm, &j->logged, NULL);
}

void race_job_madvise(struct race_actor *a, void *arg)
{
	struct race_madvise_job *j = arg;

	(void)a;
	j->r = host_madvise_dontneed(host_current_mm, j->hva, PAGE_SIZE);
}

void race_job_set_slot(struct race_actor *a, void *arg)
{
	struct race_slot_job *j = arg;

	(void)a;
	j->r = race_set_slot(j->kvm, j->slot, j->gpa, j->size, j->hva, 0);
}

int race_slot_job_init(struct race_slot_job *j, struct kvm *kvm, int slot, uint64_t gpa)
{
	*j = (struct race_slot_job){ .kvm = kvm, .slot = slot, .gpa = gpa, .size = PAGE_SIZE };
	j->hva = ukvm_host_mmap(PAGE_SIZE, 0);
	if (IS_ERR_HVA(j->hva)) {
		int r = (int)(long)j->hva;

		j->hva = 0;
		return r;
	}
	return 0;
}

void race_slot_job_fini(struct race_slot_job *j)
{
	if (j->hva)
		ukvm_host_munmap(j->hva, PAGE_SIZE);
	j->hva = 0;
}

bool race_swap_waiting(void *kvm)
{
	return atomic_load(&((struct kvm *)kvm)->mn_memslots_update_rcuwait.waiting);
}
