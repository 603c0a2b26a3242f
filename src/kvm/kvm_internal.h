/* SPDX-License-Identifier: MIT */
/* Private to src/kvm: shared between its files, not used by upper layers. */
#ifndef UKVM_KVM_KVM_INTERNAL_H
#define UKVM_KVM_KVM_INTERNAL_H

#include "kvm/kvm_arch.h"
#include "kvm/kvm_host.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif


/* memslot.c */
void kvm_init_memslots(struct kvm *kvm);
struct kvm_memslots *kvm_get_inactive_memslots(struct kvm *kvm, int as_id);
void kvm_replace_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
			 struct kvm_memory_slot *new);
void kvm_swap_active_memslots(struct kvm *kvm, int as_id);
void kvm_activate_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
			  struct kvm_memory_slot *new);
void kvm_copy_memslot(struct kvm_memory_slot *dest,
		      const struct kvm_memory_slot *src);
bool kvm_check_memslot_overlap(struct kvm_memslots *slots, int id,
			       gfn_t start, gfn_t end);
void kvm_free_memslot(struct kvm *kvm, struct kvm_memory_slot *slot);
void kvm_free_memslots(struct kvm *kvm);

/* set_memory.c */
int kvm_set_memory_region(struct kvm *kvm,
			  const struct kvm_userspace_memory_region *mem);

/* mmu_notifier.c */
extern const struct mmu_notifier_ops kvm_mmu_notifier_ops;
int kvm_init_mmu_notifier(struct kvm *kvm);

/* io_bus.c, irq.c */
int kvm_init_io_buses(struct kvm *kvm);
void kvm_free_io_buses(struct kvm *kvm);
int kvm_init_irq_routing(struct kvm *kvm);
void kvm_free_irq_routing(struct kvm *kvm);

/* vcpu.c */
void kvm_destroy_vcpus(struct kvm *kvm);

/* dirty_ring.c */
bool kvm_use_dirty_bitmap(struct kvm *kvm);
bool kvm_arch_allow_write_without_running_vcpu(struct kvm *kvm);
int kvm_dirty_ring_alloc(struct kvm *kvm, struct kvm_dirty_ring *ring,
			 uint32_t bytes);
void kvm_dirty_ring_free(struct kvm_dirty_ring *ring);
int kvm_dirty_ring_reset(struct kvm *kvm, struct kvm_dirty_ring *ring,
			 int *nr_entries_reset);

/* enable.c */
bool kvm_legacy_usage_locking(void);
int kvm_legacy_register_cpuhp(void);
void kvm_legacy_unregister_cpuhp(void);

/* vm_list.c */
void kvm_vm_list_walkers_register(void);
void kvm_vm_list_walkers_unregister(void);

#endif /* UKVM_KVM_KVM_INTERNAL_H */
