/* SPDX-License-Identifier: MIT */
/*
 * libukvm: KVM's memory-virtualization core and its locking design, as a
 * userspace library.  The API mirrors KVM's ioctls and uses their uAPI
 * structs from <linux/kvm.h>; functions return 0 or a negative errno (KVM's
 * errno for KVM's cases) and leave state unchanged on error.
 *
 * Lifetime: ukvm_host_init() (physical memory, the VMM address space,
 * simulated host CPUs) -> ukvm_init() (the KVM "module") -> VMs, memslots,
 * vCPUs -> ukvm_exit() -> ukvm_host_exit().
 */
#ifndef UKVM_UKVM_H
#define UKVM_UKVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ukvm/config.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kvm;
struct kvm_vcpu;

/* Dirty tracking mechanism of a VM. */
enum ukvm_dirty_mode {
	UKVM_DIRTY_WRPROT,	/* write-protect + fast page fault (default) */
	UKVM_DIRTY_DBIT,	/* harvest hardware Dirty bits (PML-like) */
};

struct ukvm_vm_config {
	int max_vcpus;			/* 0: KVM_MAX_VCPUS */
	bool ad_disabled;		/* EPT without A/D bits: access tracking */
	unsigned int max_gpa_bits;	/* 0: 48 (4-level EPT); up to 52 */
	enum ukvm_dirty_mode dirty_mode;
	bool big_mmu_lock;		/* legacy: mmu_lock for write on every fault */
};

/* ---- the KVM "module" (x86: loading the vendor module) ---- */

/* Register the x86 architecture with the generic core; after host init. */
int ukvm_init(void);
void ukvm_exit(void);

/* ---- VMs (the KVM_CREATE_VM / VM-fd ioctls) ---- */

/* Use the design of commit 0bf50497 (kvm_usage_count under kvm_lock) for
 * replaying the 44d17459 deadlock; call before ukvm_init(). */
void ukvm_set_legacy_usage_locking(bool on);

int ukvm_create_vm(const struct ukvm_vm_config *cfg, struct kvm **out);
void ukvm_destroy_vm(struct kvm *kvm);
int ukvm_check_extension(struct kvm *kvm, long ext);
int ukvm_enable_cap(struct kvm *kvm, const struct kvm_enable_cap *cap);
int ukvm_set_user_memory_region(struct kvm *kvm,
				const struct kvm_userspace_memory_region *mem);
int ukvm_get_dirty_log(struct kvm *kvm, struct kvm_dirty_log *log);
int ukvm_clear_dirty_log(struct kvm *kvm, struct kvm_clear_dirty_log *log);
int ukvm_create_vcpu(struct kvm *kvm, unsigned long id, struct kvm_vcpu **out);

/* A set_nx_huge_pages()-like parameter write reaching every VM's MMU;
 * returns the number of VMs updated. */
int ukvm_param_write_all_vms(void);

#ifdef __cplusplus
}
#endif

#endif /* UKVM_UKVM_H */
