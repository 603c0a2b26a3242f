/* SPDX-License-Identifier: MIT */
/*
 * src/kvm: the generic KVM core (virt/kvm/kvm_main.c and include/linux/
 * kvm_host.h in the kernel): VMs and vm_list, hardware enabling, vCPUs and
 * requests, memslots under kvm->srcu, the MMU-notifier handlers, dirty
 * logging, I/O buses and IRQ routing.
 *
 * The architecture layer (src/x86/mmu) sits above this one: it registers a
 * struct kvm_arch_ops (kvm_init()) and gets its per-VM / per-vCPU data in
 * the flexible arrays at the end of struct kvm and struct kvm_vcpu.
 */
#ifndef UKVM_KVM_KVM_HOST_H
#define UKVM_KVM_KVM_HOST_H

#include <limits.h>
#include <linux/kvm.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <urcu/hlist.h>
#include <urcu/list.h>

#include "host/host.h"
#include "kvm/kvm_types.h"
#include "kvm/memslot_tree.h"
#include "sync/bug.h"
#include "sync/sync.h"

/* ---------------------------------------------------------------------- */
/* Limits (x86 values)                                                    */
/* ---------------------------------------------------------------------- */

#define KVM_ADDRESS_SPACE_NUM	2	/* x86 with SMM */
#define KVM_MEM_SLOTS_NUM	SHRT_MAX
#define KVM_INTERNAL_MEM_SLOTS	3	/* APIC access page, TSS, identity map */
#define KVM_USER_MEM_SLOTS	(KVM_MEM_SLOTS_NUM - KVM_INTERNAL_MEM_SLOTS)
#define KVM_MEM_MAX_NR_PAGES	((1UL << 31) - 1)
#define KVM_TASK_SIZE_MAX	((1UL << 47) - PAGE_SIZE)	/* 4-level paging */
#define KVM_MAX_VCPUS		64
#define KVM_MEMSLOT_INVALID	(1UL << 16)	/* kernel-internal slot flag */
#define KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS (1ULL << 63)
/*
 * KVM hashes slot ids into 128 buckets; with up to 32,767 slots that is
 * chains of 250, and create/lookup by id stops being flat.  ukvm uses 4096.
 */
#define KVM_MEMSLOT_ID_HASH_BITS 12

/* ---------------------------------------------------------------------- */
/* Memslots                                                               */
/* ---------------------------------------------------------------------- */

struct kvm_memory_slot {
	/* One copy of each index node per memslot set (node_idx 0 and 1), so a
	 * slot can be in both sets at once without being copied. */
	struct cds_hlist_node id_node[2];
	struct memslot_hva_node hva_node[2];
	struct memslot_gfn_node gfn_node[2];
	gfn_t base_gfn;
	unsigned long npages;
	unsigned long *dirty_bitmap;	/* 2x size: live half + scratch half */
	void *arch;			/* owned by the arch hooks */
	unsigned long userspace_addr;
	uint32_t flags;
	short id;
	uint16_t as_id;
};

static inline bool kvm_slot_dirty_track_enabled(const struct kvm_memory_slot *slot)
{
	return slot->flags & KVM_MEM_LOG_DIRTY_PAGES;
}

static inline unsigned long kvm_dirty_bitmap_bytes(const struct kvm_memory_slot *slot)
{
	return ((slot->npages + 63) / 64) * 8;
}

static inline unsigned long *kvm_second_dirty_bitmap(struct kvm_memory_slot *slot)
{
	return slot->dirty_bitmap + kvm_dirty_bitmap_bytes(slot) / sizeof(unsigned long);
}

static inline unsigned long __gfn_to_hva_memslot(const struct kvm_memory_slot *slot,
						 gfn_t gfn)
{
	return slot->userspace_addr + (gfn - slot->base_gfn) * PAGE_SIZE;
}

/* A memslot set.  kvm->memslots[as_id] points at the active one of a pair. */
struct kvm_memslots {
	uint64_t generation;
	struct kvm_memory_slot *_Atomic last_used_slot;
	struct memslot_hva_root hva_tree;
	struct memslot_gfn_root gfn_tree;
	struct cds_hlist_head id_hash[1 << KVM_MEMSLOT_ID_HASH_BITS];
	int node_idx;
};

/* ---------------------------------------------------------------------- */
/* vCPU modes and requests (include/linux/kvm_host.h)                     */
/* ---------------------------------------------------------------------- */

enum {
	OUTSIDE_GUEST_MODE,
	IN_GUEST_MODE,
	EXITING_GUEST_MODE,
	READING_SHADOW_PAGE_TABLES,
};

#define KVM_REQUEST_MASK	0xff
#define KVM_REQUEST_NO_WAKEUP	(1u << 8)
#define KVM_REQUEST_WAIT	(1u << 9)
#define KVM_REQUEST_NO_ACTION	(1u << 10)
#define KVM_ARCH_REQ_FLAGS(nr, flags) (((nr) + 8) | (flags))
#define KVM_ARCH_REQ(nr)	KVM_ARCH_REQ_FLAGS(nr, 0)

#define KVM_REQ_TLB_FLUSH	(0 | KVM_REQUEST_WAIT | KVM_REQUEST_NO_WAKEUP)
#define KVM_REQ_VM_DEAD		(1 | KVM_REQUEST_WAIT | KVM_REQUEST_NO_WAKEUP)
#define KVM_REQ_UNBLOCK		2
#define KVM_REQ_DIRTY_RING_SOFT_FULL 3
#define KVM_REQ_OUTSIDE_GUEST_MODE \
	(KVM_REQUEST_NO_ACTION | KVM_REQUEST_WAIT | KVM_REQUEST_NO_WAKEUP)

/* x86 requests used by ukvm (arch/x86/include/asm/kvm_host.h numbering). */
#define KVM_REQ_CLOCK_UPDATE	KVM_ARCH_REQ(0)
#define KVM_REQ_MMU_FREE_OBSOLETE_ROOTS \
	KVM_ARCH_REQ_FLAGS(1, KVM_REQUEST_WAIT | KVM_REQUEST_NO_WAKEUP)
#define KVM_REQ_EVENT		KVM_ARCH_REQ(2)
#define KVM_REQ_STEAL_UPDATE	KVM_ARCH_REQ(3)

/* ---------------------------------------------------------------------- */
/* vCPU                                                                   */
/* ---------------------------------------------------------------------- */

struct kvm_vcpu_stat {
	_Atomic unsigned long exits, pf_taken, pf_fixed, pf_fast, pf_spurious;
	_Atomic unsigned long pf_retry, pf_mmio, pf_emulate, tlb_flush;
	_Atomic unsigned long requests_serviced, halt_wakeup, blocks;
	_Atomic unsigned long dirty_ring_full_exits;
	_Atomic unsigned long dirty_pages_logged;	/* bitmap bits it set */
};

/*
 * Bump a counter that only the vCPU's own thread changes, holding
 * vcpu->mutex (KVM_RUN and the vCPU ioctls): a plain load and store, no
 * locked instruction (KVM's ++vcpu->stat.x).  Readers on other threads see
 * a value at most a moment old.  Counters that other threads bump
 * (halt_wakeup), or that code outside KVM_RUN may bump (blocks:
 * kvm_vcpu_block() has callers without vcpu->mutex), keep atomic_fetch_add.
 */
#define vcpu_stat_inc(vcpu, field)                                            \
	do {                                                                  \
		struct kvm_vcpu *_v = (vcpu);                                 \
		lockdep_assert_held(&_v->mutex);                              \
		atomic_store_explicit(&_v->stat.field,                        \
			atomic_load_explicit(&_v->stat.field,                 \
					     memory_order_relaxed) + 1,       \
			memory_order_relaxed);                                \
	} while (0)

/*
 * The per-vCPU dirty ring (dirty_ring.c, kvm-brief.md 6.5): an array of
 * struct kvm_dirty_gfn shared with userspace.  Only the vCPU's own thread
 * pushes (dirty_index); KVM_RESET_DIRTY_RINGS, under slots_lock, frees the
 * entries userspace marked RESET (reset_index).  Both indexes run free:
 * dirty_index - reset_index is the number of entries in use, never more
 * than @size (Appendix B 13).
 */
struct kvm_dirty_ring {
	_Atomic uint32_t dirty_index;	/* written by the vCPU thread only */
	_Atomic uint32_t reset_index;	/* written under slots_lock (release) */
	uint32_t size;			/* entries, a power of two; 0: no ring */
	uint32_t soft_limit;		/* size - reserved entries */
	struct kvm_dirty_gfn *dirty_gfns;
	int index;			/* the vCPU's vcpu_idx */
};

struct kvm_vcpu {
	struct kvm *kvm;
	int vcpu_id;			/* as given by userspace */
	int vcpu_idx;			/* index in kvm->vcpus */
	struct mutex mutex;		/* one ioctl at a time */

	_Atomic int mode;		/* OUTSIDE/IN/EXITING_GUEST_MODE */
	_Atomic unsigned long requests;
	/* Every exit from guest mode bumps it: what a WAIT request waits on. */
	_Atomic uint32_t exit_epoch;
	_Atomic int exit_waiters;

	int srcu_idx;			/* kvm_vcpu_srcu_read_lock() */
	int srcu_depth;			/* must stay 0/1 (no nesting) */

	/* Blocking (halt): the vCPU sleeps on @wait until kicked. */
	struct rcuwait wait;
	_Atomic bool blocked;		/* halted; a waker clears it to end the halt */

	_Atomic int cpu;		/* simulated host CPU it last ran on, -1 */

	/* The per-vCPU last-used-slot cache, validated by generation. */
	struct kvm_memory_slot *last_used_slot;
	uint64_t last_used_slot_gen;

	struct kvm_vcpu_stat stat;

	/* The run loop's own state (src/hw), freed with the vCPU. */
	void *run_state;
	void (*run_state_free)(void *run_state);

	struct kvm_dirty_ring dirty_ring;	/* allocated if kvm->dirty_ring_size */
	/* Running vCPU of the thread before this vCPU's ioctl (vcpu->mutex). */
	struct kvm_vcpu *prev_running_vcpu;

	char arch[] __attribute__((aligned(64)));
};

/* ---------------------------------------------------------------------- */
/* I/O buses and IRQ routing                                              */
/* ---------------------------------------------------------------------- */

enum kvm_bus {
	KVM_MMIO_BUS,
	KVM_PIO_BUS,
	KVM_NR_BUSES
};

struct kvm_io_device;
struct kvm_io_device_ops {
	int (*read)(struct kvm_vcpu *vcpu, struct kvm_io_device *dev,
		    gpa_t addr, int len, void *val);
	int (*write)(struct kvm_vcpu *vcpu, struct kvm_io_device *dev,
		     gpa_t addr, int len, const void *val);
};
struct kvm_io_device {
	const struct kvm_io_device_ops *ops;
};

struct kvm_io_range {
	gpa_t addr;
	int len;
	struct kvm_io_device *dev;
};

struct kvm_io_bus {
	int dev_count;
	struct kvm_io_range range[];	/* sorted by addr */
};

#define KVM_MAX_IRQ_ROUTES 1024
struct kvm_irq_routing_table {
	int nr_rt_entries;
	struct kvm_irq_route {
		uint32_t gsi;
		uint32_t vcpu_idx;	/* ukvm: a GSI routes to one vCPU */
		uint8_t vector;
		bool posted;		/* IOMMU posted interrupt (x86 VT-d) */
	} map[];
};

/* ---------------------------------------------------------------------- */
/* The VM                                                                 */
/* ---------------------------------------------------------------------- */

struct kvm_stat {
	_Atomic unsigned long remote_tlb_flush, remote_tlb_flush_requests;
	_Atomic unsigned long memslot_create, memslot_delete, memslot_move;
	_Atomic unsigned long memslot_flags, memslot_errors;
	_Atomic unsigned long mmu_notifier_start, mmu_notifier_start_found;
	_Atomic unsigned long mmu_notifier_end, mmu_notifier_age;
	_Atomic unsigned long dirty_log_get, dirty_log_clear;
	/* Bitmap bits set by host threads (a vCPU counts its own in vcpu->stat). */
	_Atomic unsigned long dirty_pages_logged;
	_Atomic unsigned long dirty_ring_pushes, dirty_ring_resets;
	_Atomic unsigned long irq_injected;
};

struct kvm_arch_ops;

struct kvm {
	struct mutex lock;			/* "&kvm->lock" */
	struct mutex slots_lock;
	struct mutex slots_arch_lock;
	struct mutex irq_lock;
	rwlock_t mmu_lock;
	struct srcu_struct srcu;
	struct srcu_struct irq_srcu;

	struct host_mm *mm;			/* the VMM's address space */
	const struct kvm_arch_ops *arch_ops;

	/* Memslots: two sets per address space; memslots[] is SRCU-protected. */
	struct kvm_memslots __memslots[KVM_ADDRESS_SPACE_NUM][2];
	struct kvm_memslots *memslots[KVM_ADDRESS_SPACE_NUM];
	int nr_as_ids;				/* address spaces in use */
	unsigned long hva_limit;		/* TASK_SIZE_MAX of the VMM */
	unsigned long nr_memslot_pages;		/* slots_lock */
	_Atomic unsigned int nr_memslots_dirty_logging;	/* written under slots_lock */

	struct kvm_vcpu *vcpus[KVM_MAX_VCPUS];	/* published before online_vcpus */
	_Atomic int online_vcpus;
	int created_vcpus;			/* kvm->lock */
	int max_vcpus;

	struct cds_list_head vm_list;		/* kvm_lock; RCU readers */
	_Atomic int users_count;
	_Atomic bool vm_dead;

	struct kvm_io_bus *buses[KVM_NR_BUSES];	/* kvm->srcu / slots_lock */
	struct kvm_irq_routing_table *irq_routing; /* irq_srcu / irq_lock */

	/* MMU notifier state (kvm-brief.md section 3) */
	struct mmu_notifier mmu_notifier;
	_Atomic unsigned long mmu_invalidate_seq;	/* written under mmu_lock (W) */
	_Atomic long mmu_invalidate_in_progress;	/* written under mmu_lock (W) */
	_Atomic gfn_t mmu_invalidate_range_start;	/* written under mmu_lock (W) */
	_Atomic gfn_t mmu_invalidate_range_end;
	spinlock_t mn_invalidate_lock;
	long mn_active_invalidate_count;		/* mn_invalidate_lock */
	struct rcuwait mn_memslots_update_rcuwait;
	/* The start..end window modelled as a lock for the validator: read-held
	 * by the notifying thread, synced by the memslot swap that waits. */
	struct lockdep_map mn_active_invalidate_map;

	/* Dirty logging */
	uint64_t manual_dirty_log_protect;	/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 flags */
	/* Write (or Dirty) removed from an SPTE since the last remote flush:
	 * must be 0 before a dirty log is relied on (Appendix B 9). */
	_Atomic unsigned long wrprot_unflushed;
	/*
	 * KVM_CAP_DIRTY_LOG_RING[_ACQ_REL]: ring bytes per vCPU, 0 if off; set
	 * once, under kvm->lock, before any vCPU exists.  With_bitmap:
	 * KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, set under slots_lock while no
	 * memslot exists.
	 */
	_Atomic uint32_t dirty_ring_size;
	bool dirty_ring_with_bitmap;

	struct kvm_stat stat;
	int id;					/* for names in reports */

	char arch[] __attribute__((aligned(64)));
};

#define kvm_for_each_vcpu(idx, vcpup, kvm)                                    \
	for ((idx) = 0; (idx) < atomic_load_explicit(&(kvm)->online_vcpus,    \
					memory_order_acquire) &&              \
		((vcpup) = (kvm)->vcpus[idx]) != NULL; (idx)++)

static inline struct kvm_vcpu *kvm_get_vcpu(struct kvm *kvm, int i)
{
	if (i < 0 || i >= atomic_load_explicit(&kvm->online_vcpus, memory_order_acquire))
		return NULL;
	return kvm->vcpus[i];
}

/* ---------------------------------------------------------------------- */
/* Memslot access (memslot.c)                                             */
/* ---------------------------------------------------------------------- */

static inline struct kvm_memslots *__kvm_memslots(struct kvm *kvm, int as_id)
{
	return srcu_dereference_check(kvm->memslots[as_id], &kvm->srcu,
				      lockdep_is_held(&kvm->slots_lock) ==
				      LOCK_STATE_HELD);
}

static inline struct kvm_memslots *kvm_memslots(struct kvm *kvm)
{
	return __kvm_memslots(kvm, 0);
}

/* Generations are read locklessly by vCPUs: relaxed atomics. */
static inline uint64_t kvm_memslots_gen(const struct kvm_memslots *slots)
{
	return __atomic_load_n(&slots->generation, __ATOMIC_RELAXED);
}
static inline void kvm_memslots_set_gen(struct kvm_memslots *slots, uint64_t gen)
{
	__atomic_store_n(&slots->generation, gen, __ATOMIC_RELAXED);
}

struct kvm_memory_slot *id_to_memslot(struct kvm_memslots *slots, int id);
struct kvm_memory_slot *search_memslots(struct kvm_memslots *slots, gfn_t gfn,
					bool approx);
struct kvm_memory_slot *__gfn_to_memslot(struct kvm_memslots *slots, gfn_t gfn);
struct kvm_memory_slot *gfn_to_memslot(struct kvm *kvm, gfn_t gfn);
struct kvm_memory_slot *kvm_vcpu_gfn_to_memslot(struct kvm_vcpu *vcpu, gfn_t gfn);
bool kvm_is_visible_memslot(const struct kvm_memory_slot *slot);
unsigned long gfn_to_hva_memslot_prot(const struct kvm_memory_slot *slot,
				      gfn_t gfn, bool *writable);
#define KVM_HVA_ERR_BAD		(~0UL)
#define kvm_is_error_hva(h)	((h) == KVM_HVA_ERR_BAD)

int kvm_memslots_count(struct kvm_memslots *slots);

/* Iterate the slots of @slots whose hva range intersects [start, last]. */
#define kvm_for_each_memslot_in_hva_range(slot, slots, start, last)           \
	for ((slot) = memslot_hva_first((slots), (start), (last));            \
	     (slot); (slot) = memslot_hva_next((slots), (slot), (start), (last)))

/* Iterate the slots of @slots overlapping gfns [start, end). */
#define kvm_for_each_memslot_in_gfn_range(slot, slots, start, end)            \
	for ((slot) = memslot_gfn_first((slots), (start), (end));             \
	     (slot); (slot) = memslot_gfn_next((slots), (slot), (end)))

/* Iterate every slot of @slots in gfn order. */
#define kvm_for_each_memslot(slot, slots)                                     \
	for ((slot) = memslot_gfn_first((slots), 0, ~0ULL); (slot);           \
	     (slot) = memslot_gfn_next((slots), (slot), ~0ULL))

/* ---------------------------------------------------------------------- */
/* Requests, kicks, TLB flushes (requests.c)                              */
/* ---------------------------------------------------------------------- */

static inline void kvm_make_request(int req, struct kvm_vcpu *vcpu)
{
	/* Release: the request's payload is visible before the bit (smp_wmb). */
	atomic_fetch_or_explicit(&vcpu->requests,
				 1UL << (req & KVM_REQUEST_MASK),
				 memory_order_seq_cst);
}

static inline bool kvm_request_pending(struct kvm_vcpu *vcpu)
{
	return atomic_load_explicit(&vcpu->requests, memory_order_acquire) != 0;
}

static inline bool kvm_test_request(int req, struct kvm_vcpu *vcpu)
{
	return atomic_load_explicit(&vcpu->requests, memory_order_acquire) &
	       (1UL << (req & KVM_REQUEST_MASK));
}

static inline void kvm_clear_request(int req, struct kvm_vcpu *vcpu)
{
	atomic_fetch_and_explicit(&vcpu->requests,
				  ~(1UL << (req & KVM_REQUEST_MASK)),
				  memory_order_seq_cst);
}

/* Test and clear; the full barrier orders the payload reads after it. */
static inline bool kvm_check_request(int req, struct kvm_vcpu *vcpu)
{
	if (!kvm_test_request(req, vcpu))
		return false;
	kvm_clear_request(req, vcpu);
	return true;
}

bool kvm_make_vcpu_request(struct kvm_vcpu *vcpu, unsigned int req);
bool kvm_make_all_cpus_request(struct kvm *kvm, unsigned int req);
bool kvm_make_all_cpus_request_except(struct kvm *kvm, unsigned int req,
				      struct kvm_vcpu *except);
void kvm_vcpu_kick(struct kvm_vcpu *vcpu);
bool kvm_vcpu_wake_up(struct kvm_vcpu *vcpu);
void kvm_flush_remote_tlbs(struct kvm *kvm);
void kvm_flush_remote_tlbs_range(struct kvm *kvm, gfn_t gfn, uint64_t nr_pages);
void kvm_flush_remote_tlbs_memslot(struct kvm *kvm,
				   const struct kvm_memory_slot *slot);

/* Guest-mode entry/exit bookkeeping for the run loop (src/hw). */
void kvm_vcpu_guest_exit(struct kvm_vcpu *vcpu);
void kvm_vcpu_block(struct kvm_vcpu *vcpu);

/* ---------------------------------------------------------------------- */
/* vCPU SRCU (x86 holds kvm->srcu for most of KVM_RUN)                    */
/* ---------------------------------------------------------------------- */

void __kvm_vcpu_srcu_read_lock(struct kvm_vcpu *vcpu,
			       const struct lockdep_site *site);
void __kvm_vcpu_srcu_read_unlock(struct kvm_vcpu *vcpu,
				 const struct lockdep_site *site);
#define kvm_vcpu_srcu_read_lock(v)   __kvm_vcpu_srcu_read_lock((v), LOCKDEP_SITE)
#define kvm_vcpu_srcu_read_unlock(v) __kvm_vcpu_srcu_read_unlock((v), LOCKDEP_SITE)

/* ---------------------------------------------------------------------- */
/* MMU notifier support for the fault path (mmu_notifier.c)               */
/* ---------------------------------------------------------------------- */

struct kvm_gfn_range {
	struct kvm_memory_slot *slot;
	gfn_t start;
	gfn_t end;
	bool may_block;
};

void kvm_mmu_invalidate_begin(struct kvm *kvm);
void kvm_mmu_invalidate_range_add(struct kvm *kvm, gfn_t start, gfn_t end);
void kvm_mmu_invalidate_end(struct kvm *kvm);

/* The body of both checks below; mmu_lock decides whether it is reliable. */
static inline bool __mmu_invalidate_retry_gfn(struct kvm *kvm,
					      unsigned long mmu_seq, gfn_t gfn)
{
	if (__builtin_expect(atomic_load_explicit(&kvm->mmu_invalidate_in_progress,
						  memory_order_acquire) != 0, 0)) {
		gfn_t s = atomic_load_explicit(&kvm->mmu_invalidate_range_start,
					       memory_order_relaxed);
		gfn_t e = atomic_load_explicit(&kvm->mmu_invalidate_range_end,
					       memory_order_relaxed);
		/* In progress but no range yet: treat as covering everything. */
		if (s == INVALID_GFN || (gfn >= s && gfn < e))
			return true;
	}
	/* Pairs with the release in kvm_mmu_invalidate_end() (smp_rmb). */
	return atomic_load_explicit(&kvm->mmu_invalidate_seq,
				    memory_order_acquire) != mmu_seq;
}

/* Authoritative check, under mmu_lock: must the fault for @gfn retry? */
static inline bool mmu_invalidate_retry_gfn(struct kvm *kvm,
					    unsigned long mmu_seq, gfn_t gfn)
{
	lockdep_assert_held(&kvm->mmu_lock);
	return __mmu_invalidate_retry_gfn(kvm, mmu_seq, gfn);
}

/* Unlocked early-out, may give false answers either way. */
static inline bool mmu_invalidate_retry_gfn_unsafe(struct kvm *kvm,
						   unsigned long mmu_seq,
						   gfn_t gfn)
{
	return __mmu_invalidate_retry_gfn(kvm, mmu_seq, gfn);
}

/* ---------------------------------------------------------------------- */
/* Dirty logging (dirty_log.c)                                            */
/* ---------------------------------------------------------------------- */

void mark_page_dirty_in_slot(struct kvm *kvm, const struct kvm_memory_slot *slot,
			     gfn_t gfn);
void mark_page_dirty(struct kvm *kvm, gfn_t gfn);
int kvm_get_dirty_log_protect(struct kvm *kvm, struct kvm_dirty_log *log);
int kvm_clear_dirty_log_protect(struct kvm *kvm, struct kvm_clear_dirty_log *log);

/* Dirty ring (dirty_ring.c) */
#define KVM_DIRTY_RING_RSVD_ENTRIES	64
#define KVM_DIRTY_RING_MAX_ENTRIES	65536

static inline uint32_t kvm_dirty_ring_size(struct kvm *kvm)
{
	return atomic_load_explicit(&kvm->dirty_ring_size, memory_order_relaxed);
}
/* The vCPU whose ioctl the calling thread is in (vcpu_load()..vcpu_put()). */
struct kvm_vcpu *kvm_get_running_vcpu(void);
uint32_t kvm_dirty_ring_get_rsvd_entries(struct kvm *kvm);
void kvm_dirty_ring_push(struct kvm_vcpu *vcpu, uint32_t slot, uint64_t offset);
bool kvm_dirty_ring_soft_full(struct kvm_dirty_ring *ring);
/* On entry: true if the vCPU must exit with KVM_EXIT_DIRTY_RING_FULL. */
bool kvm_dirty_ring_check_request(struct kvm_vcpu *vcpu);

/* ---------------------------------------------------------------------- */
/* VM lifetime, vm_list, enabling (kvm_main.c, enable.c)                  */
/* ---------------------------------------------------------------------- */

extern struct mutex kvm_lock;
extern struct cds_list_head vm_list;

void kvm_get_kvm(struct kvm *kvm);
bool kvm_get_kvm_safe(struct kvm *kvm);
void kvm_put_kvm(struct kvm *kvm);

int kvm_enable_virtualization(void);
void kvm_disable_virtualization(void);
int kvm_usage_count_read(void);
unsigned int kvm_nr_cpus_enabled(void);
int kvm_vm_count_read(void);
bool kvm_is_loaded(void);
unsigned long kvm_vm_list_walk_count(void);

/* vCPU ioctl bracket (vcpu->mutex) and VM-wide vCPU freezing. */
int kvm_vcpu_ioctl_begin(struct kvm_vcpu *vcpu);
void kvm_vcpu_ioctl_end(struct kvm_vcpu *vcpu);
void kvm_lock_all_vcpus(struct kvm *kvm);
void kvm_unlock_all_vcpus(struct kvm *kvm);

/* Arch-internal memslots (ids above the user range); slots_lock held. */
int kvm_set_internal_memslot(struct kvm *kvm,
			     const struct kvm_userspace_memory_region *mem);

/* I/O buses (io_bus.c): registration under slots_lock, lookups under srcu */
int kvm_io_bus_register_dev(struct kvm *kvm, enum kvm_bus bus_idx, gpa_t addr,
			    int len, struct kvm_io_device *dev);
int kvm_io_bus_unregister_dev(struct kvm *kvm, enum kvm_bus bus_idx,
			      struct kvm_io_device *dev);
int kvm_io_bus_write(struct kvm_vcpu *vcpu, enum kvm_bus bus_idx, gpa_t addr,
		     int len, const void *val);
int kvm_io_bus_read(struct kvm_vcpu *vcpu, enum kvm_bus bus_idx, gpa_t addr,
		    int len, void *val);

/* IRQ routing (irq.c) */
int kvm_set_irq_routing(struct kvm *kvm, const struct kvm_irq_route *ue,
			unsigned int nr);
int kvm_set_irq(struct kvm *kvm, uint32_t gsi);

#endif /* UKVM_KVM_KVM_HOST_H */
