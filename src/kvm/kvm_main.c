// SPDX-License-Identifier: MIT
/*
 * VMs: the "module" (kvm_init/kvm_exit), creation and destruction, the
 * reference count, vm_list, and the capabilities (KVM_CHECK_EXTENSION,
 * KVM_ENABLE_CAP).
 *
 * vm_list is an RCU list: writers hold kvm_lock, readers walk it inside
 * ukvm_rcu_read_lock() without kvm_lock (see vm_list.c).  A VM leaves the
 * list first thing in kvm_destroy_vm() and is freed only after a grace
 * period, so a reader never touches a freed VM or vCPU.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/kvm_internal.h"
#include "sync/bug.h"
#include "ukvm/ukvm.h"

DEFINE_MUTEX(kvm_lock);
struct cds_list_head vm_list = CDS_LIST_HEAD_INIT(vm_list);

const struct kvm_arch_ops *kvm_arch;
static bool kvm_loaded;
static _Atomic int kvm_next_vm_id;
static _Atomic int kvm_vm_count;	/* VMs alive (for kvm_exit checks) */

int kvm_vm_count_read(void)
{
	return atomic_load(&kvm_vm_count);
}

int kvm_init(const struct kvm_arch_ops *ops)
{
	int r;

	if (kvm_loaded)
		return -EBUSY;
	if (!host_initialized())
		return -ENODEV;
	kvm_arch = ops;
	r = kvm_legacy_register_cpuhp();
	if (r)
		return r;
	kvm_vm_list_walkers_register();
	kvm_loaded = true;
	return 0;
}

void kvm_exit(void)
{
	if (!kvm_loaded)
		return;
	UKVM_WARN_ON(atomic_load(&kvm_vm_count) != 0);
	kvm_vm_list_walkers_unregister();
	kvm_legacy_unregister_cpuhp();
	/* Wait for RCU callbacks that may still reference freed VMs. */
	ukvm_rcu_barrier();
	kvm_arch = NULL;
	kvm_loaded = false;
}

bool kvm_is_loaded(void)
{
	return kvm_loaded;
}

static void kvm_init_locks(struct kvm *kvm)
{
	mutex_init(&kvm->lock);
	mutex_init(&kvm->slots_lock);
	mutex_init(&kvm->slots_arch_lock);
	mutex_init(&kvm->irq_lock);
	rwlock_init(&kvm->mmu_lock);
	spin_lock_init(&kvm->mn_invalidate_lock);
	rcuwait_init(&kvm->mn_memslots_update_rcuwait);
	lockdep_init_map_type(&kvm->mn_active_invalidate_map,
			      "&kvm->mn_active_invalidate_count",
			      LOCKDEP_STATIC_KEY("&kvm->mn_active_invalidate_count",
						 LD_TYPE_MAP),
			      0, LD_WAIT_SLEEP, LD_WAIT_SLEEP, LD_TYPE_MAP);
}

static void kvm_free_vm_struct(struct kvm *kvm)
{
	mutex_destroy(&kvm->lock);
	mutex_destroy(&kvm->slots_lock);
	mutex_destroy(&kvm->slots_arch_lock);
	mutex_destroy(&kvm->irq_lock);
	rwlock_destroy(&kvm->mmu_lock);
	free(kvm);
}

static struct kvm *kvm_create_vm(const struct ukvm_vm_config *cfg, int *err)
{
	size_t arch_size = kvm_arch ? kvm_arch->vm_size : 0;
	struct kvm *kvm;
	int r = -ENOMEM;

	kvm = aligned_alloc(64, (sizeof(*kvm) + arch_size + 63) & ~63UL);
	if (!kvm)
		goto out;
	memset(kvm, 0, sizeof(*kvm) + arch_size);
	kvm->arch_ops = kvm_arch;
	kvm->mm = host_current_mm;
	kvm->id = atomic_fetch_add(&kvm_next_vm_id, 1);
	kvm->max_vcpus = cfg && cfg->max_vcpus > 0 && cfg->max_vcpus < KVM_MAX_VCPUS ?
			 cfg->max_vcpus : KVM_MAX_VCPUS;
	kvm->nr_as_ids = cfg && cfg->nr_address_spaces ? (int)cfg->nr_address_spaces :
			 KVM_ADDRESS_SPACE_NUM;
	kvm->hva_limit = cfg && cfg->hva_limit ? cfg->hva_limit : KVM_TASK_SIZE_MAX;
	atomic_init(&kvm->users_count, 1);
	CDS_INIT_LIST_HEAD(&kvm->vm_list);
	kvm_init_locks(kvm);

	if (init_srcu_struct(&kvm->srcu))
		goto out_free;
	if (init_srcu_struct(&kvm->irq_srcu))
		goto out_srcu;
	kvm_init_memslots(kvm);
	r = kvm_init_io_buses(kvm);
	if (r)
		goto out_irq_srcu;
	r = kvm_init_irq_routing(kvm);
	if (r)
		goto out_buses;

	if (kvm->arch_ops && kvm->arch_ops->init_vm) {
		r = kvm->arch_ops->init_vm(kvm, cfg);
		if (r)
			goto out_routing;
	}

	r = kvm_enable_virtualization();
	if (r)
		goto out_arch;

	r = kvm_init_mmu_notifier(kvm);
	if (r)
		goto out_virt;

	/* Fully built: now visible to vm_list walkers. */
	mutex_lock(&kvm_lock);
	ukvm_list_add_rcu(&kvm->vm_list, &vm_list);
	mutex_unlock(&kvm_lock);
	atomic_fetch_add(&kvm_vm_count, 1);
	return kvm;

out_virt:
	kvm_disable_virtualization();
out_arch:
	kvm_arch_call(kvm, destroy_vm, kvm);
out_routing:
	kvm_free_irq_routing(kvm);
out_buses:
	kvm_free_io_buses(kvm);
out_irq_srcu:
	cleanup_srcu_struct(&kvm->irq_srcu);
out_srcu:
	cleanup_srcu_struct(&kvm->srcu);
out_free:
	kvm_free_vm_struct(kvm);
out:
	*err = r;
	return NULL;
}

static void kvm_destroy_vm(struct kvm *kvm)
{
	mutex_lock(&kvm_lock);
	ukvm_list_del_rcu(&kvm->vm_list);
	mutex_unlock(&kvm_lock);
	/* vm_list readers (RCU, no reference) are done with us after this. */
	ukvm_synchronize_rcu();

	kvm_free_irq_routing(kvm);
	kvm_free_io_buses(kvm);

	/* Calls ->release (zap everything) and waits for running callbacks. */
	mmu_notifier_unregister(&kvm->mmu_notifier, kvm->mm);
	/*
	 * A host operation between _start and _end when we unregistered never
	 * calls our _end: the count may stay unbalanced.  No memslot writer
	 * can be waiting (no reference is left), so reset it; an unbalanced
	 * in_progress with a balanced count would be a real bug.
	 */
	if (kvm->mn_active_invalidate_count)
		kvm->mn_active_invalidate_count = 0;
	else
		UKVM_INVARIANT(atomic_load(&kvm->mmu_invalidate_in_progress) == 0,
			       "VM %d destroyed with mmu_invalidate_in_progress=%ld",
			       kvm->id, atomic_load(&kvm->mmu_invalidate_in_progress));

	kvm_destroy_vcpus(kvm);
	kvm_arch_call(kvm, destroy_vm, kvm);
	kvm_free_memslots(kvm);
	cleanup_srcu_struct(&kvm->irq_srcu);
	cleanup_srcu_struct(&kvm->srcu);
	kvm_disable_virtualization();
	atomic_fetch_sub(&kvm_vm_count, 1);
	kvm_free_vm_struct(kvm);
}

void kvm_get_kvm(struct kvm *kvm)
{
	atomic_fetch_add(&kvm->users_count, 1);
}

/* A reference only if the VM is not already on its way out. */
bool kvm_get_kvm_safe(struct kvm *kvm)
{
	int old = atomic_load(&kvm->users_count);

	do {
		if (old == 0)
			return false;
	} while (!atomic_compare_exchange_weak(&kvm->users_count, &old, old + 1));
	return true;
}

void kvm_put_kvm(struct kvm *kvm)
{
	if (atomic_fetch_sub(&kvm->users_count, 1) == 1)
		kvm_destroy_vm(kvm);
}

int ukvm_create_vm(const struct ukvm_vm_config *cfg, struct kvm **out)
{
	struct kvm *kvm;
	int r = 0;

	if (!out)
		return -EFAULT;
	if (!kvm_loaded)
		return -ENODEV;
	if (cfg && cfg->max_gpa_bits && (cfg->max_gpa_bits < 32 || cfg->max_gpa_bits > 52))
		return -EINVAL;
	if (cfg && (cfg->nr_address_spaces > KVM_ADDRESS_SPACE_NUM ||
		    (cfg->hva_limit & (PAGE_SIZE - 1)) || cfg->hva_limit > (1ULL << 63)))
		return -EINVAL;
	kvm = kvm_create_vm(cfg, &r);
	if (!kvm)
		return r;
	*out = kvm;
	return 0;
}

/* Close the VM "fd": the VM goes away when the last reference does. */
void ukvm_destroy_vm(struct kvm *kvm)
{
	if (!kvm)
		return;
	atomic_store(&kvm->vm_dead, true);
	kvm_put_kvm(kvm);
}

/* The ring: x86 answers both flavours (TSO), unless this VM cannot have one. */
static int kvm_check_dirty_ring(struct kvm *kvm)
{
	if (kvm && kvm_arch_has(kvm, dirty_ring_supported) &&
	    !kvm->arch_ops->dirty_ring_supported(kvm))
		return 0;
	return KVM_DIRTY_RING_MAX_ENTRIES * (int)sizeof(struct kvm_dirty_gfn);
}

int ukvm_check_extension(struct kvm *kvm, long ext)
{
	switch (ext) {
	case KVM_CAP_DIRTY_LOG_RING:
	case KVM_CAP_DIRTY_LOG_RING_ACQ_REL:
		return kvm_check_dirty_ring(kvm);
	case KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP:
		/* x86 KVM answers 0 (only arm64 needs it); see ukvm.h. */
		return kvm_check_dirty_ring(kvm) ? 1 : 0;
	case KVM_CAP_NR_MEMSLOTS:
		return KVM_USER_MEM_SLOTS;
	case KVM_CAP_MULTI_ADDRESS_SPACE:
		/* A kernel with a single address space compiles the cap out. */
		if (!kvm)
			return KVM_ADDRESS_SPACE_NUM;
		return kvm->nr_as_ids > 1 ? kvm->nr_as_ids : 0;
	case KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2:
		return KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET;
	case KVM_CAP_READONLY_MEM:
	case KVM_CAP_SYNC_MMU:
	case KVM_CAP_USER_MEMORY:
		return 1;
	case KVM_CAP_NR_VCPUS:
	case KVM_CAP_MAX_VCPUS:
		return KVM_MAX_VCPUS;
	default:
		return 0;
	}
}

/*
 * KVM_CAP_DIRTY_LOG_RING[_ACQ_REL]: @size bytes of ring per vCPU.  KVM's
 * checks in KVM's order; the ring is set once, and only while no vCPU has
 * been created (created_vcpus counts under kvm->lock, the vCPU allocates
 * its ring from the size it read there).
 */
static int kvm_vm_ioctl_enable_dirty_log_ring(struct kvm *kvm, uint32_t size)
{
	int r;

	if (!size || (size & (size - 1)))
		return -EINVAL;
	/* Room for the reserved entries, and at least one page. */
	if (size < kvm_dirty_ring_get_rsvd_entries(kvm) * sizeof(struct kvm_dirty_gfn) ||
	    size < PAGE_SIZE)
		return -EINVAL;
	if (size > KVM_DIRTY_RING_MAX_ENTRIES * sizeof(struct kvm_dirty_gfn))
		return -E2BIG;

	mutex_lock(&kvm->lock);
	if (kvm_dirty_ring_size(kvm) || kvm->created_vcpus)
		r = -EINVAL;
	else {
		atomic_store_explicit(&kvm->dirty_ring_size, size, memory_order_relaxed);
		r = 0;
	}
	mutex_unlock(&kvm->lock);
	return r;
}

static bool kvm_are_all_memslots_empty(struct kvm *kvm)
{
	lockdep_assert_held(&kvm->slots_lock);
	for (int i = 0; i < kvm->nr_as_ids; i++)
		if (kvm_memslots_count(__kvm_memslots(kvm, i)))
			return false;
	return true;
}

/*
 * KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP: after a ring, and only while no
 * memslot exists, so every logged slot created later gets a bitmap.
 */
static int kvm_vm_ioctl_enable_dirty_ring_bitmap(struct kvm *kvm,
						 const struct kvm_enable_cap *cap)
{
	int r = -EINVAL;

	if (!ukvm_check_extension(kvm, cap->cap) || !kvm_dirty_ring_size(kvm) ||
	    cap->flags)
		return r;
	mutex_lock(&kvm->slots_lock);
	if (kvm_are_all_memslots_empty(kvm)) {
		kvm->dirty_ring_with_bitmap = true;
		r = 0;
	}
	mutex_unlock(&kvm->slots_lock);
	return r;
}

int ukvm_enable_cap(struct kvm *kvm, const struct kvm_enable_cap *cap)
{
	uint64_t allowed = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;

	if (!kvm || !cap)
		return -EFAULT;
	switch (cap->cap) {
	case KVM_CAP_DIRTY_LOG_RING:
	case KVM_CAP_DIRTY_LOG_RING_ACQ_REL:
		/* Refused where check_extension says 0 (Dirty-bit mode). */
		if (!ukvm_check_extension(kvm, cap->cap))
			return -EINVAL;
		/* KVM takes args[0] as a u32: the high half is ignored. */
		return kvm_vm_ioctl_enable_dirty_log_ring(kvm, (uint32_t)cap->args[0]);
	case KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP:
		return kvm_vm_ioctl_enable_dirty_ring_bitmap(kvm, cap);
	case KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2:
		/* INITIALLY_SET only together with MANUAL_PROTECT_ENABLE. */
		if (cap->args[0] & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)
			allowed |= KVM_DIRTY_LOG_INITIALLY_SET;
		if (cap->flags || (cap->args[0] & ~allowed))
			return -EINVAL;
		/* Read by GET/CLEAR_DIRTY_LOG and by slot creation: slots_lock. */
		mutex_lock(&kvm->slots_lock);
		kvm->manual_dirty_log_protect = cap->args[0];
		mutex_unlock(&kvm->slots_lock);
		return 0;
	default:
		return -EINVAL;
	}
}
