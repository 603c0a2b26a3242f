/* SPDX-License-Identifier: MIT */
/* Address and frame types of the KVM layers (include/linux/kvm_types.h). */
#ifndef UKVM_KVM_KVM_TYPES_H
#define UKVM_KVM_KVM_TYPES_H

#include <stdint.h>

typedef uint64_t gfn_t;		/* guest frame number */
typedef uint64_t gpa_t;		/* guest physical address */
typedef unsigned long hva_t;	/* host (VMM) virtual address */
typedef uint64_t kvm_pfn_t;	/* host physical frame */

#define INVALID_GFN	(~(gfn_t)0)
#define INVALID_GPA	(~(gpa_t)0)
#define KVM_PFN_ERR	(~(kvm_pfn_t)0)

#define gfn_to_gpa(gfn)	((gpa_t)(gfn) << 12)
#define gpa_to_gfn(gpa)	((gfn_t)((gpa) >> 12))

struct kvm;
struct kvm_vcpu;
struct kvm_memory_slot;
struct kvm_memslots;

#endif /* UKVM_KVM_KVM_TYPES_H */
