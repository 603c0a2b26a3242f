// SPDX-License-Identifier: MIT
/*
 * Indirect shadow pages next to the TDP MMU and kvm->arch.mmu_unsync_pages_lock
 * (src/x86/mmu/shadow.c, nested.c), driven through real vCPUs:
 *   - shadowing a gfn write-protects it (neither W nor MMU-writable); a guest
 *     write then takes the slow path, unsyncs the page and maps it writable;
 *   - a sync protects it again, so the next write faults again;
 *   - a shadowed gfn is never mapped huge, even in a THP-backed 2 MiB slot;
 *   - a refused unsync (write-tracked upper-level table) maps the gfn
 *     read-only and not MMU-writable: the fast path cannot fix it, every
 *     write is emulated;
 *   - pages go away with their memslot (move, delete) and with the VM.
 * The races are in test_mmu_unsync_race.c.
 */
#include <errno.h>
#include <stdlib.h>

#include "unsync_test.h"

static void test_shadow_wrprot_then_unsync(void **state)
{
	struct mt_vm vm;
	struct kvm_vcpu *vcpu, *l1;
	gfn_t gfns[4] = { GFN0 + 1, GFN0 + 2, GFN0 + 3, GFN0 + 4 };
	unsigned long taken, fast;
	uint64_t v = 0;

	(void)state;
	mt_vm_create(&vm, NULL, GPA, SZ, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 1, &l1), 0);
	for (int i = 0; i < 4; i++)
		write64(vcpu, gpa_of(gfns[i]), 100 + (uint64_t)i);
	write64(vcpu, gpa_of(GFN0 + 8), 8);
	assert_writable(vcpu, gfns[0]);

	/* L1 enters L2: its four EPT12 tables get shadow pages. */
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, gfns, 4, PG_LEVEL_4K), 0);
	assert_int_equal(NR_SHADOW(vm.kvm), 4);
	assert_int_equal(STAT(vm.kvm, mmu_cache_miss), 4);
	for (int i = 0; i < 4; i++)
		assert_protected(vcpu, gfns[i]);
	assert_writable(vcpu, GFN0 + 8);	/* not shadowed: untouched */

	/* Reading a shadowed gfn is fine: no fault. */
	taken = atomic_load(&vcpu->stat.pf_taken);
	assert_int_equal(mt_access(vcpu, gpa_of(gfns[1]), UKVM_ACCESS_READ, &v), 0);
	assert_int_equal(v, 101);
	assert_int_equal(atomic_load(&vcpu->stat.pf_taken), taken);

	/* A write faults, takes the slow path and unsyncs the page. */
	fast = atomic_load(&vcpu->stat.pf_fast);
	write64(vcpu, gpa_of(gfns[0]), 0xa0);
	assert_int_equal(atomic_load(&vcpu->stat.pf_taken), taken + 1);
	assert_int_equal(atomic_load(&vcpu->stat.pf_fast), fast);
	assert_writable(vcpu, gfns[0]);
	assert_int_equal(STAT(vm.kvm, unsync_pages), 1);
	assert_int_equal(STAT(vm.kvm, mmu_unsync), 1);
	assert_int_equal(STAT(vm.kvm, mmu_unsync_locked), 1);
	assert_int_equal(STAT(vm.kvm, mmu_unsync_refused), 0);
	assert_int_equal(mt_host_read64(&vm, gpa_of(gfns[0])), 0xa0);

	/* Unsync: writable until the next sync, no more faults. */
	write64(vcpu, gpa_of(gfns[0]) + 8, 0xa1);
	assert_int_equal(atomic_load(&vcpu->stat.pf_taken), taken + 1);
	assert_int_equal(STAT(vm.kvm, unsync_pages), 1);
	for (int i = 1; i < 4; i++)
		assert_protected(vcpu, gfns[i]);
	assert_int_equal(mt_host_read64(&vm, gpa_of(gfns[3])), 103);

	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

static void test_sync_reprotects(void **state)
{
	struct mt_vm vm;
	struct kvm_vcpu *vcpu, *l1;
	gfn_t gfns[2] = { GFN0 + 16, GFN0 + 17 };
	unsigned long taken, fast;

	(void)state;
	mt_vm_create(&vm, NULL, GPA, SZ, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 1, &l1), 0);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, gfns, 2, PG_LEVEL_4K), 0);
	/* Not mapped yet: the first write maps it and unsyncs at once. */
	write64(vcpu, gpa_of(gfns[0]), 1);
	assert_writable(vcpu, gfns[0]);
	assert_int_equal(STAT(vm.kvm, unsync_pages), 1);

	/* Nested entry again: the unsync page is synced and protected. */
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, gfns, 2, PG_LEVEL_4K), 0);
	assert_int_equal(STAT(vm.kvm, mmu_cache_miss), 2);
	assert_int_equal(STAT(vm.kvm, mmu_syncs), 1);
	assert_int_equal(STAT(vm.kvm, mmu_unsync), 0);
	assert_protected(vcpu, gfns[0]);

	/* So the next write faults again (slow path: not MMU-writable). */
	taken = atomic_load(&vcpu->stat.pf_taken);
	fast = atomic_load(&vcpu->stat.pf_fast);
	write64(vcpu, gpa_of(gfns[0]), 2);
	assert_int_equal(atomic_load(&vcpu->stat.pf_taken), taken + 1);
	assert_int_equal(atomic_load(&vcpu->stat.pf_fast), fast);
	assert_int_equal(STAT(vm.kvm, unsync_pages), 2);
	assert_int_equal(STAT(vm.kvm, mmu_unsync_locked), 2);
	assert_int_equal(mt_host_read64(&vm, gpa_of(gfns[0])), 2);

	/* A sync of pages that are all sync changes nothing. */
	write64(vcpu, gpa_of(gfns[1]), 3);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, gfns, 2, PG_LEVEL_4K), 0);
	assert_int_equal(STAT(vm.kvm, mmu_syncs), 3);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, gfns, 2, PG_LEVEL_4K), 0);
	assert_int_equal(STAT(vm.kvm, mmu_syncs), 3);
	assert_int_equal(STAT(vm.kvm, unsync_pages),
			 STAT(vm.kvm, mmu_syncs) + (unsigned long)STAT(vm.kvm, mmu_unsync));

	/* L1 leaves nested mode: the pages go, the next write maps writable. */
	kvm_x86_nested_zap_shadow(vm.kvm);
	assert_int_equal(NR_SHADOW(vm.kvm), 0);
	assert_int_equal(STAT(vm.kvm, mmu_shadow_zapped), 2);
	assert_protected(vcpu, gfns[1]);
	write64(vcpu, gpa_of(gfns[1]), 4);
	assert_writable(vcpu, gfns[1]);
	assert_int_equal(STAT(vm.kvm, unsync_pages), 3);
	assert_int_equal(mt_host_read64(&vm, gpa_of(gfns[1])), 4);

	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

static void test_shadowed_never_huge(void **state)
{
	struct mt_vm vm;
	struct kvm_vcpu *vcpu, *l1;
	gfn_t a = GFN0 + 512 + 7, b = GFN0 + 5;
	int level;

	(void)state;
	/* THP-backed, 2 MiB aligned: everything could be mapped 2 MiB. */
	mt_vm_create(&vm, NULL, GPA, SZ, VM_THP, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 1, &l1), 0);

	/* Shadowed before anything is mapped: its 2 MiB block maps 4 KiB. */
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, &a, 1, PG_LEVEL_4K), 0);
	write64(vcpu, gpa_of(GFN0 + 3), 3);
	mt_spte(vcpu, gpa_of(GFN0 + 3), &level);
	assert_int_equal(level, PG_LEVEL_2M);
	write64(vcpu, gpa_of(a - 2), 0xa2);
	mt_spte(vcpu, gpa_of(a - 2), &level);
	assert_int_equal(level, PG_LEVEL_4K);
	assert_writable(vcpu, a - 2);
	write64(vcpu, gpa_of(a), 0xa);
	mt_spte(vcpu, gpa_of(a), &level);
	assert_int_equal(level, PG_LEVEL_4K);
	assert_writable(vcpu, a);
	assert_int_equal(STAT(vm.kvm, unsync_pages), 1);

	/* Shadowed while mapped 2 MiB: the huge leaf loses W and MMU-W... */
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, &b, 1, PG_LEVEL_4K), 0);
	assert_protected(vcpu, b);
	mt_spte(vcpu, gpa_of(b), &level);
	assert_int_equal(level, PG_LEVEL_2M);
	/* ...and a write anywhere in the block splits it to 4 KiB. */
	write64(vcpu, gpa_of(b + 1), 0xb1);
	mt_spte(vcpu, gpa_of(b + 1), &level);
	assert_int_equal(level, PG_LEVEL_4K);
	assert_writable(vcpu, b + 1);
	assert_protected(vcpu, b);
	write64(vcpu, gpa_of(b), 0xb);
	mt_spte(vcpu, gpa_of(b), &level);
	assert_int_equal(level, PG_LEVEL_4K);
	assert_writable(vcpu, b);
	assert_int_equal(STAT(vm.kvm, unsync_pages), 2);
	assert_int_equal(mt_host_read64(&vm, gpa_of(GFN0 + 3)), 3);

	/* Unshadowed, zapped: huge again (the disallow counts went back). */
	kvm_x86_nested_zap_shadow(vm.kvm);
	mutex_lock(&vm.kvm->slots_lock);
	kvm_mmu_zap_all_fast(vm.kvm);
	mutex_unlock(&vm.kvm->slots_lock);
	write64(vcpu, gpa_of(GFN0 + 9), 9);
	mt_spte(vcpu, gpa_of(GFN0 + 9), &level);
	assert_int_equal(level, PG_LEVEL_2M);
	write64(vcpu, gpa_of(a + 1), 0xa1);
	mt_spte(vcpu, gpa_of(a), &level);
	assert_int_equal(level, PG_LEVEL_2M);
	assert_int_equal(mt_host_read64(&vm, gpa_of(a)), 0xa);
	assert_int_equal(mt_host_read64(&vm, gpa_of(b)), 0xb);
	assert_int_equal(mt_host_read64(&vm, gpa_of(b + 1)), 0xb1);

	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

static void test_refused_unsync(void **state)
{
	struct mt_vm vm;
	struct kvm_vcpu *vcpu, *l1;
	gfn_t t = GFN0 + 2, u = GFN0 + 3;
	struct kvm_memory_slot *slot;
	unsigned long fast, taken;
	uint64_t v = 0;
	int idx;

	(void)state;
	mt_vm_create(&vm, NULL, GPA, SZ, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 1, &l1), 0);
	write64(vcpu, gpa_of(t), 0x70);
	assert_writable(vcpu, t);

	/* An upper-level EPT12 table: write-tracked, never unsync. */
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, &t, 1, PG_LEVEL_2M), 0);
	assert_protected(vcpu, t);

	/* The write is refused, mapped "1 0 0", and emulated. */
	fast = atomic_load(&vcpu->stat.pf_fast);
	taken = atomic_load(&vcpu->stat.pf_taken);
	write64(vcpu, gpa_of(t), 0x77);
	assert_int_equal(mt_host_read64(&vm, gpa_of(t)), 0x77);
	assert_protected(vcpu, t);
	assert_int_equal(STAT(vm.kvm, mmu_unsync_refused), 1);
	assert_int_equal(STAT(vm.kvm, mmu_pte_write), 1);
	assert_int_equal(STAT(vm.kvm, unsync_pages), 0);
	assert_int_equal(STAT(vm.kvm, mmu_unsync_locked), 0);

	/* Again: the fast path cannot make it writable, the slow path refuses. */
	write64(vcpu, gpa_of(t) + 8, 0x78);
	assert_int_equal(atomic_load(&vcpu->stat.pf_fast), fast);
	assert_int_equal(atomic_load(&vcpu->stat.pf_taken), taken + 2);
	assert_protected(vcpu, t);
	assert_int_equal(STAT(vm.kvm, mmu_unsync_refused), 2);
	assert_int_equal(STAT(vm.kvm, mmu_pte_write), 2);
	assert_int_equal(mt_host_read64(&vm, gpa_of(t) + 8), 0x78);
	assert_int_equal(mt_access(vcpu, gpa_of(t), UKVM_ACCESS_READ, &v), 0);
	assert_int_equal(v, 0x77);

	/* A prefetch never unsyncs; a 4K page of @u does not count as tracked. */
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, &u, 1, PG_LEVEL_4K), 0);
	idx = srcu_read_lock(&vm.kvm->srcu);
	slot = gfn_to_memslot(vm.kvm, u);
	read_lock(&vm.kvm->mmu_lock);
	assert_int_equal(mmu_try_to_unsync_pages(vm.kvm, slot, u, PG_LEVEL_4K, true), -EEXIST);
	assert_int_equal(mmu_try_to_unsync_pages(vm.kvm, slot, t, PG_LEVEL_4K, false), -EPERM);
	assert_false(kvm_gfn_is_write_tracked(vm.kvm, 0, u));
	assert_true(kvm_gfn_is_write_tracked(vm.kvm, 0, t));
	read_unlock(&vm.kvm->mmu_lock);
	srcu_read_unlock(&vm.kvm->srcu, idx);
	assert_int_equal(STAT(vm.kvm, unsync_pages), 0);

	/* @u goes unsync, then becomes an upper-level table: the unsync page goes. */
	write64(vcpu, gpa_of(u), 0x30);
	assert_int_equal(STAT(vm.kvm, mmu_unsync), 1);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, &u, 1, PG_LEVEL_1G), 0);
	assert_int_equal(STAT(vm.kvm, mmu_shadow_zapped), 1);
	assert_int_equal(STAT(vm.kvm, mmu_unsync), 0);
	assert_int_equal(NR_SHADOW(vm.kvm), 2);
	assert_protected(vcpu, u);
	write64(vcpu, gpa_of(u), 0x31);
	assert_int_equal(STAT(vm.kvm, mmu_pte_write), 3);
	assert_int_equal(mt_host_read64(&vm, gpa_of(u)), 0x31);

	/* Unshadowed: the next write maps it writable, no emulation. */
	kvm_x86_nested_zap_shadow(vm.kvm);
	write64(vcpu, gpa_of(t), 0x79);
	assert_writable(vcpu, t);
	assert_int_equal(STAT(vm.kvm, mmu_pte_write), 3);
	assert_int_equal(mt_host_read64(&vm, gpa_of(t)), 0x79);

	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

static void set_slot(struct kvm *kvm, uint32_t id, uint64_t gpa, uint64_t size,
		     unsigned long hva)
{
	struct kvm_userspace_memory_region mem = {
		.slot = id, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = hva };

	assert_int_equal(ukvm_set_user_memory_region(kvm, &mem), 0);
}

static void test_memslot_and_teardown(void **state)
{
	const uint64_t gpa1 = GPA + (64ULL << 20), gpa2 = GPA + (128ULL << 20);
	const uint64_t sz1 = 1UL << 20;
	struct mt_vm vm;
	struct kvm_vcpu *vcpu, *l1;
	gfn_t in0[2] = { GFN0 + 1, GFN0 + 2 };
	gfn_t in1[3] = { gpa1 >> 12, (gpa1 >> 12) + 1, (gpa1 >> 12) + 2 };
	gfn_t in2[3] = { gpa2 >> 12, (gpa2 >> 12) + 1, (gpa2 >> 12) + 2 };
	gfn_t bad = (GPA >> 12) - 1;
	unsigned long hva1;
	uint64_t v = 0;

	(void)state;
	mt_vm_create(&vm, NULL, GPA, SZ, 0, 0);
	hva1 = host_mmap(host_current_mm, sz1, VM_READ | VM_WRITE);
	assert_false(IS_ERR_HVA(hva1));
	set_slot(vm.kvm, 1, gpa1, sz1, hva1);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 1, &l1), 0);

	/* Bad arguments change nothing. */
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, in0, 2, 0), -EINVAL);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, in0, 2, 5), -EINVAL);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, in0, -1, 1), -EINVAL);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, in0, 0, 1), 0);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, &bad, 1, 1), -EFAULT);
	assert_int_equal(NR_SHADOW(vm.kvm), 0);

	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, in0, 2, PG_LEVEL_4K), 0);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, in1, 3, PG_LEVEL_4K), 0);
	write64(vcpu, gpa_of(in1[1]), 11);
	assert_int_equal(STAT(vm.kvm, mmu_unsync), 1);
	assert_int_equal(NR_SHADOW(vm.kvm), 5);

	/* Moving slot 1 zaps its pages (they hold its disallow counts). */
	set_slot(vm.kvm, 1, gpa2, sz1, hva1);
	assert_int_equal(NR_SHADOW(vm.kvm), 2);
	assert_int_equal(STAT(vm.kvm, mmu_unsync), 0);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, in1, 3, PG_LEVEL_4K), -EFAULT);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, in2, 3, PG_LEVEL_2M), 0);
	assert_int_equal(NR_SHADOW(vm.kvm), 5);
	write64(vcpu, gpa_of(in2[1]), 12);	/* emulated: write-tracked */
	assert_int_equal(STAT(vm.kvm, mmu_pte_write), 1);
	assert_int_equal(host_access(host_current_mm, hva1 + 4096, &v, 8, false), 0);
	assert_int_equal(v, 12);

	/* Deleting it too. */
	set_slot(vm.kvm, 1, gpa2, 0, hva1);
	assert_int_equal(NR_SHADOW(vm.kvm), 2);
	assert_int_equal(STAT(vm.kvm, mmu_shadow_zapped), 6);

	/* The VM goes with two pages left: nothing leaks. */
	mt_vm_destroy(&vm);
	assert_int_equal(host_munmap(host_current_mm, hva1, sz1), 0);
	assert_nothing_reported();
}

/* ---- two faults unsyncing the same page, made deterministic ---- */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shadow_wrprot_then_unsync),
		cmocka_unit_test(test_sync_reprotects),
		cmocka_unit_test(test_shadowed_never_huge),
		cmocka_unit_test(test_refused_unsync),
		cmocka_unit_test(test_memslot_and_teardown),
	};

	return cmocka_run_group_tests_name("mmu_unsync", tests,
					   mt_group_setup, mt_group_teardown);
}
