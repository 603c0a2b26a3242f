// SPDX-License-Identifier: MIT
/*
 * The x86 glue (arch/x86/kvm/x86.c, vmx.c in the kernel): the architecture
 * hooks registered with the generic core, "loading the vendor module"
 * (ukvm_init(): vendor_module_lock, then cpus_read_lock() for the static-call
 * updates), per-CPU VMXON, TSC synchronisation under tsc_write_lock, and
 * the vCPU ioctls that reach the rarer locks of locking.rst (hv_lock,
 * xen_lock, the APIC-base static key inside kvm->srcu, the APIC-access
 * memslot toggled from vCPU context).
 */
#include <errno.h>
#include <time.h>

#include "sync/bug.h"
#include "sync/race.h"
#include "x86/mmu/mmu.h"
#include "x86/mmu/tdp_mmu.h"

static DEFINE_MUTEX(vendor_module_lock);
static _Atomic bool vmxon[HOST_MAX_CPUS];
static struct static_key apic_hw_disabled;

#define APIC_DEFAULT_PHYS_BASE		0xfee00000ULL
#define MSR_IA32_APICBASE_ENABLE	(1ULL << 11)
#define APIC_ACCESS_PAGE_PRIVATE_MEMSLOT KVM_USER_MEM_SLOTS

/* ---- hardware enabling: VMXON per host CPU ---- */

static int x86_hardware_enable(unsigned int cpu)
{
	/* VMXON twice faults: the generic layer must keep it idempotent. */
	return atomic_exchange(&vmxon[cpu], true) ? -EBUSY : 0;
}

static void x86_hardware_disable(unsigned int cpu)
{
	atomic_store(&vmxon[cpu], false);
}

bool kvm_x86_hardware_enabled(unsigned int cpu)
{
	return atomic_load(&vmxon[cpu]);
}

/* ---- VMs ---- */

static int x86_init_vm(struct kvm *kvm, const struct ukvm_vm_config *cfg)
{
	struct kvm_arch *ka = kvm_x86(kvm);
	unsigned int bits = cfg && cfg->max_gpa_bits ? cfg->max_gpa_bits : 48;

	kvm_mmu_init_tdp_mmu(kvm);
	kvm_mmu_init_shadow(kvm);
	__raw_spin_lock_init(&ka->tsc_write_lock, "&kvm->arch.tsc_write_lock",
			     LOCKDEP_STATIC_KEY("&kvm->arch.tsc_write_lock",
						LD_TYPE_RAW_SPINLOCK));
	__mutex_init(&ka->hyperv.hv_lock, "&kvm->arch.hyperv.hv_lock",
		     LOCKDEP_STATIC_KEY("&kvm->arch.hyperv.hv_lock", LD_TYPE_MUTEX));
	__mutex_init(&ka->xen.xen_lock, "&kvm->arch.xen.xen_lock",
		     LOCKDEP_STATIC_KEY("&kvm->arch.xen.xen_lock", LD_TYPE_MUTEX));

	ka->ad_enabled = !(cfg && cfg->ad_disabled);
	ka->root_level = bits > 48 ? PT64_ROOT_5LEVEL : PT64_ROOT_4LEVEL;
	ka->max_gfn = (1ULL << (bits - PAGE_SHIFT)) - 1;
	ka->dirty_mode = cfg ? cfg->dirty_mode : UKVM_DIRTY_WRPROT;
	ka->big_mmu_lock = cfg && cfg->big_mmu_lock;
	ka->dirty_log_ro_reads = cfg && cfg->dirty_log_ro_reads;
	return 0;
}

static void x86_destroy_vm(struct kvm *kvm)
{
	struct kvm_arch *ka = kvm_x86(kvm);

	/* No vCPU left: zap everything and drop the MMU's root references. */
	kvm_mmu_zap_all(kvm);
	write_lock(&kvm->mmu_lock);
	kvm_tdp_mmu_zap_invalidated_roots(kvm, false);
	write_unlock(&kvm->mmu_lock);
	UKVM_INVARIANT(kvm_tdp_mmu_nr_roots(kvm) == 0, "VM %d leaks TDP roots", kvm->id);
	UKVM_INVARIANT(cds_list_empty(&ka->active_mmu_pages) &&
		       atomic_load(&ka->indirect_shadow_pages) == 0,
		       "VM %d leaks indirect shadow pages", kvm->id);
	if (atomic_load(&ka->apic_access_hva))
		host_munmap(kvm->mm, atomic_load(&ka->apic_access_hva), PAGE_SIZE);
	mutex_destroy(&ka->hyperv.hv_lock);
	mutex_destroy(&ka->xen.xen_lock);
}

/* ---- vCPUs ---- */

static uint64_t host_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* kvm_synchronize_tsc(): the TSC-matching state under tsc_write_lock. */
static void kvm_synchronize_tsc(struct kvm_vcpu *vcpu, uint64_t data)
{
	struct kvm_arch *ka = kvm_x86(vcpu->kvm);
	uint64_t ns = host_ns();

	raw_spin_lock(&ka->tsc_write_lock);
	/* A write close to the last one keeps the vCPUs' TSCs matched. */
	if (ka->last_tsc_nsec && data == ka->last_tsc_write)
		vcpu_x86(vcpu)->tsc_offset = ka->last_tsc_offset;
	else
		vcpu_x86(vcpu)->tsc_offset = data - ns;
	ka->last_tsc_write = data;
	ka->last_tsc_nsec = ns;
	ka->last_tsc_offset = vcpu_x86(vcpu)->tsc_offset;
	raw_spin_unlock(&ka->tsc_write_lock);
}

static int x86_vcpu_create(struct kvm_vcpu *vcpu)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);

	va->apic_base = APIC_DEFAULT_PHYS_BASE | MSR_IA32_APICBASE_ENABLE;
	va->hv_vp_index = (uint64_t)vcpu->vcpu_id;
	vmx_vcpu_pi_create(vcpu);
	return 0;
}

static void x86_vcpu_postcreate(struct kvm_vcpu *vcpu)
{
	/* vcpu_load(): the vCPU's own state is under vcpu->mutex. */
	mutex_lock(&vcpu->mutex);
	kvm_synchronize_tsc(vcpu, 0);
	mutex_unlock(&vcpu->mutex);
}

static void x86_vcpu_destroy(struct kvm_vcpu *vcpu)
{
	kvm_mmu_unload(vcpu);
	kvm_mmu_free_memory_caches(vcpu);
}

/* ---- memslots ---- */

static int x86_prepare_memory_region(struct kvm *kvm,
				     const struct kvm_memory_slot *old,
				     struct kvm_memory_slot *new,
				     enum kvm_mr_change change)
{
	if (change == KVM_MR_CREATE || change == KVM_MR_MOVE) {
		if (new->base_gfn + new->npages - 1 > kvm_x86(kvm)->max_gfn)
			return -EINVAL;
		return kvm_alloc_lpage_info(kvm, new);
	}
	if (change == KVM_MR_FLAGS_ONLY)
		new->arch = old->arch;
	return 0;
}

/* kvm_mmu_slot_apply_flags(): dirty logging turned on or off. */
static void x86_commit_memory_region(struct kvm *kvm, struct kvm_memory_slot *old,
				     const struct kvm_memory_slot *new,
				     enum kvm_mr_change change)
{
	struct kvm_arch *ka = kvm_x86(kvm);

	if (change != KVM_MR_FLAGS_ONLY ||
	    !((old->flags ^ new->flags) & KVM_MEM_LOG_DIRTY_PAGES) ||
	    (new->flags & KVM_MEM_READONLY))
		return;

	if (!(new->flags & KVM_MEM_LOG_DIRTY_PAGES)) {
		read_lock(&kvm->mmu_lock);
		kvm_tdp_mmu_recover_huge_pages(kvm, new);
		read_unlock(&kvm->mmu_lock);
		return;
	}
	/* Initially-all-set: CLEAR_DIRTY_LOG protects lazily, chunk by chunk. */
	if (kvm->manual_dirty_log_protect & KVM_DIRTY_LOG_INITIALLY_SET)
		return;
	read_lock(&kvm->mmu_lock);
	if (ka->dirty_mode == UKVM_DIRTY_DBIT)
		kvm_tdp_mmu_clear_dirty_slot(kvm, new);
	else
		kvm_tdp_mmu_wrprot_slot(kvm, new, PG_LEVEL_4K);
	read_unlock(&kvm->mmu_lock);
	/*
	 * Unconditionally, after dropping mmu_lock but before returning: any
	 * MMU-writable SPTE may be cached writable in some TLB (5.1).
	 */
	RACE_POINT(WRPROT_BEFORE_FLUSH);
	if (!ukvm_unsafe(UNSAFE_NO_WRPROT_FLUSH))
		kvm_flush_remote_tlbs_memslot(kvm, new);
	UKVM_INVARIANT(!atomic_load(&kvm->wrprot_unflushed),
		       "dirty logging enabled with write access removed but not flushed");
	atomic_fetch_add_explicit(&ka->stat.wrprot_flushes, 1, memory_order_relaxed);
}

static void x86_free_memslot(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	(void)kvm;
	kvm_free_lpage_info(slot);
}

static void x86_memslots_updated(struct kvm *kvm, uint64_t gen)
{
	struct kvm_vcpu *vcpu;
	int i;

	/* The MMIO SPTEs keep 19 generation bits: zap them all on a wrap. */
	if ((gen & MMIO_SPTE_GEN_MASK) == 0) {
		kvm_x86(kvm)->mmio_gen_wraps++;
		kvm_mmu_zap_all_fast(kvm);
	}
	/* Steal-time caches are per generation: kick every vCPU. */
	kvm_for_each_vcpu(i, vcpu, kvm)
		kvm_vcpu_kick(vcpu);
}

/* ---- MMU notifiers ---- */

static bool x86_unmap_gfn_range(struct kvm *kvm, struct kvm_gfn_range *range)
{
	lockdep_assert_held_write(&kvm->mmu_lock);
	/* Outside an invalidation bracket only with slots_lock (memslot zap). */
	UKVM_WARN_ON(!atomic_load(&kvm->mmu_invalidate_in_progress) &&
		     lockdep_is_held(&kvm->slots_lock) == LOCK_STATE_NOT_HELD);
	return kvm_tdp_mmu_unmap_gfn_range(kvm, range, false);
}

/* ---- dirty logging ---- */

static void x86_enable_log_dirty_pt_masked(struct kvm *kvm,
					   struct kvm_memory_slot *slot,
					   gfn_t gfn_offset, unsigned long mask)
{
	gfn_t base = slot->base_gfn + gfn_offset;

	lockdep_assert_held_write(&kvm->mmu_lock);
	/* Huge pages were never write-protected in initially-set mode. */
	if (kvm->manual_dirty_log_protect & KVM_DIRTY_LOG_INITIALLY_SET) {
		gfn_t start = base + (gfn_t)__builtin_ctzl(mask);
		gfn_t end = base + 63 - (gfn_t)__builtin_clzl(mask);

		kvm_tdp_mmu_write_protect_gfn(kvm, slot, start, PG_LEVEL_2M);
		if ((start >> 9) != (end >> 9))
			kvm_tdp_mmu_write_protect_gfn(kvm, slot, end, PG_LEVEL_2M);
	}
	kvm_tdp_mmu_clear_dirty_pt_masked(kvm, slot, base, mask,
					  kvm_x86(kvm)->dirty_mode != UKVM_DIRTY_DBIT);
}

static void x86_sync_dirty_log(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	if (kvm_x86(kvm)->dirty_mode == UKVM_DIRTY_DBIT)
		kvm_tdp_mmu_harvest_dirty(kvm, slot);
}

/*
 * No dirty ring in Dirty-bit mode.  KVM combines rings with PML: each
 * vCPU's PML buffer is drained into its own ring on every VM-exit.  ukvm
 * has no PML; its Dirty-bit mode learns about writes only when the VMM
 * harvests the D bits (sync_dirty_log, from the VMM's thread, for a whole
 * slot), which has no vCPU to push to, so KVM_CAP_DIRTY_LOG_RING is
 * refused with -EINVAL there (check_extension answers 0).
 */
static bool x86_dirty_ring_supported(struct kvm *kvm)
{
	return kvm_x86(kvm)->dirty_mode != UKVM_DIRTY_DBIT;
}

const struct kvm_arch_ops kvm_x86_arch_ops = {
	.name = "x86 (EPT, TDP MMU)",
	.vm_size = sizeof(struct kvm_arch),
	.vcpu_size = sizeof(struct kvm_vcpu_arch),
	.hardware_enable = x86_hardware_enable,
	.hardware_disable = x86_hardware_disable,
	.init_vm = x86_init_vm,
	.destroy_vm = x86_destroy_vm,
	.vcpu_create = x86_vcpu_create,
	.vcpu_postcreate = x86_vcpu_postcreate,
	.vcpu_destroy = x86_vcpu_destroy,
	.vcpu_blocking = vmx_vcpu_pi_blocking,
	.vcpu_unblocking = vmx_vcpu_pi_unblocking,
	.vcpu_has_events = vmx_pi_has_pending,
	.deliver_posted_interrupt = vmx_pi_post_interrupt,
	.prepare_memory_region = x86_prepare_memory_region,
	.commit_memory_region = x86_commit_memory_region,
	.free_memslot = x86_free_memslot,
	.memslots_updated = x86_memslots_updated,
	.flush_shadow_all = kvm_mmu_zap_all,
	.flush_shadow_memslot = kvm_mmu_zap_memslot,
	.zap_all_fast = kvm_mmu_zap_all_fast,
	.unmap_gfn_range = x86_unmap_gfn_range,
	.age_gfn = kvm_tdp_mmu_age_gfn_range,
	.test_age_gfn = kvm_tdp_mmu_test_age_gfn,
	.lockless_aging = false,
	.mmu_enable_log_dirty_pt_masked = x86_enable_log_dirty_pt_masked,
	.sync_dirty_log = x86_sync_dirty_log,
	.dirty_ring_supported = x86_dirty_ring_supported,
};

/* ---- "loading the vendor module" ---- */

int ukvm_init(void)
{
	int r;

	mutex_lock(&vendor_module_lock);
	kvm_x86_pi_init();
	/* Patching static calls needs CPU hotplug held off. */
	cpus_read_lock();
	cpus_read_unlock();
	r = kvm_init(&kvm_x86_arch_ops);
	mutex_unlock(&vendor_module_lock);
	return r;
}

void ukvm_exit(void)
{
	mutex_lock(&vendor_module_lock);
	kvm_exit();
	mutex_unlock(&vendor_module_lock);
}

/* ---- vCPU ioctls reaching the rarer locks ---- */

/* KVM_SET_MSRS(APIC_BASE): runs inside kvm->srcu and flips a static key. */
int kvm_x86_vcpu_set_apic_base(struct kvm_vcpu *vcpu, uint64_t value)
{
	struct kvm_vcpu_arch *va = vcpu_x86(vcpu);
	int r = kvm_vcpu_ioctl_begin(vcpu);
	bool was, now;

	if (r)
		return r;
	kvm_vcpu_srcu_read_lock(vcpu);
	RACE_POINT(VCPU_SRCU_LOCKED);
	was = va->apic_base & MSR_IA32_APICBASE_ENABLE;
	now = value & MSR_IA32_APICBASE_ENABLE;
	if (was != now) {
		/* static_key_slow_inc/dec take cpus_read_lock(): inside kvm->srcu. */
		if (now)
			static_key_slow_dec(&apic_hw_disabled);
		else
			static_key_slow_inc(&apic_hw_disabled);
	}
	va->apic_base = value;
	kvm_vcpu_srcu_read_unlock(vcpu);
	kvm_vcpu_ioctl_end(vcpu);
	return 0;
}

/*
 * The first shadow-MMU root of a VM (KVM's mmu_first_shadow_root_alloc(),
 * reached from KVM_RUN inside the vCPU's kvm->srcu read section): the arch
 * data of every memslot is completed under slots_arch_lock, which memslot
 * updates drop before synchronize_srcu(), so a reader may wait for it;
 * slots_lock it may not take (the unsafe knob SLOTS_LOCK_IN_SRCU does).
 * ukvm has no shadow MMU: the per-slot work is a look at the arch data that
 * prepare_memory_region allocated; the locking is KVM's.  Returns the number
 * of memslots that have it.
 */
int kvm_x86_vcpu_first_shadow_root(struct kvm_vcpu *vcpu)
{
	struct kvm *kvm = vcpu->kvm;
	struct mutex *lock = &kvm->slots_arch_lock;
	int r = kvm_vcpu_ioctl_begin(vcpu), n = 0;

	if (r)
		return r;
	kvm_vcpu_srcu_read_lock(vcpu);
	RACE_POINT(VCPU_SRCU_LOCKED);
	if (ukvm_unsafe(UNSAFE_SLOTS_LOCK_IN_SRCU))
		lock = &kvm->slots_lock;
	mutex_lock(lock);
	for (int as = 0; as < KVM_ADDRESS_SPACE_NUM; as++) {
		struct kvm_memory_slot *slot;

		kvm_for_each_memslot(slot, __kvm_memslots(kvm, as))
			n += slot->arch != NULL;
	}
	mutex_unlock(lock);
	kvm_vcpu_srcu_read_unlock(vcpu);
	kvm_vcpu_ioctl_end(vcpu);
	return n;
}

int kvm_x86_vcpu_set_tsc(struct kvm_vcpu *vcpu, uint64_t tsc)
{
	int r = kvm_vcpu_ioctl_begin(vcpu);

	if (r)
		return r;
	kvm_synchronize_tsc(vcpu, tsc);
	kvm_vcpu_ioctl_end(vcpu);
	return 0;
}

int kvm_x86_hv_set_guest_os_id(struct kvm_vcpu *vcpu, uint64_t id)
{
	struct kvm_arch *ka = kvm_x86(vcpu->kvm);
	int r = kvm_vcpu_ioctl_begin(vcpu);

	if (r)
		return r;
	mutex_lock(&ka->hyperv.hv_lock);
	ka->hyperv.hv_guest_os_id = id;
	mutex_unlock(&ka->hyperv.hv_lock);
	kvm_vcpu_ioctl_end(vcpu);
	return 0;
}

int kvm_x86_xen_set_shared_info(struct kvm_vcpu *vcpu, uint64_t gfn)
{
	struct kvm_arch *ka = kvm_x86(vcpu->kvm);
	int r = kvm_vcpu_ioctl_begin(vcpu);

	if (r)
		return r;
	mutex_lock(&ka->xen.xen_lock);
	ka->xen.shared_info_gfn = gfn;
	mutex_unlock(&ka->xen.xen_lock);
	kvm_vcpu_ioctl_end(vcpu);
	return 0;
}

/*
 * kvm_inhibit_apic_access_page(): deep inside KVM_RUN (vcpu->mutex held),
 * delete or re-create the APIC-access internal memslot.  The memslot update
 * waits for kvm->srcu readers, so the vCPU leaves its own read section
 * first; the update takes slots_lock inside vcpu->mutex, the order locking.rst
 * formalised in 2026.
 */
int kvm_x86_inhibit_apic_access_page(struct kvm_vcpu *vcpu, bool inhibit)
{
	struct kvm *kvm = vcpu->kvm;
	struct kvm_arch *ka = kvm_x86(kvm);
	struct kvm_userspace_memory_region mem = {
		.slot = APIC_ACCESS_PAGE_PRIVATE_MEMSLOT,
		.guest_phys_addr = APIC_DEFAULT_PHYS_BASE,
	};
	unsigned long hva = atomic_load(&ka->apic_access_hva), expected = 0;
	bool present;
	int r = 0;

	lockdep_assert_held(&vcpu->mutex);
	if (!hva) {
		hva = host_mmap(kvm->mm, PAGE_SIZE, VM_READ | VM_WRITE);
		if (IS_ERR_HVA(hva))
			return (int)(long)hva;
		/* Another vCPU may have made one already. */
		if (!atomic_compare_exchange_strong(&ka->apic_access_hva, &expected, hva)) {
			host_munmap(kvm->mm, hva, PAGE_SIZE);
			hva = expected;
		}
	}
	mem.userspace_addr = hva;

	kvm_vcpu_srcu_read_unlock(vcpu);
	mutex_lock(&kvm->slots_lock);
	present = id_to_memslot(__kvm_memslots(kvm, 0), APIC_ACCESS_PAGE_PRIVATE_MEMSLOT);
	if (inhibit == present) {
		mem.memory_size = inhibit ? 0 : PAGE_SIZE;
		r = kvm_set_internal_memslot(kvm, &mem);
	}
	mutex_unlock(&kvm->slots_lock);
	kvm_vcpu_srcu_read_lock(vcpu);
	return r;
}

/*
 * A vCPU ioctl reaching kvm_x86_inhibit_apic_access_page() the way KVM_RUN
 * does: vcpu->mutex, then the vCPU's kvm->srcu read section around it.
 */
int kvm_x86_vcpu_set_apicv_inhibit(struct kvm_vcpu *vcpu, bool inhibit)
{
	int r = kvm_vcpu_ioctl_begin(vcpu);

	if (r)
		return r;
	kvm_vcpu_srcu_read_lock(vcpu);
	r = kvm_x86_inhibit_apic_access_page(vcpu, inhibit);
	kvm_vcpu_srcu_read_unlock(vcpu);
	kvm_vcpu_ioctl_end(vcpu);
	return r;
}
