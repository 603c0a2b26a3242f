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

/* ---- the host: physical memory, the VMM's address space, CPUs ---- */

struct ukvm_host_config {
	size_t mem_bytes;	/* host physical memory (populated at start); 0: 1 GiB */
	unsigned int nr_cpus;	/* simulated host CPUs; 0: this machine's */
	size_t swap_bytes;	/* swap space for the host's swap-out; 0: none */
	bool poison_frames;	/* detect writes into freed frames */
};

/* @cfg may be NULL (all defaults).  -EINVAL for a bad size, -EBUSY if up. */

int ukvm_host_init(const struct ukvm_host_config *cfg);
void ukvm_host_exit(void);

#define UKVM_MAP_THP		(1u << 0)	/* back with 2 MiB pages when possible */
#define UKVM_MAP_HUGE_1G	(1u << 1)	/* 1 GiB pages, reserved at mmap */
#define UKVM_MAP_READONLY	(1u << 2)

/* The VMM's mmap: an hva (never 0), or (unsigned long)-errno. */
unsigned long ukvm_host_mmap(size_t size, unsigned int flags);
int ukvm_host_munmap(unsigned long hva, size_t size);
/* The VMM's own loads and stores (faults pages in, copy-on-write, ...). */
int ukvm_host_read(unsigned long hva, void *buf, size_t len);
int ukvm_host_write(unsigned long hva, const void *buf, size_t len);

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
	/*
	 * Inherent parameters of the host KVM being matched (`ukvm diff-kvm`
	 * measures them on the real one): the number of memslot address
	 * spaces (0: 2, x86 with SMM; 1: a kernel without CONFIG_KVM_SMM), and
	 * the highest userspace_addr + memory_size of a memslot, TASK_SIZE_MAX
	 * (0: (1 << 47) - 4096, 4-level paging; 5-level: (1 << 56) - 4096).
	 */
	unsigned int nr_address_spaces;
	uint64_t hva_limit;
	/*
	 * The MMU's answer to a read fault in a dirty-logged slot on a page the
	 * host maps writable.  false: a writable SPTE at once, and the page is
	 * logged (KVM's TDP MMU); true: a read-only SPTE, only a write logs the
	 * page (KVM's shadow MMU on a PVM host, arm64's stage 2).
	 */
	bool dirty_log_ro_reads;
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

/* Linux 6.3+ uAPI; older <linux/kvm.h> headers lack it. */
#ifndef KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP
#define KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP 225
#endif

/*
 * The dirty ring (KVM_CAP_DIRTY_LOG_RING, KVM_CAP_DIRTY_LOG_RING_ACQ_REL).
 *
 * Enable with ukvm_enable_cap(), args[0] = bytes of ring per vCPU: a power
 * of two, at least one page and 64 entries (16 bytes each), at most 65536
 * entries; once per VM and before the first vCPU is created.  Errors, with
 * nothing changed: -EINVAL (bad size, already enabled, a vCPU exists, or a
 * VM in UKVM_DIRTY_DBIT mode, which has no ring), -E2BIG (too large).
 * KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP (after the ring, while the VM has no
 * memslot, else -EINVAL) adds per-slot bitmaps for pages dirtied outside
 * vCPU context, read with ukvm_get_dirty_log() as the very last step of a
 * migration.  With a ring but without it, ukvm_get_dirty_log() and
 * ukvm_clear_dirty_log() return -ENXIO.  Slots still need
 * KVM_MEM_LOG_DIRTY_PAGES.
 *
 * ukvm_vcpu_dirty_ring() is the mmap() of a vCPU's ring: *ring gets
 * *nr_entries struct kvm_dirty_gfn, valid until the VM is destroyed
 * (-ENXIO if the VM has no ring, -EINVAL for no vCPU, -EFAULT for NULL
 * outputs).  Each entry names a dirty page as slot = as_id << 16 | slot id
 * and offset = page index in that slot.  The protocol, per vCPU ring:
 *
 *   1. Harvest in ring order from your own index i (starting at 0):
 *      load-acquire e = ring[i % nr_entries].flags; stop unless
 *      KVM_DIRTY_GFN_F_DIRTY is set; only then read slot and offset.
 *   2. Store-release flags = KVM_DIRTY_GFN_F_RESET (the entry is yours
 *      no more: do not read it again); i++.
 *   3. ukvm_reset_dirty_rings(): KVM frees the RESET entries in order and
 *      write-protects their pages again, so the next write is pushed anew.
 *   4. Only after (3) read the contents of the harvested pages (a live
 *      migration copies them now): until the reset returns a vCPU may
 *      still write them without a new entry.
 *
 * A page is pushed by the vCPU whose fault made it writable, which is not
 * always the vCPU that writes it: a vCPU can complete a write through an
 * SPTE another vCPU's fast page fault just made writable, before that
 * vCPU has pushed the entry (as in KVM).  So a write done before a harvest
 * may appear only in the next one; a harvest after every vCPU has left
 * ukvm_vcpu_run() (the final stop-and-copy) misses nothing.
 *
 * A vCPU whose ring holds size - 64 entries returns from ukvm_vcpu_run()
 * with KVM_EXIT_DIRTY_RING_FULL, and keeps doing so, without running the
 * guest, until a reset has made room.
 *
 * ukvm_reset_dirty_rings() (KVM_RESET_DIRTY_RINGS): returns the number of
 * entries freed (0 or more), -EINVAL if the VM has no ring.
 */
int ukvm_vcpu_dirty_ring(struct kvm_vcpu *vcpu, struct kvm_dirty_gfn **ring,
			 uint32_t *nr_entries);
int ukvm_reset_dirty_rings(struct kvm *kvm);

/*
 * Interrupt routing (KVM_SET_GSI_ROUTING-like): a GSI goes to one vCPU
 * (by index), either injected by KVM (request + kick) or, with @posted, as
 * an assigned device's interrupt posted by the IOMMU into the vCPU's
 * posted-interrupt descriptor (a halted vCPU is woken through the per-CPU
 * wakeup lists).  -EINVAL for a bad entry, state unchanged.
 */
struct ukvm_irq_route {
	uint32_t gsi;
	uint32_t vcpu_idx;
	uint8_t vector;
	bool posted;
};
int ukvm_set_irq_routing(struct kvm *kvm, const struct ukvm_irq_route *routes,
			 unsigned int nr);
/* KVM_IRQ_LINE-like: deliver @gsi.  Returns vCPUs reached, or -ENOENT. */
int ukvm_set_irq(struct kvm *kvm, uint32_t gsi);
int ukvm_set_user_memory_region(struct kvm *kvm,
				const struct kvm_userspace_memory_region *mem);
int ukvm_get_dirty_log(struct kvm *kvm, struct kvm_dirty_log *log);
int ukvm_clear_dirty_log(struct kvm *kvm, struct kvm_clear_dirty_log *log);
int ukvm_create_vcpu(struct kvm *kvm, unsigned long id, struct kvm_vcpu **out);

/* ---- guest programs and KVM_RUN (src/hw) ---- */

enum ukvm_access_type {
	UKVM_ACCESS_READ,
	UKVM_ACCESS_WRITE,
	UKVM_ACCESS_EXEC,
};

/* One guest memory access: naturally aligned, 1, 2, 4 or 8 bytes. */
struct ukvm_guest_access {
	uint64_t gpa;
	uint64_t value;		/* the value written, or the value read */
	uint8_t len;
	uint8_t type;		/* enum ukvm_access_type */
};

enum ukvm_guest_step {
	UKVM_GUEST_ACCESS,	/* *access holds the next access */
	UKVM_GUEST_HALT,	/* halt until an interrupt (KVM_REQ_EVENT) */
	UKVM_GUEST_EXIT,	/* exit to the VMM (KVM_EXIT_HYPERCALL) */
};

/*
 * What a vCPU executes in guest mode.  next() produces the next step; an
 * access that faults is retried after the fault is handled (instruction
 * restart), and complete() is called once it has really happened.
 * Both run on the vCPU's thread, in guest mode: they must not take locks.
 */
struct ukvm_guest_ops {
	enum ukvm_guest_step (*next)(void *ctx, struct ukvm_guest_access *access);
	void (*complete)(void *ctx, const struct ukvm_guest_access *access);
	void (*interrupt)(void *ctx);	/* optional: an event was delivered */
};

int ukvm_vcpu_set_guest(struct kvm_vcpu *vcpu, const struct ukvm_guest_ops *ops,
			void *ctx);
/*
 * KVM_RUN: run the guest until an exit the VMM must handle: KVM_EXIT_MMIO
 * (complete a read by filling run->mmio.data before running again),
 * KVM_EXIT_HYPERCALL (UKVM_GUEST_EXIT), KVM_EXIT_INTR (ukvm_vcpu_kick_exit()),
 * KVM_EXIT_DIRTY_RING_FULL (harvest and reset the dirty rings first).
 * Returns 0, or a negative errno (-EFAULT: no usable host mapping).
 */
int ukvm_vcpu_run(struct kvm_vcpu *vcpu, struct kvm_run *run);
/* Make a running (or the next) ukvm_vcpu_run() return with KVM_EXIT_INTR. */
void ukvm_vcpu_kick_exit(struct kvm_vcpu *vcpu);

/* A set_nx_huge_pages()-like parameter write reaching every VM's MMU;
 * returns the number of VMs updated. */
int ukvm_param_write_all_vms(void);

#ifdef __cplusplus
}
#endif

#endif /* UKVM_UKVM_H */
