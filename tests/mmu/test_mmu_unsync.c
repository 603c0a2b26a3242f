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
 *   - pages go away with their memslot (move, delete) and with the VM;
 *   - two faults unsync the same page at once (a race point holds one
 *     between its unlocked test and mmu_unsync_pages_lock): the re-check
 *     under the lock leaves the page alone; without it (unsafe knob) the
 *     page is marked twice and the invariant reports it;
 *   - two vCPUs write 64 shadowed gfns (plus 8 write-tracked ones) while a
 *     third vCPU syncs them for a fixed number of rounds: data intact, no
 *     invariant or validator report, and the counters add up exactly.
 */
#include <errno.h>
#include <stdlib.h>

#include "mmu_test.h"

#define GPA	(1ULL << 30)
#define SZ	(4UL << 20)
#define GFN0	(GPA >> 12)

#define STAT(kvm, f)	atomic_load(&kvm_x86(kvm)->stat.f)
#define NR_SHADOW(kvm)	atomic_load(&kvm_x86(kvm)->indirect_shadow_pages)

static uint64_t gpa_of(gfn_t gfn)
{
	return gfn << 12;
}

static void write64(struct kvm_vcpu *vcpu, uint64_t gpa, uint64_t v)
{
	assert_int_equal(mt_access(vcpu, gpa, UKVM_ACCESS_WRITE, &v), 0);
}

/* H M W of the leaf mapping @gfn: "1 0 0" is the shadowed state. */
static void assert_protected(struct kvm_vcpu *vcpu, gfn_t gfn)
{
	uint64_t spte = mt_spte(vcpu, gpa_of(gfn), NULL);

	assert_true(is_shadow_present_pte(spte));
	assert_true(is_host_writable_spte(spte));
	assert_false(is_mmu_writable_spte(spte));
	assert_false(is_writable_pte(spte));
}

static void assert_writable(struct kvm_vcpu *vcpu, gfn_t gfn)
{
	uint64_t spte = mt_spte(vcpu, gpa_of(gfn), NULL);

	assert_true(is_shadow_present_pte(spte));
	assert_true(is_writable_pte(spte) && is_mmu_writable_spte(spte));
}

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
	mt_assert_clean();
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
	mt_assert_clean();
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
	mt_assert_clean();
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
	mt_assert_clean();
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
	mt_assert_clean();
}

/* ---- two faults unsyncing the same page, made deterministic ---- */

struct hold {
	struct flag at_point, go;
	_Atomic int armed;
};
static struct hold hold;

/* Stop the first thread that saw the page sync, before the spinlock. */
static void hold_unsync(enum ukvm_race_point rp, void *arg)
{
	(void)arg;
	if (rp != RP_UNSYNC_BEFORE_LOCK || !atomic_exchange(&hold.armed, 0))
		return;
	flag_set(&hold.at_point);
	flag_wait(&hold.go);
}

struct writer {
	struct kvm_vcpu *vcpu;
	uint64_t gpa, v;
	int r;
};

static void *writer_fn(void *arg)
{
	struct writer *w = arg;

	w->r = mt_access(w->vcpu, w->gpa, UKVM_ACCESS_WRITE, &w->v);
	return NULL;
}

/*
 * vCPU 0 faults on a shadowed gfn, sees its page sync and stops before
 * mmu_unsync_pages_lock, holding mmu_lock for read.  vCPU 1 faults on the
 * same gfn meanwhile (mmu_lock is shared), unsyncs the page, maps it.  Then
 * vCPU 0 takes the lock: the re-check finds the page unsync and leaves it
 * alone.  With the re-check removed (unsafe knob), vCPU 0 marks it again.
 */
static void unsync_race(bool unsafe)
{
	struct mt_vm vm;
	struct kvm_vcpu *v1, *l1;
	struct writer w = { .v = 0x100 };
	gfn_t x = GFN0 + 6;
	pthread_t t;

	mt_vm_create(&vm, NULL, GPA, SZ, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &w.vcpu), 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 1, &v1), 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 2, &l1), 0);
	assert_int_equal(kvm_x86_nested_shadow_gfns(l1, &x, 1, PG_LEVEL_4K), 0);
	w.gpa = gpa_of(x);

	hold = (struct hold){ 0 };
	atomic_store(&hold.armed, 1);
	if (unsafe)
		ukvm_unsafe_set(UNSAFE_NO_UNSYNC_RECHECK, true);
	ukvm_race_arm(hold_unsync, NULL);
	t = start_thread("vcpu0", writer_fn, &w);
	flag_wait(&hold.at_point);
	write64(v1, gpa_of(x) + 8, 0x200);
	assert_int_equal(STAT(vm.kvm, unsync_pages), 1);
	assert_int_equal(STAT(vm.kvm, mmu_unsync_locked), 1);
	flag_set(&hold.go);
	join_thread(t);
	ukvm_race_disarm();
	ukvm_unsafe_clear_all();

	assert_int_equal(w.r, 0);
	assert_int_equal(STAT(vm.kvm, mmu_unsync_locked), 2);
	assert_writable(w.vcpu, x);
	assert_int_equal(mt_host_read64(&vm, gpa_of(x)), 0x100);
	assert_int_equal(mt_host_read64(&vm, gpa_of(x) + 8), 0x200);
	if (!unsafe) {
		assert_int_equal(STAT(vm.kvm, mmu_unsync_recheck), 1);
		assert_int_equal(STAT(vm.kvm, unsync_pages), 1);
		assert_int_equal(STAT(vm.kvm, mmu_unsync), 1);
	} else {
		/* One page, counted unsync twice: the invariant saw it. */
		assert_int_equal(STAT(vm.kvm, mmu_unsync_recheck), 0);
		assert_int_equal(STAT(vm.kvm, unsync_pages), 2);
		assert_int_equal(STAT(vm.kvm, mmu_unsync), 2);
		assert_int_equal(ukvm_invariant_failures(), 1);
		ukvm_invariant_reset();
	}
	mt_vm_destroy(&vm);
	mt_assert_clean();
}

static void test_unsync_recheck(void **state)
{
	(void)state;
	unsync_race(false);
}

static void test_unsync_no_recheck_unsafe(void **state)
{
	(void)state;
	unsync_race(true);
}

/* ---- the concurrent test ---- */

#define NGFN	64
#define NTRACK	8
#define NACC	(NGFN + NTRACK)

struct conc {
	struct mt_vm vm;
	struct kvm_vcpu *vcpu[3];
	gfn_t gfns[NGFN];
	int rounds, passes;
	_Atomic int pass_done[2];
	_Atomic int rounds_done;
};

struct conc_guest {
	struct conc *c;
	int v, pass, i;
};

static uint64_t tag(int v, int pass, int i)
{
	return ((uint64_t)(v + 1) << 48) | ((uint64_t)pass << 16) | (uint64_t)i;
}

/* Access i of a pass: gfn i, at this vCPU's own 8 bytes of the page. */
static uint64_t conc_gpa(int v, int i)
{
	return gpa_of(GFN0 + (gfn_t)i) + (uint64_t)v * 8;
}

static enum ukvm_guest_step conc_next(void *ctx, struct ukvm_guest_access *a)
{
	struct conc_guest *g = ctx;

	if (g->i >= NACC)
		return UKVM_GUEST_EXIT;
	*a = (struct ukvm_guest_access){ .gpa = conc_gpa(g->v, g->i), .len = 8,
		.type = UKVM_ACCESS_WRITE, .value = tag(g->v, g->pass, g->i) };
	return UKVM_GUEST_ACCESS;
}

static void conc_complete(void *ctx, const struct ukvm_guest_access *a)
{
	struct conc_guest *g = ctx;

	(void)a;
	g->i++;
}

static const struct ukvm_guest_ops conc_ops = {
	.next = conc_next,
	.complete = conc_complete,
};

struct conc_arg {
	struct conc *c;
	int v;
};

static void *conc_vcpu_fn(void *arg)
{
	struct conc_arg *ca = arg;
	struct conc *c = ca->c;
	struct conc_guest g = { .c = c, .v = ca->v };
	struct kvm_run run;

	for (int p = 1; p <= c->passes; p++) {
		/*
		 * Start a pass with the other vCPU (both fault on the same
		 * gfns at about the same time) and at most one sync round
		 * behind (writes and syncs overlap).
		 */
		WAIT_UNTIL(atomic_load_explicit(&c->pass_done[!ca->v], memory_order_acquire) >= p - 1 &&
			   atomic_load_explicit(&c->rounds_done, memory_order_acquire) >= p - 2);
		g.pass = p;
		g.i = 0;
		T_CHECK(ukvm_vcpu_set_guest(c->vcpu[ca->v], &conc_ops, &g) == 0);
		for (;;) {
			int r = ukvm_vcpu_run(c->vcpu[ca->v], &run);

			if (r) {
				T_CHECK(r == 0);
				return NULL;
			}
			if (run.exit_reason == KVM_EXIT_HYPERCALL)
				break;
			T_CHECK(run.exit_reason == KVM_EXIT_INTR);
		}
		atomic_store_explicit(&c->pass_done[ca->v], p, memory_order_release);
	}
	return NULL;
}

/* L1's third vCPU: a nested entry (sync of all 64 tables) per round. */
static void *conc_sync_fn(void *arg)
{
	struct conc *c = arg;

	for (int r = 1; r <= c->rounds; r++) {
		WAIT_UNTIL(atomic_load_explicit(&c->pass_done[0], memory_order_acquire) >= r &&
			   atomic_load_explicit(&c->pass_done[1], memory_order_acquire) >= r);
		T_CHECK(kvm_x86_nested_shadow_gfns(c->vcpu[2], c->gfns, NGFN,
						   PG_LEVEL_4K) == 0);
		atomic_store_explicit(&c->rounds_done, r, memory_order_release);
	}
	return NULL;
}

static void test_concurrent_unsync(void **state)
{
	struct conc *c = calloc(1, sizeof(*c));
	struct conc_arg args[2];
	gfn_t tracked[NTRACK];
	pthread_t tids[2], sync_tid;
	unsigned long unsyncs, syncs, locked, recheck, pte_write, refused;
	long unsync_now;

	(void)state;
	assert_non_null(c);
	c->rounds = SCALE(1000);
	c->passes = c->rounds + 1;
	mt_vm_create(&c->vm, NULL, GPA, SZ, 0, 0);
	for (int v = 0; v < 3; v++)
		assert_int_equal(ukvm_create_vcpu(c->vm.kvm, v, &c->vcpu[v]), 0);
	for (int i = 0; i < NGFN; i++)
		c->gfns[i] = GFN0 + (gfn_t)i;
	for (int i = 0; i < NTRACK; i++)
		tracked[i] = GFN0 + NGFN + (gfn_t)i;
	assert_int_equal(kvm_x86_nested_shadow_gfns(c->vcpu[2], c->gfns, NGFN,
						    PG_LEVEL_4K), 0);
	assert_int_equal(kvm_x86_nested_shadow_gfns(c->vcpu[2], tracked, NTRACK,
						    PG_LEVEL_2M), 0);
	assert_int_equal(NR_SHADOW(c->vm.kvm), NACC);

	for (int v = 0; v < 2; v++) {
		args[v] = (struct conc_arg){ .c = c, .v = v };
		tids[v] = start_thread(v ? "vcpu1" : "vcpu0", conc_vcpu_fn, &args[v]);
	}
	sync_tid = start_thread("l1-sync", conc_sync_fn, c);
	join_threads(tids, 2);
	join_thread(sync_tid);
	assert_no_thread_failures();

	/* Every last write of both vCPUs is there, through the host mapping. */
	for (int v = 0; v < 2; v++)
		for (int i = 0; i < NACC; i++)
			assert_int_equal(mt_host_read64(&c->vm, conc_gpa(v, i)),
					 tag(v, c->passes, i));

	unsyncs = STAT(c->vm.kvm, unsync_pages);
	syncs = STAT(c->vm.kvm, mmu_syncs);
	unsync_now = STAT(c->vm.kvm, mmu_unsync);
	locked = STAT(c->vm.kvm, mmu_unsync_locked);
	recheck = STAT(c->vm.kvm, mmu_unsync_recheck);
	pte_write = STAT(c->vm.kvm, mmu_pte_write);
	refused = STAT(c->vm.kvm, mmu_unsync_refused);
	print_message("rounds %d, passes %d: unsyncs %lu, syncs %lu, unsync now %ld, "
		      "mmu_unsync_pages_lock taken %lu (re-check found it unsync %lu), "
		      "emulated writes %lu, refused unsyncs %lu\n",
		      c->rounds, c->passes, unsyncs, syncs, unsync_now, locked,
		      recheck, pte_write, refused);

	/* Round 1 found all 64 unsync (pass 1 wrote them all, nothing synced). */
	assert_true(syncs >= NGFN);
	/* Pass 3 wrote them all again after round 1. */
	assert_true(unsyncs >= 2 * NGFN);
	/* Each page alternates unsync / sync; none was zapped. */
	assert_int_equal(unsyncs, syncs + (unsigned long)unsync_now);
	assert_int_equal(STAT(c->vm.kvm, mmu_shadow_zapped), 0);
	/* One page per gfn: each acquisition unsynced it or found it unsync. */
	assert_int_equal(locked, unsyncs + recheck);
	/* Every write to a write-tracked gfn was emulated, exactly once. */
	assert_int_equal(pte_write, 2UL * (unsigned long)c->passes * NTRACK);
	assert_true(refused >= pte_write);

	mt_vm_destroy(&c->vm);
	free(c);
	mt_assert_clean();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shadow_wrprot_then_unsync),
		cmocka_unit_test(test_sync_reprotects),
		cmocka_unit_test(test_shadowed_never_huge),
		cmocka_unit_test(test_refused_unsync),
		cmocka_unit_test(test_memslot_and_teardown),
		cmocka_unit_test(test_unsync_recheck),
		cmocka_unit_test(test_unsync_no_recheck_unsafe),
		cmocka_unit_test(test_concurrent_unsync),
	};

	return cmocka_run_group_tests_name("mmu_unsync", tests,
					   mt_group_setup, mt_group_teardown);
}
