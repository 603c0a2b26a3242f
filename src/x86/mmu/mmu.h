/* SPDX-License-Identifier: MIT */
/*
 * The x86 MMU's interface to the layers above it (src/hw's run loop) and to
 * the x86 glue (x86.c).  arch/x86/kvm/mmu.h in the kernel.
 */
#ifndef UKVM_X86_MMU_MMU_H
#define UKVM_X86_MMU_MMU_H

#include "x86/mmu/mmu_internal.h"

/* An EPT violation at @gpa: RET_PF_* or a negative errno. */
int kvm_mmu_page_fault(struct kvm_vcpu *vcpu, gpa_t gpa, uint32_t error_code);
int fast_page_fault(struct kvm_vcpu *vcpu, struct kvm_page_fault *fault);

int kvm_mmu_load(struct kvm_vcpu *vcpu);
void kvm_mmu_unload(struct kvm_vcpu *vcpu);
int kvm_mmu_reload(struct kvm_vcpu *vcpu);
void kvm_mmu_free_obsolete_roots(struct kvm_vcpu *vcpu);

void kvm_mmu_zap_all_fast(struct kvm *kvm);
void kvm_mmu_zap_all(struct kvm *kvm);
void kvm_mmu_zap_memslot(struct kvm *kvm, struct kvm_memory_slot *slot);

/* x86 glue (x86.c) */
extern const struct kvm_arch_ops kvm_x86_arch_ops;
int kvm_x86_vcpu_set_apic_base(struct kvm_vcpu *vcpu, uint64_t value);
int kvm_x86_vcpu_set_tsc(struct kvm_vcpu *vcpu, uint64_t tsc);
/* A vCPU ioctl taking slots_arch_lock inside kvm->srcu (first shadow root). */
int kvm_x86_vcpu_first_shadow_root(struct kvm_vcpu *vcpu);
int kvm_x86_hv_set_guest_os_id(struct kvm_vcpu *vcpu, uint64_t id);
int kvm_x86_xen_set_shared_info(struct kvm_vcpu *vcpu, uint64_t gfn);
/* Toggle an arch-internal memslot from vCPU context (APICv inhibit). */
int kvm_x86_inhibit_apic_access_page(struct kvm_vcpu *vcpu, bool inhibit);
/* The same as a vCPU ioctl: takes vcpu->mutex and the vCPU's kvm->srcu. */
int kvm_x86_vcpu_set_apicv_inhibit(struct kvm_vcpu *vcpu, bool inhibit);
bool kvm_x86_hardware_enabled(unsigned int cpu);

/*
 * Nested EPT: L1 running L2 (nested.c).  A vCPU ioctl: shadow the EPT12
 * tables at @gfns (guest table level @level: PG_LEVEL_4K for last-level
 * tables, which may go unsync; higher for upper levels, write-tracked) and
 * sync the unsync ones.  0 or -EINVAL, -EFAULT, -EAGAIN, -ENOMEM, -EIO.
 */
int kvm_x86_nested_shadow_gfns(struct kvm_vcpu *vcpu, const gfn_t *gfns, int n,
			       int level);
/* Drop every indirect shadow page of the VM (any context without mmu_lock). */
void kvm_x86_nested_zap_shadow(struct kvm *kvm);
/* RET_PF_WRITE_PROTECTED: emulate the refused write (vCPU, kvm->srcu held). */
int kvm_x86_emulate_write(struct kvm_vcpu *vcpu, gpa_t gpa, const void *val, int len);

/* VT-d posted interrupts and the per-CPU wakeup lists (posted_intr.c) */
void kvm_x86_pi_init(void);
void vmx_vcpu_pi_create(struct kvm_vcpu *vcpu);
void vmx_vcpu_pi_load(struct kvm_vcpu *vcpu, int cpu);
void vmx_vcpu_pi_blocking(struct kvm_vcpu *vcpu);
void vmx_vcpu_pi_unblocking(struct kvm_vcpu *vcpu);
bool vmx_pi_has_pending(struct kvm_vcpu *vcpu);
void vmx_pi_post_interrupt(struct kvm_vcpu *vcpu, uint8_t vector);
int vmx_sync_pir_to_irr(struct kvm_vcpu *vcpu);
int pi_wakeup_handler(unsigned int cpu);
bool kvm_x86_pi_lists_empty(void);

#endif /* UKVM_X86_MMU_MMU_H */
