// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>

#include "mmu_test.h"

int mt_group_setup(void **state)
{
	const struct host_config cfg = {
		.mem_bytes = MT_MEM,
		.nr_cpus = MT_CPUS,
		.swap_bytes = 16UL << 20,
		.poison_frames = true,
	};

	(void)state;
	ukvm_thread_register_current("test-main");
	if (host_init(&cfg))
		return -1;
	return ukvm_init() ? -1 : 0;
}

int mt_group_teardown(void **state)
{
	(void)state;
	ukvm_exit();
	host_exit();
	return 0;
}

void mt_vm_create(struct mt_vm *vm, const struct ukvm_vm_config *cfg,
		  uint64_t gpa, uint64_t size, unsigned int map_flags,
		  uint32_t slot_flags)
{
	struct kvm_userspace_memory_region mem;

	assert_int_equal(ukvm_create_vm(cfg, &vm->kvm), 0);
	vm->hva = host_mmap(host_current_mm, size, VM_READ | VM_WRITE | map_flags);
	assert_false(IS_ERR_HVA(vm->hva));
	vm->gpa = gpa;
	vm->size = size;
	vm->slot_flags = slot_flags;
	mem = (struct kvm_userspace_memory_region){
		.slot = 0, .flags = slot_flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = vm->hva };
	assert_int_equal(ukvm_set_user_memory_region(vm->kvm, &mem), 0);
}

int mt_set_slot_flags(struct mt_vm *vm, uint32_t flags)
{
	struct kvm_userspace_memory_region mem = {
		.slot = 0, .flags = flags, .guest_phys_addr = vm->gpa,
		.memory_size = vm->size, .userspace_addr = vm->hva };
	int r = ukvm_set_user_memory_region(vm->kvm, &mem);

	if (!r)
		vm->slot_flags = flags;
	return r;
}

int mt_enable_cap(struct kvm *kvm, uint32_t capability, uint64_t arg0, uint32_t flags)
{
	struct kvm_enable_cap cap = { .cap = capability, .flags = flags };

	cap.args[0] = arg0;
	return ukvm_enable_cap(kvm, &cap);
}

void mt_vm_destroy(struct mt_vm *vm)
{
	ukvm_destroy_vm(vm->kvm);
	assert_int_equal(host_munmap(host_current_mm, vm->hva, vm->size), 0);
}

static enum ukvm_guest_step script_next(void *ctx, struct ukvm_guest_access *a)
{
	struct mt_script *s = ctx;

	if (s->next >= s->n)
		return UKVM_GUEST_EXIT;
	*a = s->ops[s->next];
	return UKVM_GUEST_ACCESS;
}

static void script_complete(void *ctx, const struct ukvm_guest_access *a)
{
	struct mt_script *s = ctx;

	s->last_read = a->value;
	s->ops[s->next].value = a->value;
	s->next++;
}

const struct ukvm_guest_ops mt_script_ops = {
	.next = script_next,
	.complete = script_complete,
};

int mt_run_script(struct kvm_vcpu *vcpu, struct mt_script *s, struct kvm_run *run)
{
	int r;

	assert_int_equal(ukvm_vcpu_set_guest(vcpu, &mt_script_ops, s), 0);
	do {
		r = ukvm_vcpu_run(vcpu, run);
		/* MMIO reads return 0 in these tests. */
		if (!r && run->exit_reason == KVM_EXIT_MMIO && !run->mmio.is_write)
			memset(run->mmio.data, 0, sizeof(run->mmio.data));
	} while (!r && run->exit_reason == KVM_EXIT_MMIO);
	return r;
}

int mt_access(struct kvm_vcpu *vcpu, uint64_t gpa, uint8_t type, uint64_t *value)
{
	struct ukvm_guest_access a = { .gpa = gpa, .len = 8, .type = type,
				       .value = value ? *value : 0 };
	struct mt_script s = { .ops = &a, .n = 1 };
	struct kvm_run run;
	int r = mt_run_script(vcpu, &s, &run);

	if (value)
		*value = a.value;
	return r;
}

void mt_vcpu_loop(struct kvm_vcpu *vcpu, const struct ukvm_guest_ops *ops, void *ctx,
		  void (*on_exit)(const struct kvm_run *run, void *arg), void *arg)
{
	struct kvm_run run;
	int r;

	T_CHECK(ukvm_vcpu_set_guest(vcpu, ops, ctx) == 0);
	for (;;) {
		r = ukvm_vcpu_run(vcpu, &run);
		if (r) {
			T_CHECK(r == 0);
			break;
		}
		if (run.exit_reason == KVM_EXIT_HYPERCALL)
			break;	/* the guest is done */
		on_exit(&run, arg);
	}
}

void mt_assert_guest_verified(struct guest_workload *w, guest_read64_fn read, void *arg,
			      struct guest_verify_result *res, struct guest_stats *gs)
{
	assert_int_equal(guest_verify(w, read, arg, res), 0);
	guest_get_stats(w, gs);
	assert_int_equal(res->lost_writes, 0);
	assert_int_equal(res->bad_pattern, 0);
	assert_int_equal(res->bad_scratch, 0);
	assert_int_equal(gs->read_mismatches, 0);
	assert_int_equal(gs->missed_dirty, 0);
}

uint64_t mt_host_read64(struct mt_vm *vm, uint64_t gpa)
{
	uint64_t v = 0;

	assert_int_equal(host_access(host_current_mm, vm->hva + (gpa - vm->gpa),
				     &v, sizeof(v), false), 0);
	return v;
}

uint64_t mt_spte(struct kvm_vcpu *vcpu, uint64_t gpa, int *level)
{
	uint64_t sptes[PT64_ROOT_MAX_LEVEL + 1] = { 0 };
	int root_level, leaf;

	leaf = kvm_tdp_mmu_get_walk(vcpu, gpa_to_gfn(gpa), sptes, &root_level);
	if (level)
		*level = leaf;
	return leaf > 0 ? sptes[leaf] : 0;
}

/*
 * The VMM's harvest: entries in ring order while DIRTY (load-acquire),
 * copied out, then handed back with a store-release of RESET.
 */
int mt_ring_harvest(struct kvm_vcpu *vcpu, uint32_t *fetch, struct kvm_dirty_gfn *out,
		    int max)
{
	struct kvm_dirty_gfn *ring;
	uint32_t n;
	int got = 0;

	if (ukvm_vcpu_dirty_ring(vcpu, &ring, &n))
		return -1;
	while (got < max) {
		struct kvm_dirty_gfn *e = &ring[*fetch & (n - 1)];

		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY))
			break;
		out[got].slot = e->slot;
		out[got++].offset = e->offset;
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		(*fetch)++;
	}
	return got;
}
