/* SPDX-License-Identifier: MIT */
/*
 * The architecture hooks of the generic core (the kernel's kvm_arch_*()
 * functions and static calls).  src/x86/mmu registers one table with
 * kvm_init(); every hook is optional (NULL: nothing to do), so the generic
 * core also runs alone, e.g. in its own tests.
 */
#ifndef UKVM_KVM_KVM_ARCH_H
#define UKVM_KVM_KVM_ARCH_H

#include "kvm/kvm_host.h"

enum kvm_mr_change {
	KVM_MR_CREATE,
	KVM_MR_DELETE,
	KVM_MR_MOVE,
	KVM_MR_FLAGS_ONLY,
};

struct ukvm_vm_config;

struct kvm_arch_ops {
	const char *name;
	size_t vm_size;		/* bytes of kvm->arch */
	size_t vcpu_size;	/* bytes of vcpu->arch */

	/* Per host CPU enabling (VMXON / EFER.SVME). */
	int (*hardware_enable)(unsigned int cpu);
	void (*hardware_disable)(unsigned int cpu);

	int (*init_vm)(struct kvm *kvm, const struct ukvm_vm_config *cfg);
	void (*destroy_vm)(struct kvm *kvm);
	int (*vcpu_create)(struct kvm_vcpu *vcpu);
	void (*vcpu_postcreate)(struct kvm_vcpu *vcpu);
	void (*vcpu_destroy)(struct kvm_vcpu *vcpu);
	/* kvm_vcpu_block() brackets its sleep with these (posted interrupts). */
	void (*vcpu_blocking)(struct kvm_vcpu *vcpu);
	void (*vcpu_unblocking)(struct kvm_vcpu *vcpu);
	/* Part of kvm_arch_vcpu_runnable(): an event the halt must not miss. */
	bool (*vcpu_has_events)(struct kvm_vcpu *vcpu);
	/* Deliver through a posted IRTE (an assigned device's interrupt). */
	void (*deliver_posted_interrupt)(struct kvm_vcpu *vcpu, uint8_t vector);

	/* Memslots (kvm_arch_prepare/commit_memory_region and friends). */
	int (*prepare_memory_region)(struct kvm *kvm,
				     const struct kvm_memory_slot *old,
				     struct kvm_memory_slot *new,
				     enum kvm_mr_change change);
	void (*commit_memory_region)(struct kvm *kvm,
				     struct kvm_memory_slot *old,
				     const struct kvm_memory_slot *new,
				     enum kvm_mr_change change);
	void (*free_memslot)(struct kvm *kvm, struct kvm_memory_slot *slot);
	void (*memslots_updated)(struct kvm *kvm, uint64_t gen);
	void (*flush_shadow_all)(struct kvm *kvm);
	void (*flush_shadow_memslot)(struct kvm *kvm,
				     struct kvm_memory_slot *slot);
	void (*guest_memory_reclaimed)(struct kvm *kvm);
	/* Fast zap of everything (set_nx_huge_pages-like writers), slots_lock. */
	void (*zap_all_fast)(struct kvm *kvm);

	/* MMU-notifier handlers, called per memslot intersecting the range. */
	bool (*unmap_gfn_range)(struct kvm *kvm, struct kvm_gfn_range *range);
	bool (*age_gfn)(struct kvm *kvm, struct kvm_gfn_range *range);
	bool (*test_age_gfn)(struct kvm *kvm, struct kvm_gfn_range *range);
	bool lockless_aging;	/* aging without mmu_lock (6.15 x86) */

	/* Dirty logging: re-protect the gfns of @mask; harvest hardware state. */
	void (*mmu_enable_log_dirty_pt_masked)(struct kvm *kvm,
					       struct kvm_memory_slot *slot,
					       gfn_t gfn_offset,
					       unsigned long mask);
	void (*sync_dirty_log)(struct kvm *kvm, struct kvm_memory_slot *slot);
	/* May this VM log into per-vCPU dirty rings?  NULL: yes. */
	bool (*dirty_ring_supported)(struct kvm *kvm);
};

/* The registered architecture (NULL: generic core only). */
extern const struct kvm_arch_ops *kvm_arch;

/* "Module load": register the architecture.  Returns -EBUSY if loaded. */
int kvm_init(const struct kvm_arch_ops *ops);
void kvm_exit(void);

/* Call an optional per-VM hook of the VM's architecture. */
#define kvm_arch_call(kvm, hook, ...)                                         \
	do {                                                                  \
		const struct kvm_arch_ops *__ops = (kvm)->arch_ops;           \
		if (__ops && __ops->hook)                                     \
			__ops->hook(__VA_ARGS__);                             \
	} while (0)
#define kvm_arch_has(kvm, hook) ((kvm)->arch_ops && (kvm)->arch_ops->hook)

#endif /* UKVM_KVM_KVM_ARCH_H */
