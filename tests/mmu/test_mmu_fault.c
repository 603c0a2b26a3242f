// SPDX-License-Identifier: MIT
/*
 * Outcomes of the x86 fault paths, each driven through a real vCPU running a
 * scripted guest: map on first touch (zero page, copy-on-write), huge
 * mappings, the fast path after write-protection, access tracking without
 * A/D bits, MMIO (no memslot; MMIO SPTE reuse and generation), read-only
 * memslots, -EFAULT after mprotect, and a fault that retries because an
 * invalidation raced with it (a race point holds it between the pfn lookup
 * and mmu_lock, deterministically).
 */
#include <errno.h>
#include <stdlib.h>

#include "mmu_test.h"

#define GPA	(1ULL << 30)
#define SZ	(4UL << 20)

static void test_first_touch(void **state)
{
	struct mt_vm vm;
	struct kvm_vcpu *vcpu;
	uint64_t v = 0, spte;
	int level;

	(void)state;
	mt_vm_create(&vm, NULL, GPA, SZ, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);

	/* Read first: the host maps its zero page, read-only for us. */
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_READ, &v), 0);
	assert_int_equal(v, 0);
	spte = mt_spte(vcpu, GPA, &level);
	assert_true(is_shadow_present_pte(spte));
	assert_int_equal(level, PG_LEVEL_4K);
	assert_false(is_writable_pte(spte));
	assert_false(is_host_writable_spte(spte));
	assert_int_equal(spte_to_pfn(spte), zero_pfn);

	/* Then a write: COW in the host, the SPTE is replaced, not updated. */
	v = 0x1234;
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_WRITE, &v), 0);
	spte = mt_spte(vcpu, GPA, &level);
	assert_true(is_writable_pte(spte));
	assert_true(is_mmu_writable_spte(spte) && is_host_writable_spte(spte));
	assert_true(spte & VMX_EPT_DIRTY_BIT);
	assert_int_not_equal(spte_to_pfn(spte), zero_pfn);
	assert_int_equal(mt_host_read64(&vm, GPA), 0x1234);

	/* The VMM's write is seen by the guest. */
	v = 0xbeef;
	assert_int_equal(host_access(host_current_mm, vm.hva + 8, &v, 8, true), 0);
	assert_int_equal(mt_access(vcpu, GPA + 8, UKVM_ACCESS_READ, &v), 0);
	assert_int_equal(v, 0xbeef);
	assert_true(atomic_load(&vcpu->stat.pf_fixed) >= 2);

	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

static void test_huge_mapping(void **state)
{
	struct mt_vm vm;
	struct kvm_vcpu *vcpu;
	uint64_t v = 7, spte;
	int level;

	(void)state;
	/* THP-backed host memory and a 2 MiB-aligned slot: one 2 MiB SPTE. */
	mt_vm_create(&vm, NULL, GPA, SZ, VM_THP, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	assert_int_equal(mt_access(vcpu, GPA + 4096 * 3, UKVM_ACCESS_WRITE, &v), 0);
	spte = mt_spte(vcpu, GPA + 4096 * 3, &level);
	assert_int_equal(level, PG_LEVEL_2M);
	assert_true(is_large_pte(spte));
	assert_int_equal(mt_host_read64(&vm, GPA + 4096 * 3), 7);

	/* Dirty logging on: write-protected, a write splits it to 4 KiB. */
	assert_int_equal(mt_set_slot_flags(&vm, KVM_MEM_LOG_DIRTY_PAGES), 0);
	spte = mt_spte(vcpu, GPA, &level);
	assert_false(is_writable_pte(spte));
	v = 8;
	assert_int_equal(mt_access(vcpu, GPA + 4096 * 5, UKVM_ACCESS_WRITE, &v), 0);
	spte = mt_spte(vcpu, GPA + 4096 * 5, &level);
	assert_int_equal(level, PG_LEVEL_4K);
	assert_true(is_writable_pte(spte));
	/* The other 4 KiB pieces of the split page stay write-protected. */
	spte = mt_spte(vcpu, GPA + 4096 * 6, &level);
	assert_int_equal(level, PG_LEVEL_4K);
	assert_false(is_writable_pte(spte));
	assert_int_equal(mt_host_read64(&vm, GPA + 4096 * 3), 7);

	/* The host splits its THP: the notifier zaps our mapping. */
	assert_int_equal(mt_set_slot_flags(&vm, 0), 0);
	assert_int_equal(host_thp_split(host_current_mm, vm.hva), 0);
	assert_int_equal(mt_host_read64(&vm, GPA + 4096 * 5), 8);
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

static void test_fast_path_after_wrprot(void **state)
{
	struct mt_vm vm;
	struct kvm_vcpu *vcpu;
	uint64_t v = 1, spte, bitmap[2] = { 0 };
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bitmap };
	unsigned long fast0;

	(void)state;
	mt_vm_create(&vm, NULL, GPA, 128 * 4096, 0, KVM_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(mt_access(vcpu, GPA + i * 4096, UKVM_ACCESS_WRITE, &v), 0);
	assert_int_equal(ukvm_get_dirty_log(vm.kvm, &log), 0);
	assert_int_equal(bitmap[0], 0xf);

	/* Write-protected by GET_DIRTY_LOG, but still MMU-writable. */
	spte = mt_spte(vcpu, GPA + 4096, NULL);
	assert_false(is_writable_pte(spte));
	assert_true(is_mmu_writable_spte(spte));

	fast0 = atomic_load(&vcpu->stat.pf_fast);
	v = 2;
	assert_int_equal(mt_access(vcpu, GPA + 4096, UKVM_ACCESS_WRITE, &v), 0);
	assert_int_equal(atomic_load(&vcpu->stat.pf_fast), fast0 + 1);
	assert_true(is_writable_pte(mt_spte(vcpu, GPA + 4096, NULL)));

	bitmap[0] = 0;
	assert_int_equal(ukvm_get_dirty_log(vm.kvm, &log), 0);
	assert_int_equal(bitmap[0], 0x2);	/* exactly the page written again */
	assert_int_equal(mt_host_read64(&vm, GPA + 4096), 2);
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

/*
 * A read fault in a dirty-logged slot on a page the host maps writable: the
 * TDP MMU maps it writable and logs it; with dirty_log_ro_reads (the
 * shadow MMU of a PVM host, as `ukvm diff-kvm` measures) only a write logs.
 */
static void test_read_fault_in_logged_slot(void **state)
{
	(void)state;
	for (int ro = 0; ro < 2; ro++) {
		const struct ukvm_vm_config cfg = { .dirty_log_ro_reads = ro };
		uint64_t v = 0x77, spte, bitmap[2] = { 0 };
		struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bitmap };
		struct kvm_vcpu *vcpu;
		struct mt_vm vm;

		mt_vm_create(&vm, &cfg, GPA, 128 * 4096, 0, KVM_MEM_LOG_DIRTY_PAGES);
		assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
		/* The VMM populates the page: present and writable in the host. */
		assert_int_equal(host_access(host_current_mm, vm.hva + 4096, &v, 8, true), 0);
		assert_int_equal(mt_access(vcpu, GPA + 4096, UKVM_ACCESS_READ, &v), 0);
		assert_int_equal(v, 0x77);
		spte = mt_spte(vcpu, GPA + 4096, NULL);
		assert_true(is_shadow_present_pte(spte));
		assert_int_equal(is_writable_pte(spte), !ro);
		assert_int_equal(ukvm_get_dirty_log(vm.kvm, &log), 0);
		assert_int_equal(bitmap[0], ro ? 0 : 0x2);

		/* A write logs the page either way. */
		v = 0x78;
		assert_int_equal(mt_access(vcpu, GPA + 4096, UKVM_ACCESS_WRITE, &v), 0);
		assert_int_equal(ukvm_get_dirty_log(vm.kvm, &log), 0);
		assert_int_equal(bitmap[0], 0x2);
		assert_int_equal(mt_host_read64(&vm, GPA + 4096), 0x78);
		mt_vm_destroy(&vm);
	}
	assert_nothing_reported();
}

static void test_access_tracking(void **state)
{
	const struct ukvm_vm_config cfg = { .ad_disabled = true };
	struct mt_vm vm;
	struct kvm_vcpu *vcpu;
	uint64_t v = 5, spte;
	unsigned long fast0;

	(void)state;
	mt_vm_create(&vm, &cfg, GPA, SZ, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_WRITE, &v), 0);
	spte = mt_spte(vcpu, GPA, NULL);
	assert_false(spte_ad_enabled(spte));
	assert_true(is_writable_pte(spte));

	/* Aging: not present to the CPU, R/X saved, still MMU-present. */
	assert_true(host_clear_young(host_current_mm, vm.hva, 4096) >= 1);
	spte = mt_spte(vcpu, GPA, NULL);
	assert_true(is_shadow_present_pte(spte));
	assert_true(is_access_track_spte(spte));
	assert_false(is_accessed_spte(spte));
	/* Second aging pass: nothing young any more. */
	assert_int_equal(host_test_young(host_current_mm, vm.hva, 4096) > 0,
			 false);

	/* Aging does not flush: the TLB still translates, no fault. */
	fast0 = atomic_load(&vcpu->stat.pf_taken);
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_READ, &v), 0);
	assert_int_equal(atomic_load(&vcpu->stat.pf_taken), fast0);

	/* After a flush, a read restores it through the fast path; W stays clear. */
	kvm_flush_remote_tlbs(vm.kvm);
	fast0 = atomic_load(&vcpu->stat.pf_fast);
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_READ, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(atomic_load(&vcpu->stat.pf_fast), fast0 + 1);
	spte = mt_spte(vcpu, GPA, NULL);
	assert_false(is_access_track_spte(spte));
	assert_false(is_writable_pte(spte));
	/* Then a write sets W, again without the slow path. */
	v = 6;
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_WRITE, &v), 0);
	assert_int_equal(atomic_load(&vcpu->stat.pf_fast), fast0 + 2);
	assert_true(is_writable_pte(mt_spte(vcpu, GPA, NULL)));
	assert_int_equal(mt_host_read64(&vm, GPA), 6);
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

static void test_mmio_and_readonly(void **state)
{
	struct mt_vm vm;
	struct kvm_vcpu *vcpu;
	struct ukvm_guest_access ops[2] = {
		{ .gpa = 0x10000000, .len = 4, .type = UKVM_ACCESS_WRITE, .value = 0xabcd },
		{ .gpa = 0x10000000, .len = 4, .type = UKVM_ACCESS_WRITE, .value = 0xef01 },
	};
	struct mt_script s = { .ops = ops, .n = 2 };
	struct kvm_run run;
	uint64_t spte, v = 3;

	(void)state;
	mt_vm_create(&vm, NULL, GPA, SZ, 0, KVM_MEM_READONLY);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);

	/* Outside every memslot: KVM_EXIT_MMIO with the data. */
	assert_int_equal(ukvm_vcpu_set_guest(vcpu, &mt_script_ops, &s), 0);
	assert_int_equal(ukvm_vcpu_run(vcpu, &run), 0);
	assert_int_equal(run.exit_reason, KVM_EXIT_MMIO);
	assert_int_equal(run.mmio.phys_addr, 0x10000000);
	assert_int_equal(run.mmio.len, 4);
	assert_true(run.mmio.is_write);
	assert_int_equal(*(uint32_t *)run.mmio.data, 0xabcd);
	/* An MMIO SPTE now caches it: the second one exits without a walk of
	 * the memslots (EPT misconfig -> emulate). */
	spte = mt_spte(vcpu, 0x10000000, NULL);
	assert_true(is_mmio_spte(spte));
	assert_int_equal(ukvm_vcpu_run(vcpu, &run), 0);
	assert_int_equal(run.exit_reason, KVM_EXIT_MMIO);
	assert_int_equal(*(uint32_t *)run.mmio.data, 0xef01);
	assert_true(atomic_load(&vcpu->stat.pf_mmio) >= 1);

	/* A read-only slot: reads work, a write is an MMIO exit. */
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_READ, &v), 0);
	assert_int_equal(v, 0);
	ops[0] = (struct ukvm_guest_access){ .gpa = GPA, .len = 8,
					     .type = UKVM_ACCESS_WRITE, .value = 9 };
	s = (struct mt_script){ .ops = ops, .n = 1 };
	assert_int_equal(ukvm_vcpu_set_guest(vcpu, &mt_script_ops, &s), 0);
	assert_int_equal(ukvm_vcpu_run(vcpu, &run), 0);
	assert_int_equal(run.exit_reason, KVM_EXIT_MMIO);
	assert_int_equal(run.mmio.phys_addr, GPA);
	assert_int_equal(mt_host_read64(&vm, GPA), 0);

	/* A new memslot over the MMIO gpa: the stale MMIO SPTE is replaced. */
	{
		unsigned long hva = host_mmap(host_current_mm, 1 << 20, VM_READ | VM_WRITE);
		struct kvm_userspace_memory_region mem = {
			.slot = 1, .guest_phys_addr = 0x10000000,
			.memory_size = 1 << 20, .userspace_addr = hva };

		assert_int_equal(ukvm_set_user_memory_region(vm.kvm, &mem), 0);
		v = 11;
		assert_int_equal(mt_access(vcpu, 0x10000000, UKVM_ACCESS_WRITE, &v), 0);
		assert_false(is_mmio_spte(mt_spte(vcpu, 0x10000000, NULL)));
		mem.memory_size = 0;
		assert_int_equal(ukvm_set_user_memory_region(vm.kvm, &mem), 0);
		assert_int_equal(host_munmap(host_current_mm, hva, 1 << 20), 0);
	}
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

static void test_efault_after_mprotect(void **state)
{
	struct mt_vm vm;
	struct kvm_vcpu *vcpu;
	uint64_t v = 1;

	(void)state;
	mt_vm_create(&vm, NULL, GPA, SZ, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_WRITE, &v), 0);
	assert_int_equal(host_mprotect(host_current_mm, vm.hva, SZ, VM_READ), 0);
	/* The mapping was zapped; a write now fails like mmu_stress_test's. */
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_WRITE, &v), -EFAULT);
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_READ, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(host_mprotect(host_current_mm, vm.hva, SZ, VM_READ | VM_WRITE), 0);
	v = 2;
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_WRITE, &v), 0);
	assert_int_equal(mt_host_read64(&vm, GPA), 2);
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

/* ---- a fault racing an invalidation, made deterministic ---- */

struct race {
	struct flag at_point, go;
	_Atomic int armed_for;		/* vcpu id whose fault is held */
};
static struct race rc;

static void hold_fault(enum ukvm_race_point rp, void *arg)
{
	(void)arg;
	if (rp != RP_FAULT_AFTER_PFN || atomic_exchange(&rc.armed_for, -1) != 0)
		return;
	flag_set(&rc.at_point);
	flag_wait(&rc.go);
}

struct faulter {
	struct kvm_vcpu *vcpu;
	uint64_t gpa;
	int r;
};

static void *faulter_fn(void *arg)
{
	struct faulter *f = arg;
	uint64_t v = 42;

	f->r = mt_access(f->vcpu, f->gpa, UKVM_ACCESS_WRITE, &v);
	return NULL;
}

static void test_retry_on_racing_invalidation(void **state)
{
	struct mt_vm vm;
	struct faulter f = { .gpa = GPA + 4096 };
	unsigned long retries0;
	pthread_t t;

	(void)state;
	mt_vm_create(&vm, NULL, GPA, SZ, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &f.vcpu), 0);
	rc = (struct race){ 0 };
	atomic_store(&rc.armed_for, 0);
	ukvm_race_arm(hold_fault, NULL);

	retries0 = atomic_load(&f.vcpu->stat.pf_retry);
	t = start_thread("vcpu0", faulter_fn, &f);
	flag_wait(&rc.at_point);
	/* The fault holds a pfn and no lock: the host drops the page. */
	assert_int_equal(host_madvise_dontneed(host_current_mm, vm.hva + 4096, 4096), 0);
	flag_set(&rc.go);
	join_thread(t);
	ukvm_race_disarm();

	assert_int_equal(f.r, 0);
	/* is_page_fault_stale() saw the new sequence: retried, then mapped. */
	assert_true(atomic_load(&f.vcpu->stat.pf_retry) > retries0);
	assert_int_equal(mt_host_read64(&vm, GPA + 4096), 42);
	mt_vm_destroy(&vm);
	assert_nothing_reported();
	{
		struct host_mem_stats st;

		host_mem_get_stats(&st);
		assert_int_equal(st.poison_violations, 0);
	}
}

/*
 * A memslot's gfns belong to its address space: discarding the memory of an
 * address-space-1 slot, or turning on its dirty log, must not touch the
 * address-space-0 mapping of the same gfn.
 */
static void test_address_spaces_are_separate(void **state)
{
	struct kvm_userspace_memory_region smm;
	struct mt_vm vm;
	struct kvm_vcpu *vcpu;
	unsigned long hva1;
	uint64_t v = 0x77, spte;

	(void)state;
	mt_vm_create(&vm, NULL, GPA, SZ, 0, 0);
	hva1 = host_mmap(host_current_mm, SZ, VM_READ | VM_WRITE);
	assert_false(IS_ERR_HVA(hva1));
	smm = (struct kvm_userspace_memory_region){ .slot = 1u << 16 | 1,
		.guest_phys_addr = GPA, .memory_size = SZ, .userspace_addr = hva1 };
	assert_int_equal(ukvm_set_user_memory_region(vm.kvm, &smm), 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_WRITE, &v), 0);
	spte = mt_spte(vcpu, GPA, NULL);
	assert_true(is_writable_pte(spte));

	/* The SMM copy of the gfn goes away: address space 0 keeps its SPTE. */
	assert_int_equal(host_madvise_dontneed(host_current_mm, hva1, SZ), 0);
	assert_int_equal(mt_spte(vcpu, GPA, NULL), spte);
	/* Dirty logging on the SMM slot write-protects nothing of space 0. */
	smm.flags = KVM_MEM_LOG_DIRTY_PAGES;
	assert_int_equal(ukvm_set_user_memory_region(vm.kvm, &smm), 0);
	assert_int_equal(mt_spte(vcpu, GPA, NULL), spte);
	/* Space 0's own memory going away does zap it. */
	assert_int_equal(host_madvise_dontneed(host_current_mm, vm.hva, PAGE_SIZE), 0);
	assert_false(is_shadow_present_pte(mt_spte(vcpu, GPA, NULL)));

	smm.memory_size = 0;
	assert_int_equal(ukvm_set_user_memory_region(vm.kvm, &smm), 0);
	mt_vm_destroy(&vm);
	assert_int_equal(host_munmap(host_current_mm, hva1, SZ), 0);
	assert_nothing_reported();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_touch),
		cmocka_unit_test(test_huge_mapping),
		cmocka_unit_test(test_fast_path_after_wrprot),
		cmocka_unit_test(test_read_fault_in_logged_slot),
		cmocka_unit_test(test_access_tracking),
		cmocka_unit_test(test_mmio_and_readonly),
		cmocka_unit_test(test_efault_after_mprotect),
		cmocka_unit_test(test_retry_on_racing_invalidation),
		cmocka_unit_test(test_address_spaces_are_separate),
	};

	return cmocka_run_group_tests_name("mmu_fault", tests,
					   mt_group_setup, mt_group_teardown);
}
