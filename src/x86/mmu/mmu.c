// SPDX-License-Identifier: MIT
/*
 * The x86 page-fault paths (kvm-brief.md 3.5, 4.1, 5.3).
 *
 * Slow path (kvm_tdp_mmu_page_fault): snapshot mmu_invalidate_seq, find the
 * memslot (vCPU holds kvm->srcu), get the pfn from the host (may sleep), take
 * mmu_lock for read, drop the fault if an invalidation raced
 * (is_page_fault_stale()), install with atomic updates, release the page.
 *
 * Fast path (fast_page_fault): no mmu_lock at all, only RCU and a cmpxchg
 * on a direct TDP leaf: restore an access-tracked SPTE and/or set W on an
 * SPTE write-protected for dirty logging, logging the gfn when W is granted.
 */
#include <errno.h>
#include <stdlib.h>

#include "sync/bug.h"
#include "sync/race.h"
#include "x86/mmu/mmu.h"
#include "x86/mmu/tdp_mmu.h"

/* ---------------------------------------------------------------------- */
/* Memory caches: allocate before mmu_lock, consume under it              */
/* ---------------------------------------------------------------------- */

#define PT_CACHE_MIN (PT64_ROOT_MAX_LEVEL + 1)

void *kvm_mmu_memory_cache_alloc(struct kvm_mmu_memory_cache *mc)
{
	return mc->nobjs ? mc->objects[--mc->nobjs] : NULL;
}

int kvm_mmu_topup_memory_caches(struct kvm_vcpu *vcpu)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);

	might_sleep();
	while (va->mmu_page_header_cache.nobjs < PT_CACHE_MIN) {
		void *sp = calloc(1, sizeof(struct kvm_mmu_page));

		if (!sp)
			return -ENOMEM;
		va->mmu_page_header_cache.objects[va->mmu_page_header_cache.nobjs++] = sp;
	}
	while (va->mmu_shadow_page_cache.nobjs < PT_CACHE_MIN) {
		struct page *page = alloc_page();
		_Atomic uint64_t *spt;

		if (!page)
			return -ENOMEM;
		atomic_fetch_or(&page->flags, PG_kernel);
		/* An empty table is full of non-present entries, not zeroes. */
		spt = pfn_to_virt(page_to_pfn(page));
		for (int i = 0; i < SPTE_ENT_PER_PAGE; i++)
			atomic_store_explicit(&spt[i], SHADOW_NONPRESENT_VALUE,
					      memory_order_relaxed);
		va->mmu_shadow_page_cache.objects[va->mmu_shadow_page_cache.nobjs++] = page;
	}
	return 0;
}

void kvm_mmu_free_memory_caches(struct kvm_vcpu *vcpu)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);

	while (va->mmu_page_header_cache.nobjs)
		free(va->mmu_page_header_cache.objects[--va->mmu_page_header_cache.nobjs]);
	while (va->mmu_shadow_page_cache.nobjs)
		put_page(va->mmu_shadow_page_cache.objects[--va->mmu_shadow_page_cache.nobjs]);
}

/* ---------------------------------------------------------------------- */
/* Roots of a vCPU                                                        */
/* ---------------------------------------------------------------------- */

int kvm_mmu_load(struct kvm_vcpu *vcpu)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);
	struct kvm_mmu_page *root;
	int r;

	r = kvm_mmu_topup_memory_caches(vcpu);
	if (r)
		return r;
	root = kvm_tdp_mmu_alloc_root(vcpu);
	va->mmu.root = root;
	va->mmu.root_pfn = root->spt_pfn;
	return 0;
}

void kvm_mmu_unload(struct kvm_vcpu *vcpu)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);

	if (!va->mmu.root)
		return;
	kvm_tdp_mmu_put_root(vcpu->kvm, va->mmu.root);
	va->mmu.root = NULL;
	va->mmu.root_pfn = 0;
}

/* Before entering the guest: a valid root must be loaded. */
int kvm_mmu_reload(struct kvm_vcpu *vcpu)
{
	struct kvm_mmu_page *root = vcpu_x86(vcpu)->mmu.root;

	if (root && !is_obsolete_root(root))
		return 0;
	kvm_mmu_unload(vcpu);
	return kvm_mmu_load(vcpu);
}

/* KVM_REQ_MMU_FREE_OBSOLETE_ROOTS: drop a root that was invalidated. */
void kvm_mmu_free_obsolete_roots(struct kvm_vcpu *vcpu)
{
	struct kvm_mmu_page *root = vcpu_x86(vcpu)->mmu.root;

	if (root && is_obsolete_root(root))
		kvm_mmu_unload(vcpu);
}

/* ---------------------------------------------------------------------- */
/* The slow path                                                          */
/* ---------------------------------------------------------------------- */

static int kvm_mmu_faultin_pfn(struct kvm_vcpu *vcpu, struct kvm_page_fault *fault)
{
	struct kvm *kvm = vcpu->kvm;
	unsigned int foll = fault->write ? FOLL_WRITE : 0;
	unsigned long pfn;
	bool writable = false;
	int r;

	/* 1. Snapshot the sequence before looking at the primary MMU. */
	fault->mmu_seq = atomic_load_explicit(&kvm->mmu_invalidate_seq,
					      memory_order_acquire);
	RACE_POINT(FAULT_AFTER_SNAPSHOT);

	if (!fault->slot)
		return RET_PF_CONTINUE;		/* MMIO: installs an MMIO SPTE */
	/* A slot being deleted or moved: its SPTEs are about to be zapped. */
	if (fault->slot->flags & KVM_MEMSLOT_INVALID)
		return RET_PF_RETRY;
	/* A write to a read-only slot is emulated as MMIO. */
	if (fault->write && (fault->slot->flags & KVM_MEM_READONLY))
		return RET_PF_EMULATE;

	/* 2. Unlocked early-out: don't fault in what is being invalidated. */
	if (mmu_invalidate_retry_gfn_unsafe(kvm, fault->mmu_seq, fault->gfn))
		return RET_PF_RETRY;

	fault->hva = __gfn_to_hva_memslot(fault->slot, fault->gfn);
	r = hva_to_pfn(kvm->mm, fault->hva, foll, &pfn, &writable);
	if (r)
		return r == -EAGAIN ? RET_PF_RETRY : r;
	fault->pfn = pfn;
	fault->refcounted_page = pfn_to_page(pfn);
	fault->map_writable = writable && !(fault->slot->flags & KVM_MEM_READONLY);
	/* Only a write logs the page: a read maps it read-only. */
	if (!fault->write && kvm_x86(kvm)->dirty_log_ro_reads &&
	    kvm_slot_dirty_track_enabled(fault->slot))
		fault->map_writable = false;
	RACE_POINT(FAULT_AFTER_PFN);

	if (mmu_invalidate_retry_gfn_unsafe(kvm, fault->mmu_seq, fault->gfn) &&
	    !ukvm_unsafe(UNSAFE_NO_STALE_CHECK)) {
		put_page(fault->refcounted_page);
		fault->refcounted_page = NULL;
		return RET_PF_RETRY;
	}
	return RET_PF_CONTINUE;
}

/* 3. The authoritative check, under mmu_lock. */
static bool is_page_fault_stale(struct kvm_vcpu *vcpu, struct kvm_page_fault *fault)
{
	struct kvm_mmu_page *root = vcpu_x86(vcpu)->mmu.root;

	if (root && is_obsolete_root(root))
		return true;
	if (ukvm_unsafe(UNSAFE_NO_STALE_CHECK))
		return false;
	return fault->slot &&
	       mmu_invalidate_retry_gfn(vcpu->kvm, fault->mmu_seq, fault->gfn);
}

/* 4. Done with the page: mark it dirty if it was mapped writable. */
static void kvm_release_faultin_page(struct kvm_page_fault *fault, bool unused)
{
	if (!fault->refcounted_page)
		return;
	if (!unused && fault->map_writable)
		atomic_fetch_or(&fault->refcounted_page->flags, PG_dirty);
	put_page(fault->refcounted_page);
	fault->refcounted_page = NULL;
}

static int kvm_tdp_mmu_page_fault(struct kvm_vcpu *vcpu, struct kvm_page_fault *fault)
{
	struct kvm *kvm = vcpu->kvm;
	bool big_lock = kvm_x86(kvm)->big_mmu_lock;
	int r;

	r = fast_page_fault(vcpu, fault);
	if (r != RET_PF_INVALID)
		return r;

	r = kvm_mmu_topup_memory_caches(vcpu);
	if (r)
		return r;
	r = kvm_mmu_faultin_pfn(vcpu, fault);
	if (r != RET_PF_CONTINUE)
		return r;

	if (big_lock)
		write_lock(&kvm->mmu_lock);
	else
		read_lock(&kvm->mmu_lock);
	if (is_page_fault_stale(vcpu, fault))
		r = RET_PF_RETRY;
	else
		r = kvm_tdp_mmu_map(vcpu, fault);
	kvm_release_faultin_page(fault, r == RET_PF_RETRY);
	if (big_lock)
		write_unlock(&kvm->mmu_lock);
	else
		read_unlock(&kvm->mmu_lock);
	return r;
}

/*
 * An EPT misconfiguration: an MMIO SPTE.  Emulate if it belongs to the
 * current memslot generation; otherwise (or mid-swap) take the normal fault
 * path, which replaces it.
 */
static int handle_mmio_page_fault(struct kvm_vcpu *vcpu, gpa_t gpa)
{
	uint64_t spte, gen;
	int level = 0;

	ukvm_rcu_read_lock();
	kvm_tdp_mmu_fast_pf_get_last_sptep(vcpu, gpa_to_gfn(gpa), &spte, &level);
	ukvm_rcu_read_unlock();
	if (!is_mmio_spte(spte))
		return RET_PF_RETRY;	/* changed since the exit: just retry */
	gen = kvm_memslots_gen(kvm_memslots(vcpu->kvm));
	if (gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS ||
	    get_mmio_spte_gen(spte) != (gen & MMIO_SPTE_GEN_MASK))
		return RET_PF_INVALID;
	return RET_PF_EMULATE;
}

/*
 * An EPT violation at @gpa.  Returns RET_PF_* (>= 0) or a negative errno
 * (-EFAULT: the host has no usable mapping, KVM_RUN fails with it).
 */
int kvm_mmu_page_fault(struct kvm_vcpu *vcpu, gpa_t gpa, uint32_t error_code)
{
	struct kvm_page_fault fault = {
		.addr = gpa,
		.error_code = error_code,
		.exec = error_code & PFERR_FETCH_MASK,
		.write = error_code & PFERR_WRITE_MASK,
		.present = error_code & PFERR_PRESENT_MASK,
		.rsvd = error_code & PFERR_RSVD_MASK,
		.gfn = gpa_to_gfn(gpa),
		.max_level = KVM_MAX_HUGEPAGE_LEVEL,
	};
	int r;

	lockdep_assert_held(&vcpu->mutex);
	UKVM_BUG_ON(!srcu_read_lock_held(&vcpu->kvm->srcu));
	vcpu_stat_inc(vcpu, pf_taken);

	if (fault.rsvd) {
		r = handle_mmio_page_fault(vcpu, gpa);
		if (r != RET_PF_INVALID) {
			if (r == RET_PF_EMULATE)
				vcpu_stat_inc(vcpu, pf_mmio);
			return r;
		}
		fault.rsvd = false;
		fault.error_code &= ~PFERR_RSVD_MASK;
	}

	/* Beyond the guest physical address width there is nothing. */
	fault.slot = fault.gfn > kvm_x86(vcpu->kvm)->max_gfn ? NULL :
		     kvm_vcpu_gfn_to_memslot(vcpu, fault.gfn);

	r = kvm_tdp_mmu_page_fault(vcpu, &fault);
	switch (r) {
	case RET_PF_FIXED:
		vcpu_stat_inc(vcpu, pf_fixed);
		break;
	case RET_PF_SPURIOUS:
		vcpu_stat_inc(vcpu, pf_spurious);
		break;
	case RET_PF_RETRY:
		vcpu_stat_inc(vcpu, pf_retry);
		break;
	case RET_PF_EMULATE:
		vcpu_stat_inc(vcpu, pf_emulate);
		break;
	default:
		break;
	}
	return r;
}

/* ---------------------------------------------------------------------- */
/* Whole-VM operations                                                    */
/* ---------------------------------------------------------------------- */

/*
 * "Fast zap": invalidate every root and make every vCPU drop its root in the
 * same mmu_lock (write) section, so none can enter the guest on a stale
 * root; then zap the invalidated roots with mmu_lock for read.
 */
void kvm_mmu_zap_all_fast(struct kvm *kvm)
{
	lockdep_assert_held(&kvm->slots_lock);
	write_lock(&kvm->mmu_lock);
	kvm_tdp_mmu_invalidate_all_roots(kvm);
	/* Indirect shadow pages become obsolete too: zap them now. */
	kvm_mmu_zap_all_shadow(kvm);
	kvm_make_all_cpus_request(kvm, KVM_REQ_MMU_FREE_OBSOLETE_ROOTS);
	write_unlock(&kvm->mmu_lock);

	read_lock(&kvm->mmu_lock);
	kvm_tdp_mmu_zap_invalidated_roots(kvm, true);
	read_unlock(&kvm->mmu_lock);
}

/* ->release and teardown: no vCPU can run any more. */
void kvm_mmu_zap_all(struct kvm *kvm)
{
	write_lock(&kvm->mmu_lock);
	kvm_mmu_zap_all_shadow(kvm);
	kvm_tdp_mmu_invalidate_all_roots(kvm);
	kvm_tdp_mmu_zap_all(kvm);
	write_unlock(&kvm->mmu_lock);
}

/*
 * Memslot DELETE/MOVE: zap the slot's range and flush (slots_lock held).
 * Indirect shadow pages of the range go too: they hold the slot's
 * disallow_lpage counters, which are freed with it.
 */
void kvm_mmu_zap_memslot(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	bool flush;

	lockdep_assert_held(&kvm->slots_lock);
	write_lock(&kvm->mmu_lock);
	kvm_mmu_zap_shadow_range(kvm, slot->as_id, slot->base_gfn,
				 slot->base_gfn + slot->npages);
	flush = kvm_tdp_mmu_zap_leafs(kvm, slot->as_id, slot->base_gfn,
				      slot->base_gfn + slot->npages, false);
	if (flush)
		kvm_flush_remote_tlbs_memslot(kvm, slot);
	write_unlock(&kvm->mmu_lock);
}
