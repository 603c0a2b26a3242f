// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>

#include "kvm_test.h"

int kt_group_setup(void **state)
{
	const struct host_config cfg = {
		.mem_bytes = KT_MEM,
		.nr_cpus = KT_CPUS,
		.swap_bytes = 8UL << 20,
		.poison_frames = true,
	};

	(void)state;
	ukvm_thread_register_current("test-main");
	if (host_init(&cfg))
		return -1;
	return kvm_init(NULL) ? -1 : 0;
}

int kt_group_teardown(void **state)
{
	(void)state;
	kvm_exit();
	host_exit();
	return 0;
}

struct kvm *kt_create_vm(void)
{
	struct kvm *kvm = NULL;

	assert_int_equal(ukvm_create_vm(NULL, &kvm), 0);
	assert_non_null(kvm);
	return kvm;
}

int kt_set_region(struct kvm *kvm, uint32_t slot, uint32_t flags, uint64_t gpa,
		  uint64_t size, uint64_t hva)
{
	struct kvm_userspace_memory_region mem = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = hva,
	};

	return ukvm_set_user_memory_region(kvm, &mem);
}

void kt_snapshot(struct kvm *kvm, struct kt_snapshot *s)
{
	int cap = 0;

	s->n = 0;
	s->slots = NULL;
	mutex_lock(&kvm->slots_lock);
	for (int as = 0; as < KVM_ADDRESS_SPACE_NUM; as++) {
		struct kvm_memslots *slots = __kvm_memslots(kvm, as);
		struct kvm_memory_slot *m;

		s->gen[as] = kvm_memslots_gen(slots);
		kvm_for_each_memslot(m, slots) {
			if (s->n == cap) {
				cap = cap ? cap * 2 : 64;
				s->slots = realloc(s->slots, (size_t)cap * sizeof(*s->slots));
				assert_non_null(s->slots);
			}
			s->slots[s->n++] = (struct kt_slot){
				as, m->id, m->base_gfn, m->npages,
				m->userspace_addr, m->flags };
		}
	}
	mutex_unlock(&kvm->slots_lock);
}

bool kt_snapshot_equal(const struct kt_snapshot *a, const struct kt_snapshot *b)
{
	if (a->n != b->n)
		return false;
	for (int as = 0; as < KVM_ADDRESS_SPACE_NUM; as++)
		if (a->gen[as] != b->gen[as])
			return false;
	for (int i = 0; i < a->n; i++) {
		const struct kt_slot *x = &a->slots[i], *y = &b->slots[i];

		if (x->as != y->as || x->id != y->id || x->base != y->base ||
		    x->npages != y->npages || x->hva != y->hva || x->flags != y->flags)
			return false;
	}
	return true;
}

void kt_snapshot_free(struct kt_snapshot *s)
{
	free(s->slots);
	s->slots = NULL;
	s->n = 0;
}

void kt_assert_sets_consistent(struct kvm *kvm)
{
	mutex_lock(&kvm->slots_lock);
	for (int as = 0; as < KVM_ADDRESS_SPACE_NUM; as++) {
		struct kvm_memslots *active = __kvm_memslots(kvm, as);
		struct kvm_memslots *inactive = kvm_get_inactive_memslots(kvm, as);
		struct kvm_memory_slot *m;

		assert_int_equal(kvm_memslots_count(active), kvm_memslots_count(inactive));
		assert_false(kvm_memslots_gen(active) & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS);
		assert_true(memslot_hva_check(&active->hva_tree, active->node_idx));
		assert_true(memslot_hva_check(&inactive->hva_tree, inactive->node_idx));
		kvm_for_each_memslot(m, active) {
			/* Idle: both sets index the very same slot objects. */
			assert_ptr_equal(id_to_memslot(inactive, m->id), m);
			assert_ptr_equal(id_to_memslot(active, m->id), m);
			assert_ptr_equal(search_memslots(active, m->base_gfn, false), m);
			assert_ptr_equal(search_memslots(inactive,
					 m->base_gfn + m->npages - 1, false), m);
			assert_false(m->flags & KVM_MEMSLOT_INVALID);
		}
	}
	mutex_unlock(&kvm->slots_lock);
}
