// SPDX-License-Identifier: MIT
/*
 * Guest mode: the TLB, the EPT walk with the A/D assist, and the execution
 * of guest accesses on host frames.
 */
#include <string.h>

#include "hw/hw.h"
#include "sync/bug.h"
#include "sync/race.h"

void hw_tlb_flush(struct hw_vcpu *hv)
{
	memset(hv->tlb, 0, sizeof(hv->tlb));
	hv->stat.tlb_flushes++;
}

static unsigned int need_perm(uint8_t type)
{
	switch (type) {
	case UKVM_ACCESS_WRITE:
		return HW_PERM_W;
	case UKVM_ACCESS_EXEC:
		return HW_PERM_X;
	default:
		return HW_PERM_R;
	}
}

static uint32_t violation_code(uint8_t type, bool present)
{
	uint32_t code = present ? PFERR_PRESENT_MASK : 0;

	if (type == UKVM_ACCESS_WRITE)
		code |= PFERR_WRITE_MASK;
	else if (type == UKVM_ACCESS_EXEC)
		code |= PFERR_FETCH_MASK;
	return code;
}

/*
 * Walk the EPT for @a and fill @e, or report the exit.  Inside RCU so that a
 * table unlinked concurrently stays readable until we are done with it.
 */
static int hw_ept_walk(struct hw_vcpu *hv, struct ukvm_guest_access *a,
		       struct hw_tlb_entry *e, struct hw_exit *exit)
{
	struct kvm_vcpu_arch *va = vcpu_x86(hv->vcpu);
	bool ad = kvm_x86(hv->vcpu->kvm)->ad_enabled;
	gfn_t gfn = gpa_to_gfn(a->gpa);
	unsigned int need = need_perm(a->type);
	int ret = 0;

	hv->stat.walks++;
	ukvm_rcu_read_lock();
restart:
	{
		struct kvm_mmu_page *root = va->mmu.root;
		_Atomic uint64_t *pt, *sptep;
		uint64_t spte, want;
		int level;

		if (!root) {
			exit->reason = HW_EXIT_EPT_VIOLATION;
			exit->error_code = violation_code(a->type, false);
			ret = 1;
			goto out;
		}
		pt = pfn_to_virt(va->mmu.root_pfn);
		for (level = (int)sp_role(root).level;; level--) {
			sptep = &pt[spte_index(gfn, level)];
			spte = atomic_load_explicit(sptep, memory_order_acquire);
			if ((spte & VMX_EPT_RWX_MASK) == 0) {
				exit->reason = HW_EXIT_EPT_VIOLATION;
				exit->error_code = violation_code(a->type, false);
				ret = 1;
				goto out;
			}
			/* Writable or executable but not readable: misconfigured. */
			if (!(spte & VMX_EPT_READABLE_MASK) && (spte & VMX_EPT_WRITABLE_MASK)) {
				exit->reason = HW_EXIT_EPT_MISCONFIG;
				exit->error_code = violation_code(a->type, false) |
						   PFERR_RSVD_MASK;
				ret = 1;
				goto out;
			}
			if (level == PG_LEVEL_4K || (spte & PT_PAGE_SIZE_MASK))
				break;
			pt = pfn_to_virt(spte_to_pfn(spte));
		}

		if (((need & HW_PERM_R) && !(spte & VMX_EPT_READABLE_MASK)) ||
		    ((need & HW_PERM_W) && !(spte & VMX_EPT_WRITABLE_MASK)) ||
		    ((need & HW_PERM_X) && !(spte & VMX_EPT_EXECUTABLE_MASK))) {
			exit->reason = HW_EXIT_EPT_VIOLATION;
			exit->error_code = violation_code(a->type, true);
			ret = 1;
			goto out;
		}

		/*
		 * The A/D assist: set Accessed, and Dirty for a write, with a
		 * locked compare-and-exchange on the leaf; if the leaf changed
		 * under us, walk again.
		 */
		want = ad ? VMX_EPT_ACCESS_BIT | (need & HW_PERM_W ? VMX_EPT_DIRTY_BIT : 0) : 0;
		if ((spte & want) != want) {
			uint64_t expected = spte;

			if (!atomic_compare_exchange_strong(sptep, &expected, spte | want))
				goto restart;
			spte |= want;
			hv->stat.ad_assists++;
		}

		e->gfn = gfn;
		e->pfn = spte_to_pfn(spte) + (gfn & (KVM_PAGES_PER_HPAGE(level) - 1));
		e->perm = (uint8_t)((spte & VMX_EPT_READABLE_MASK ? HW_PERM_R : 0) |
				    (spte & VMX_EPT_WRITABLE_MASK ? HW_PERM_W : 0) |
				    (spte & VMX_EPT_EXECUTABLE_MASK ? HW_PERM_X : 0));
		e->dirty = !ad || (spte & VMX_EPT_DIRTY_BIT);
		e->valid = true;
	}
out:
	ukvm_rcu_read_unlock();
	if (ret) {
		exit->gpa = a->gpa;
		hv->stat.ept_violations += exit->reason == HW_EXIT_EPT_VIOLATION;
		hv->stat.ept_misconfigs += exit->reason == HW_EXIT_EPT_MISCONFIG;
	}
	return ret;
}

static void frame_access(kvm_pfn_t pfn, struct ukvm_guest_access *a)
{
	uint8_t *p = (uint8_t *)pfn_to_virt(pfn) + (a->gpa & (PAGE_SIZE - 1));

	/* Word-sized atomics: like the CPU's own accesses. */
	if (a->type == UKVM_ACCESS_WRITE) {
		switch (a->len) {
		case 1: __atomic_store_n(p, (uint8_t)a->value, __ATOMIC_RELAXED); break;
		case 2: __atomic_store_n((uint16_t *)p, (uint16_t)a->value, __ATOMIC_RELAXED); break;
		case 4: __atomic_store_n((uint32_t *)p, (uint32_t)a->value, __ATOMIC_RELAXED); break;
		default: __atomic_store_n((uint64_t *)p, a->value, __ATOMIC_RELAXED); break;
		}
		return;
	}
	switch (a->len) {
	case 1: a->value = __atomic_load_n(p, __ATOMIC_RELAXED); break;
	case 2: a->value = __atomic_load_n((uint16_t *)p, __ATOMIC_RELAXED); break;
	case 4: a->value = __atomic_load_n((uint32_t *)p, __ATOMIC_RELAXED); break;
	default: a->value = __atomic_load_n((uint64_t *)p, __ATOMIC_RELAXED); break;
	}
}

int hw_guest_access(struct hw_vcpu *hv, struct ukvm_guest_access *a,
		    struct hw_exit *exit)
{
	gfn_t gfn = gpa_to_gfn(a->gpa);
	struct hw_tlb_entry *e = &hv->tlb[gfn % HW_TLB_ENTRIES];
	unsigned int need = need_perm(a->type);

	/* A write through an entry not yet dirty walks again to set Dirty. */
	if (e->valid && e->gfn == gfn && (e->perm & need) &&
	    (a->type != UKVM_ACCESS_WRITE || e->dirty)) {
		hv->stat.tlb_hits++;
		RACE_POINT(GUEST_TLB_HIT);
	} else {
		hv->stat.tlb_misses++;
		if (hw_ept_walk(hv, a, e, exit))
			return 1;
	}
	frame_access(e->pfn, a);
	hv->stat.accesses++;
	if (a->type == UKVM_ACCESS_WRITE) {
		hv->stat.writes++;
		RACE_POINT(GUEST_WRITE_DONE);
	}
	return 0;
}

void hw_run_guest(struct hw_vcpu *hv, struct hw_exit *exit)
{
	struct kvm_vcpu *vcpu = hv->vcpu;

	for (int n = 0; n < HW_QUANTUM; n++) {
		/* The IPI: a requester flipped us to EXITING_GUEST_MODE. */
		if (atomic_load_explicit(&vcpu->mode, memory_order_acquire) ==
		    EXITING_GUEST_MODE || atomic_load(&hv->exit_requested)) {
			exit->reason = HW_EXIT_KICK;
			hv->stat.kicks++;
			return;
		}
		if (!hv->have_pending) {
			switch (hv->ops->next(hv->ctx, &hv->pending)) {
			case UKVM_GUEST_ACCESS:
				hv->have_pending = true;
				break;
			case UKVM_GUEST_HALT:
				exit->reason = HW_EXIT_HALT;
				return;
			default:
				exit->reason = HW_EXIT_HYPERCALL;
				return;
			}
		}
		if (hw_guest_access(hv, &hv->pending, exit))
			return;
		hv->have_pending = false;
		hv->ops->complete(hv->ctx, &hv->pending);
	}
	exit->reason = HW_EXIT_QUANTUM;
	hv->stat.quantum_exits++;
}
