/* SPDX-License-Identifier: MIT */
/*
 * Race points and unsafe knobs: the hooks behind `ukvm race`.
 *
 * RACE_POINT(name) marks a place named in locking.rst's interleaving tables
 * (after reading the SPTE in the fast path, between the pfn lookup and
 * taking mmu_lock, ...).  Normally it is one relaxed load and a branch
 * predicted not taken; while a scenario is armed, the harness may stop the
 * thread there until another thread reaches another point, so an
 * interleaving happens every time, with no sleeps and no timing.
 *
 * ukvm_unsafe(KNOB) is true when a scenario removed exactly one protection
 * (the --unsafe run shows the bug really happens).  It is false unless a
 * scenario set it.
 *
 * Both compile to nothing with -Drace_points=false.
 */
#ifndef UKVM_SYNC_RACE_H
#define UKVM_SYNC_RACE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"

/* X(name, "where") — every race point in the code. */
#define UKVM_RACE_POINT_LIST(X)                                                   \
	X(FAULT_AFTER_SNAPSHOT, "fault: mmu_invalidate_seq snapshotted, before the pfn lookup") \
	X(FAULT_AFTER_PFN, "fault: pfn looked up, before taking mmu_lock")   \
	X(FAULT_BEFORE_INSTALL, "fault: under mmu_lock, before installing the SPTE") \
	X(FAST_PF_AFTER_READ, "fast page fault: SPTE read, before the cmpxchg") \
	X(UNSYNC_BEFORE_LOCK, "unsync: a shadow page seen sync under mmu_lock, before taking mmu_unsync_pages_lock") \
	X(SPTE_UPDATE_AFTER_READ, "SPTE update under mmu_lock: old value read, before the store") \
	X(WRPROT_BEFORE_FLUSH, "write-protect done, before the TLB flush")   \
	X(ZAP_BEFORE_FLUSH, "SPTE zapped, before the TLB flush")              \
	X(GUEST_WRITE_DONE, "vCPU: a guest write has completed")             \
	X(GUEST_TLB_HIT, "vCPU: a guest access hit the TLB")                 \
	X(MN_START_DONE, "notifier: invalidate_range_start() handled")       \
	X(MN_END_BEGIN, "notifier: invalidate_range_end() entered")          \
	X(MN_START_IN_CALLBACK, "notifier: inside KVM's invalidate_range_start handler") \
	X(SWAP_BEFORE_WAIT, "memslot swap: before waiting for mn_active_invalidate_count") \
	X(SWAP_PUBLISHED, "memslot swap: new set published")                 \
	X(DIRTY_LOG_HARVESTED, "get dirty log: bitmap harvested, before re-protecting") \
	X(VCPU_SRCU_LOCKED, "vCPU ioctl: inside kvm->srcu")                  \
	X(SLOTS_LOCK_HELD, "memslot update: slots_lock held")                \
	X(HOST_AFTER_START, "host mm operation: after invalidate_range_start") \
	X(HOST_BEFORE_END, "host mm operation: before invalidate_range_end") \
	X(ENABLE_LOCKED, "hardware enabling: usage lock held")               \
	X(VM_LIST_WALK, "vm_list walker: inside the walk")                    \
	X(VCPU_ENTERING, "vCPU entry: IN_GUEST_MODE stored, before the last look at kicks and requests") \
	X(VCPU_HALTING, "halt: out of guest mode, before the vCPU marks itself blocked") \
	X(VCPU_WAKING, "wake-up: a waker about to end a halt")               \
	X(RWSEM_READER_BACKING_OUT, "rw_semaphore: a reader added its bias, found a writer bit, before taking the bias back")

/* X(name, "what the knob removes") — every unsafe knob. */
#define UKVM_UNSAFE_KNOB_LIST(X)                                                  \
	X(NONATOMIC_SPTE, "update SPTEs with a plain load/store even when the CPU or the fast path can change them (spte_needs_atomic_update() always false)") \
	X(NO_WRPROT_FLUSH, "skip the TLB flush after write-protecting SPTEs for dirty logging") \
	X(NO_STALE_CHECK, "skip is_page_fault_stale(): install the SPTE even if an invalidation raced") \
	X(SWAP_NO_WAIT, "kvm_swap_active_memslots() does not wait for mn_active_invalidate_count") \
	X(NOTIFIER_SLOTS_LOCK, "the MMU-notifier start handler takes kvm->slots_lock") \
	X(SLOTS_LOCK_IN_SRCU, "take kvm->slots_lock inside a kvm->srcu read section") \
	X(SLOTS_LOCK_UNDER_VCPU_REVERSED, "a path takes vcpu->mutex inside kvm->slots_lock") \
	X(NO_UNSYNC_RECHECK, "mmu_try_to_unsync_pages() does not re-check sp->unsync after taking mmu_unsync_pages_lock")

#define __RP_ENUM(n, d) RP_##n,
enum ukvm_race_point { UKVM_RACE_POINT_LIST(__RP_ENUM) RP_NR };
#undef __RP_ENUM
#define __UNSAFE_ENUM(n, d) UNSAFE_##n,
enum ukvm_unsafe_knob { UKVM_UNSAFE_KNOB_LIST(__UNSAFE_ENUM) UNSAFE_NR };
#undef __UNSAFE_ENUM

extern const char *const ukvm_race_point_names[RP_NR];
extern const char *const ukvm_race_point_descs[RP_NR];
extern const char *const ukvm_unsafe_knob_names[UNSAFE_NR];
extern const char *const ukvm_unsafe_knob_descs[UNSAFE_NR];

#if UKVM_RACE_POINTS
extern _Atomic int ukvm_race_armed;
extern _Atomic unsigned int ukvm_unsafe_mask;
void ukvm_race_point_hit(enum ukvm_race_point rp);

#define RACE_POINT(name)                                                      \
	do {                                                                  \
		if (__builtin_expect(atomic_load_explicit(&ukvm_race_armed,   \
				memory_order_relaxed), 0))                    \
			ukvm_race_point_hit(RP_##name);                       \
	} while (0)

static inline bool ukvm_unsafe(enum ukvm_unsafe_knob k)
{
	return __builtin_expect(atomic_load_explicit(&ukvm_unsafe_mask,
				memory_order_relaxed) & (1u << k), 0);
}
#else
#define RACE_POINT(name)	do { } while (0)
static inline bool ukvm_unsafe(enum ukvm_unsafe_knob k) { (void)k; return false; }
#endif

/*
 * The harness side (race.c).  A thread that reaches an armed point calls the
 * installed handler, which may block it.  Handlers are set by the race
 * scenarios (tools/ukvm) through this interface.
 */
typedef void (*ukvm_race_handler_fn)(enum ukvm_race_point rp, void *arg);
void ukvm_race_arm(ukvm_race_handler_fn fn, void *arg);
void ukvm_race_disarm(void);
void ukvm_unsafe_set(enum ukvm_unsafe_knob k, bool on);
void ukvm_unsafe_clear_all(void);

#endif /* UKVM_SYNC_RACE_H */
