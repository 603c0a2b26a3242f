// SPDX-License-Identifier: MIT
/*
 * Which gfns may be mapped huge (kvm-brief.md 4.2): per memslot and huge
 * level, a disallow count for each huge-page-sized, huge-aligned gfn range.
 * A range that crosses the slot's edge, or any range when the slot's gfn and
 * hva are misaligned modulo the huge size, can never be mapped huge.  The
 * host mapping level and dirty logging are checked at fault time.
 */
#include <errno.h>
#include <stdlib.h>

#include "sync/bug.h"
#include "x86/mmu/mmu_internal.h"

static inline unsigned long lpage_count(const struct kvm_memory_slot *slot, int level)
{
	uint64_t pages = KVM_PAGES_PER_HPAGE(level);
	gfn_t first = slot->base_gfn / pages;
	gfn_t last = (slot->base_gfn + slot->npages - 1) / pages;

	return (unsigned long)(last - first + 1);
}

static inline unsigned long lpage_index(const struct kvm_memory_slot *slot,
					gfn_t gfn, int level)
{
	uint64_t pages = KVM_PAGES_PER_HPAGE(level);

	return (unsigned long)(gfn / pages - slot->base_gfn / pages);
}

bool lpage_disallowed(const struct kvm_memory_slot *slot, gfn_t gfn, int level)
{
	const struct kvm_arch_memory_slot *arch = slot->arch;

	if (!arch || level < PG_LEVEL_2M || level > KVM_MAX_HUGEPAGE_LEVEL)
		return true;
	return arch->lpage_info[level - 2][lpage_index(slot, gfn, level)].disallow_lpage;
}

/*
 * A gfn shadowed by an indirect shadow page (account_shadowed()): no huge
 * mapping may cover it, so every fault on its 2M and 1G ranges maps 4 KiB
 * and reaches mmu_try_to_unsync_pages() for this very gfn.  The counters
 * are read by faults under mmu_lock (read) and change under it (write).
 * @li receives the counters raised, for kvm_mmu_gfn_allow_lpage().
 */
void kvm_mmu_gfn_disallow_lpage(struct kvm *kvm, const struct kvm_memory_slot *slot,
				gfn_t gfn, struct kvm_lpage_info **li)
{
	const struct kvm_arch_memory_slot *arch = slot->arch;

	lockdep_assert_held_write(&kvm->mmu_lock);
	for (int level = PG_LEVEL_2M; level <= KVM_MAX_HUGEPAGE_LEVEL; level++) {
		li[level - 2] = &arch->lpage_info[level - 2][lpage_index(slot, gfn, level)];
		li[level - 2]->disallow_lpage++;
	}
}

void kvm_mmu_gfn_allow_lpage(struct kvm *kvm, struct kvm_lpage_info **li)
{
	lockdep_assert_held_write(&kvm->mmu_lock);
	for (int i = 0; i < KVM_NR_PAGE_SIZES - 1; i++) {
		UKVM_WARN_ON(li[i]->disallow_lpage <= 0);
		li[i]->disallow_lpage--;
		li[i] = NULL;
	}
}

int kvm_alloc_lpage_info(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	struct kvm_arch_memory_slot *arch = calloc(1, sizeof(*arch));

	(void)kvm;
	if (!arch)
		return -ENOMEM;
	for (int level = PG_LEVEL_2M; level <= KVM_MAX_HUGEPAGE_LEVEL; level++) {
		uint64_t pages = KVM_PAGES_PER_HPAGE(level);
		unsigned long n = lpage_count(slot, level);
		struct kvm_lpage_info *li = calloc(n, sizeof(*li));

		if (!li) {
			slot->arch = arch;
			kvm_free_lpage_info(slot);
			return -ENOMEM;
		}
		/* The first and last ranges stick out of the slot unless aligned. */
		if (slot->base_gfn & (pages - 1))
			li[0].disallow_lpage = 1;
		if ((slot->base_gfn + slot->npages) & (pages - 1))
			li[n - 1].disallow_lpage = 1;
		/* gfn and hva misaligned: no huge mapping anywhere in the slot. */
		if ((slot->base_gfn ^ (slot->userspace_addr >> PAGE_SHIFT)) & (pages - 1))
			for (unsigned long i = 0; i < n; i++)
				li[i].disallow_lpage = 1;
		arch->lpage_info[level - 2] = li;
	}
	slot->arch = arch;
	return 0;
}

void kvm_free_lpage_info(struct kvm_memory_slot *slot)
{
	struct kvm_arch_memory_slot *arch = slot->arch;

	if (!arch)
		return;
	for (int i = 0; i < KVM_NR_PAGE_SIZES - 1; i++)
		free(arch->lpage_info[i]);
	free(arch);
	slot->arch = NULL;
}

/*
 * The largest level @gfn may be mapped at, at most @max_level: the slot's
 * alignment first, then the host mapping right now.  The host part is
 * "derived information": only usable because the fault re-checks
 * mmu_invalidate_retry_gfn() under mmu_lock before installing.
 */
int kvm_mmu_max_mapping_level(struct kvm *kvm, const struct kvm_memory_slot *slot,
			      gfn_t gfn, int max_level)
{
	int level, host_level;

	for (level = max_level; level > PG_LEVEL_4K; level--)
		if (!lpage_disallowed(slot, gfn, level))
			break;
	if (level == PG_LEVEL_4K)
		return PG_LEVEL_4K;
	host_level = host_mapping_level(kvm->mm, __gfn_to_hva_memslot(slot, gfn));
	return host_level < level ? host_level : level;
}

void kvm_mmu_hugepage_adjust(struct kvm_vcpu *vcpu, struct kvm_page_fault *fault)
{
	uint64_t mask;

	fault->huge_page_disallowed = false;
	fault->goal_level = PG_LEVEL_4K;
	fault->req_level = PG_LEVEL_4K;
	/* A dirty-logged slot is tracked at 4 KiB granularity. */
	if (fault->max_level == PG_LEVEL_4K || !fault->slot ||
	    kvm_slot_dirty_track_enabled(fault->slot))
		return;
	fault->req_level = kvm_mmu_max_mapping_level(vcpu->kvm, fault->slot,
						     fault->gfn, fault->max_level);
	if (fault->req_level == PG_LEVEL_4K)
		return;
	fault->goal_level = fault->req_level;
	mask = KVM_PAGES_PER_HPAGE(fault->goal_level) - 1;
	/* The host maps the same huge-aligned block: offsets agree. */
	UKVM_INVARIANT((fault->gfn & mask) == (fault->pfn & mask),
		       "huge mapping with gfn %#llx / pfn %#llx misaligned",
		       (unsigned long long)fault->gfn, (unsigned long long)fault->pfn);
	fault->pfn &= ~mask;
}
