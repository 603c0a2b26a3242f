// SPDX-License-Identifier: MIT
/*
 * The per-vCPU dirty ring (src/kvm/dirty_ring.c) through real vCPUs: every
 * KVM_ENABLE_CAP error, VM unchanged; push / harvest / reset gives exactly the
 * gfns written (two memslots, two address spaces) in ring order; a reset
 * re-protects (runs coalesced up and down) and flushes, so the next write is
 * pushed again; soft-full exits until a reset; ring + bitmap; two vCPUs
 * writing while a collector harvests and resets: 0 missed pages, data intact.
 */
#include <errno.h>
#include <stdlib.h>

#include "guest/guest.h"
#include "mmu_test.h"

#define RING_BYTES	4096		/* 256 entries, soft limit 192 */
#define RING_ENTRIES	(RING_BYTES / (int)sizeof(struct kvm_dirty_gfn))
#define SOFT_LIMIT	(RING_ENTRIES - KVM_DIRTY_RING_RSVD_ENTRIES)
#define GPA0		(1ULL << 30)
#define GPA1		(GPA0 + (16ULL << 20))
#define GPA_SMM		(GPA0 + (32ULL << 20))
#define AS1_SLOT(id)	((1u << 16) | (id))
/* KVM_ENABLE_CAP(KVM_CAP_DIRTY_LOG_<cap>), args[0] = @arg, no flags. */
#define ring_cap(kvm, cap, arg) mt_enable_cap((kvm), KVM_CAP_DIRTY_LOG_##cap, (arg), 0)

struct rvm {
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	unsigned long hva[3];
	uint64_t bytes[3];
	int nr;
};

static void add_slot(struct rvm *vm, uint32_t slot, uint64_t gpa, uint64_t pages)
{
	struct kvm_userspace_memory_region mem = {
		.slot = slot, .flags = KVM_MEM_LOG_DIRTY_PAGES, .guest_phys_addr = gpa,
		.memory_size = pages << 12 };

	vm->hva[vm->nr] = host_mmap(host_current_mm, pages << 12, VM_READ | VM_WRITE);
	assert_false(IS_ERR_HVA(vm->hva[vm->nr]));
	vm->bytes[vm->nr] = pages << 12;
	mem.userspace_addr = vm->hva[vm->nr++];
	assert_int_equal(ukvm_set_user_memory_region(vm->kvm, &mem), 0);
}

static void rvm_destroy(struct rvm *vm)
{
	ukvm_destroy_vm(vm->kvm);
	for (int i = 0; i < vm->nr; i++)
		assert_int_equal(host_munmap(host_current_mm, vm->hva[i], vm->bytes[i]), 0);
}

/* A VM with a ring, two logged slots in address space 0 and one in 1. */
static void rvm_create(struct rvm *vm)
{
	memset(vm, 0, sizeof(*vm));
	assert_int_equal(ukvm_create_vm(NULL, &vm->kvm), 0);
	assert_int_equal(ring_cap(vm->kvm, RING_ACQ_REL, RING_BYTES), 0);
	add_slot(vm, 0, GPA0, 512);
	add_slot(vm, 3, GPA1, 64);
	add_slot(vm, AS1_SLOT(2), GPA_SMM, 64);
	assert_int_equal(ukvm_create_vcpu(vm->kvm, 0, &vm->vcpu), 0);
}

static void write_pages(struct kvm_vcpu *vcpu, const uint64_t *gpa, int n)
{
	struct ukvm_guest_access a[16];
	struct mt_script s = { .ops = a, .n = n };
	struct kvm_run run;

	assert_true(n <= 16);
	for (int i = 0; i < n; i++)
		a[i] = (struct ukvm_guest_access){ .gpa = gpa[i], .len = 8,
			.type = UKVM_ACCESS_WRITE, .value = gpa[i] ^ 0x5a5a };
	assert_int_equal(mt_run_script(vcpu, &s, &run), 0);
	assert_int_equal(run.exit_reason, KVM_EXIT_HYPERCALL);
}

static void test_enable_errors(void **state)
{
	const struct ukvm_vm_config dbit = { .dirty_mode = UKVM_DIRTY_DBIT };
	const int max = KVM_DIRTY_RING_MAX_ENTRIES * (int)sizeof(struct kvm_dirty_gfn);
	uint64_t bitmap[8] = { 0 };
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bitmap };
	struct kvm_dirty_gfn *ring;
	struct kvm_vcpu *vcpu;
	struct rvm vm = { 0 };
	struct kvm *kvm;
	uint32_t n;

	(void)state;
	assert_int_equal(ukvm_check_extension(NULL, KVM_CAP_DIRTY_LOG_RING), max);
	assert_int_equal(ukvm_check_extension(NULL, KVM_CAP_DIRTY_LOG_RING_ACQ_REL), max);
	assert_int_equal(ukvm_check_extension(NULL, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP), 1);

	assert_int_equal(ukvm_create_vm(NULL, &vm.kvm), 0);
	kvm = vm.kvm;
	assert_int_equal(ring_cap(kvm, RING_WITH_BITMAP, 0), -EINVAL);
	assert_int_equal(ring_cap(kvm, RING, 0), -EINVAL);
	assert_int_equal(ring_cap(kvm, RING, 3 * 4096), -EINVAL);
	assert_int_equal(ring_cap(kvm, RING, 2048), -EINVAL);
	assert_int_equal(ring_cap(kvm, RING_ACQ_REL, 1024), -EINVAL);
	assert_int_equal(ring_cap(kvm, RING, 2 * (uint64_t)max), -E2BIG);
	/* Nothing changed: no ring, no bitmap mode, no reset. */
	assert_int_equal(kvm_dirty_ring_size(kvm), 0);
	assert_false(kvm->dirty_ring_with_bitmap);
	assert_int_equal(ukvm_reset_dirty_rings(kvm), -EINVAL);

	assert_int_equal(ring_cap(kvm, RING, max), 0);
	/* Set once: neither flavour again, whatever the size. */
	assert_int_equal(ring_cap(kvm, RING, max), -EINVAL);
	assert_int_equal(ring_cap(kvm, RING_ACQ_REL, RING_BYTES), -EINVAL);
	assert_int_equal(kvm_dirty_ring_size(kvm), max);
	assert_int_equal(mt_enable_cap(kvm, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, 0, 1), -EINVAL);
	add_slot(&vm, 0, GPA0, 64);
	/* Ring + bitmap only while no memslot exists. */
	assert_int_equal(ring_cap(kvm, RING_WITH_BITMAP, 0), -EINVAL);
	assert_false(kvm->dirty_ring_with_bitmap);
	/* No backup bitmap: the bitmap ioctls are gone. */
	assert_int_equal(ukvm_get_dirty_log(kvm, &log), -ENXIO);
	assert_int_equal(ukvm_clear_dirty_log(kvm, &(struct kvm_clear_dirty_log){
		.slot = 0, .num_pages = 64, .dirty_bitmap = bitmap }), -ENXIO);
	assert_int_equal(ukvm_reset_dirty_rings(kvm), 0);

	assert_int_equal(ukvm_create_vcpu(kvm, 0, &vcpu), 0);
	assert_int_equal(ukvm_vcpu_dirty_ring(vcpu, &ring, &n), 0);
	assert_int_equal(n, KVM_DIRTY_RING_MAX_ENTRIES);
	assert_int_equal(ukvm_vcpu_dirty_ring(NULL, &ring, &n), -EINVAL);
	assert_int_equal(ukvm_vcpu_dirty_ring(vcpu, NULL, &n), -EFAULT);
	rvm_destroy(&vm);

	/* After a vCPU exists: refused, and the vCPU has no ring to map. */
	assert_int_equal(ukvm_create_vm(NULL, &kvm), 0);
	assert_int_equal(ukvm_create_vcpu(kvm, 0, &vcpu), 0);
	assert_int_equal(ring_cap(kvm, RING, RING_BYTES), -EINVAL);
	assert_int_equal(kvm_dirty_ring_size(kvm), 0);
	assert_int_equal(ukvm_vcpu_dirty_ring(vcpu, &ring, &n), -ENXIO);
	ukvm_destroy_vm(kvm);

	/* Dirty-bit mode (no PML in ukvm): no ring at all. */
	assert_int_equal(ukvm_create_vm(&dbit, &kvm), 0);
	assert_int_equal(ukvm_check_extension(kvm, KVM_CAP_DIRTY_LOG_RING), 0);
	assert_int_equal(ukvm_check_extension(kvm, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP), 0);
	assert_int_equal(ring_cap(kvm, RING, RING_BYTES), -EINVAL);
	assert_int_equal(ring_cap(kvm, RING_ACQ_REL, RING_BYTES), -EINVAL);
	assert_int_equal(kvm_dirty_ring_size(kvm), 0);
	ukvm_destroy_vm(kvm);

	/* KVM reads args[0] as a u32; and ring + bitmap before any memslot. */
	assert_int_equal(ukvm_create_vm(NULL, &kvm), 0);
	assert_int_equal(ring_cap(kvm, RING, (1ULL << 32) | RING_BYTES), 0);
	assert_int_equal(kvm_dirty_ring_size(kvm), RING_BYTES);
	assert_int_equal(ring_cap(kvm, RING_WITH_BITMAP, 0), 0);
	assert_true(kvm->dirty_ring_with_bitmap);
	ukvm_destroy_vm(kvm);
	assert_nothing_reported();
}

static void test_push_harvest_reset(void **state)
{
	/* Slot 0: a forward run; slot 3: a backward one; page 1 twice. */
	const uint64_t gpa[] = { GPA0, GPA0 + 0x1000, GPA0 + 0x2000, GPA0 + 0x5000,
				 GPA0 + 63 * 0x1000, GPA0 + 0x1000 + 8, GPA1 + 20 * 0x1000,
				 GPA1 + 19 * 0x1000, GPA1 + 5 * 0x1000 };
	const struct kvm_dirty_gfn want[] = {
		{ 0, 0, 0 }, { 0, 0, 1 }, { 0, 0, 2 }, { 0, 0, 5 }, { 0, 0, 63 },
		{ 0, 3, 20 }, { 0, 3, 19 }, { 0, 3, 5 }, { 0, AS1_SLOT(2), 4 } };
	struct kvm_dirty_gfn got[32], *ring;
	unsigned long before;
	uint32_t fetch = 0, n;
	struct rvm vm;
	int idx;

	(void)state;
	rvm_create(&vm);
	write_pages(vm.vcpu, gpa, 9);
	/* What a vCPU in SMM would do: dirty a page of address space 1. */
	assert_int_equal(kvm_vcpu_ioctl_begin(vm.vcpu), 0);
	kvm_vcpu_srcu_read_lock(vm.vcpu);
	mark_page_dirty_in_slot(vm.kvm, id_to_memslot(__kvm_memslots(vm.kvm, 1), 2),
				(GPA_SMM >> 12) + 4);
	kvm_vcpu_srcu_read_unlock(vm.vcpu);
	kvm_vcpu_ioctl_end(vm.vcpu);
	assert_int_equal(atomic_load(&vm.vcpu->dirty_ring.dirty_index), 9);

	assert_int_equal(mt_ring_harvest(vm.vcpu, &fetch, got, 32), 9);
	for (int i = 0; i < 9; i++) {
		assert_int_equal(got[i].slot, want[i].slot);
		assert_int_equal(got[i].offset, want[i].offset);
	}
	before = atomic_load(&vm.kvm->stat.remote_tlb_flush);
	assert_int_equal(ukvm_reset_dirty_rings(vm.kvm), 9);
	assert_int_equal(atomic_load(&vm.kvm->stat.remote_tlb_flush), before + 1);
	assert_int_equal(atomic_load(&vm.vcpu->dirty_ring.reset_index), 9);
	/* Nothing more to reset: no flush either. */
	assert_int_equal(ukvm_reset_dirty_rings(vm.kvm), 0);
	assert_int_equal(atomic_load(&vm.kvm->stat.remote_tlb_flush), before + 1);

	/* Every page of both runs is write-protected again, MMU-writable. */
	for (int i = 0; i < 9; i++) {
		uint64_t spte = mt_spte(vm.vcpu, gpa[i], NULL);

		assert_true(is_shadow_present_pte(spte));
		assert_false(is_writable_pte(spte));
		assert_true(is_mmu_writable_spte(spte));
	}
	/* A page written for the first time: one entry. */
	write_pages(vm.vcpu, (uint64_t[]){ GPA0 + 100 * 0x1000 }, 1);
	assert_int_equal(mt_ring_harvest(vm.vcpu, &fetch, got, 32), 1);

	/* Pages reset: the next writes fault (fast path) and are pushed again. */
	before = atomic_load(&vm.vcpu->stat.pf_fast);
	write_pages(vm.vcpu, (uint64_t[]){ GPA1 + 19 * 0x1000, GPA0 + 0x2000 }, 2);
	assert_int_equal(atomic_load(&vm.vcpu->stat.pf_fast), before + 2);
	assert_int_equal(mt_ring_harvest(vm.vcpu, &fetch, got, 32), 2);
	assert_int_equal(got[0].slot, 3);
	assert_int_equal(got[0].offset, 19);
	assert_int_equal(got[1].slot, 0);
	assert_int_equal(got[1].offset, 2);
	assert_int_equal(mt_host_read64(&(struct mt_vm){ .hva = vm.hva[0], .gpa = GPA0 },
					GPA0 + 0x2000), (GPA0 + 0x2000) ^ 0x5a5a);

	/* An entry not (yet) handed back stops the reset. */
	write_pages(vm.vcpu, (uint64_t[]){ GPA1 + 7 * 0x1000 }, 1);
	assert_int_equal(ukvm_reset_dirty_rings(vm.kvm), 3);
	assert_int_equal(ukvm_reset_dirty_rings(vm.kvm), 0);
	assert_int_equal(mt_ring_harvest(vm.vcpu, &fetch, got, 32), 1);
	assert_int_equal(got[0].slot, 3);

	/* A stale entry (its slot deleted since) is freed, protects nothing. */
	assert_int_equal(ukvm_set_user_memory_region(vm.kvm,
		&(struct kvm_userspace_memory_region){ .slot = 3, .guest_phys_addr = GPA1 }), 0);
	assert_int_equal(ukvm_reset_dirty_rings(vm.kvm), 1);
	assert_int_equal(atomic_load(&vm.vcpu->dirty_ring.reset_index), 13);
	/* A free entry marked RESET by a confused VMM is not consumed. */
	assert_int_equal(ukvm_vcpu_dirty_ring(vm.vcpu, &ring, &n), 0);
	ring[13].flags = KVM_DIRTY_GFN_F_RESET;
	assert_int_equal(ukvm_reset_dirty_rings(vm.kvm), 0);
	ring[13].flags = 0;

	/* No bitmap: a write with no running vCPU has nowhere to go (WARN). */
	fprintf(stderr, "# expected: one warning (dirty page with no running vCPU)\n");
	idx = srcu_read_lock(&vm.kvm->srcu);
	mark_page_dirty_in_slot(vm.kvm, gfn_to_memslot(vm.kvm, GPA0 >> 12), GPA0 >> 12);
	srcu_read_unlock(&vm.kvm->srcu, idx);
	assert_int_equal(ukvm_invariant_failures(), 1);
	ukvm_invariant_reset();
	assert_int_equal(atomic_load(&vm.vcpu->dirty_ring.dirty_index), 13);
	rvm_destroy(&vm);
	assert_nothing_reported();
}

#if UKVM_RACE_POINTS && UKVM_DEBUG_CHECKS
/* Without the reset's flush the vCPU keeps a writable translation. */
static void test_reset_needs_flush(void **state)
{
	struct kvm_dirty_gfn got[4];
	uint32_t fetch = 0;
	struct rvm vm;

	(void)state;
	rvm_create(&vm);
	write_pages(vm.vcpu, (uint64_t[]){ GPA0 }, 1);
	assert_int_equal(mt_ring_harvest(vm.vcpu, &fetch, got, 4), 1);
	ukvm_unsafe_set(UNSAFE_NO_WRPROT_FLUSH, true);
	fprintf(stderr, "# expected: an invariant-9 report (unsafe NO_WRPROT_FLUSH)\n");
	assert_int_equal(ukvm_reset_dirty_rings(vm.kvm), 1);
	ukvm_unsafe_set(UNSAFE_NO_WRPROT_FLUSH, false);
	assert_int_equal(ukvm_invariant_failures(), 1);
	ukvm_invariant_reset();
	assert_false(is_writable_pte(mt_spte(vm.vcpu, GPA0, NULL)));
	/* The stale TLB entry takes the write: no fault, no entry. */
	write_pages(vm.vcpu, (uint64_t[]){ GPA0 + 8 }, 1);
	assert_int_equal(mt_ring_harvest(vm.vcpu, &fetch, got, 4), 0);
	rvm_destroy(&vm);
	assert_nothing_reported();
}
#endif

static void test_soft_full(void **state)
{
	struct ukvm_guest_access a[500];
	struct mt_script s = { .ops = a, .n = 500 };
	struct kvm_dirty_gfn got[RING_ENTRIES];
	struct kvm_run run;
	uint32_t fetch = 0, first = 0;
	struct rvm vm;

	(void)state;
	rvm_create(&vm);
	for (int i = 0; i < 500; i++)
		a[i] = (struct ukvm_guest_access){ .gpa = GPA0 + (uint64_t)i * 0x1000,
			.len = 8, .type = UKVM_ACCESS_WRITE, .value = (uint64_t)i };
	assert_int_equal(ukvm_vcpu_set_guest(vm.vcpu, &mt_script_ops, &s), 0);

	for (int lap = 0; lap < 2; lap++) {
		int next;

		/* Exactly at the soft limit the vCPU stops running the guest. */
		assert_int_equal(ukvm_vcpu_run(vm.vcpu, &run), 0);
		assert_int_equal(run.exit_reason, KVM_EXIT_DIRTY_RING_FULL);
		assert_int_equal(atomic_load(&vm.vcpu->dirty_ring.dirty_index),
				 (uint32_t)(SOFT_LIMIT * (lap + 1)));
		next = s.next;
		/* ... and keeps exiting, running nothing, until a reset. */
		assert_int_equal(ukvm_vcpu_run(vm.vcpu, &run), 0);
		assert_int_equal(run.exit_reason, KVM_EXIT_DIRTY_RING_FULL);
		assert_int_equal(s.next, next);
		/*
		 * The write whose fault filled the ring was still to be
		 * restarted; the reset protected its page again, so it faults
		 * and is pushed once more: each lap starts at the last page.
		 */
		assert_int_equal(mt_ring_harvest(vm.vcpu, &fetch, got, RING_ENTRIES), SOFT_LIMIT);
		for (int i = 0; i < SOFT_LIMIT; i++) {
			assert_int_equal(got[i].slot, 0);
			assert_int_equal(got[i].offset, first + (uint32_t)i);
		}
		first += SOFT_LIMIT - 1;
		/* Harvested but not reset: still full. */
		assert_int_equal(ukvm_vcpu_run(vm.vcpu, &run), 0);
		assert_int_equal(run.exit_reason, KVM_EXIT_DIRTY_RING_FULL);
		assert_int_equal(ukvm_reset_dirty_rings(vm.kvm), SOFT_LIMIT);
	}
	/* Room again: the guest writes its last pages. */
	assert_int_equal(ukvm_vcpu_run(vm.vcpu, &run), 0);
	assert_int_equal(run.exit_reason, KVM_EXIT_HYPERCALL);
	assert_int_equal(s.next, 500);
	assert_int_equal(mt_ring_harvest(vm.vcpu, &fetch, got, RING_ENTRIES), 500 - (int)first);
	assert_int_equal(got[0].offset, first);
	assert_int_equal(atomic_load(&vm.vcpu->stat.dirty_ring_full_exits), 6);
	rvm_destroy(&vm);
	assert_nothing_reported();
}

static void test_with_bitmap(void **state)
{
	uint64_t bitmap[8] = { 0 };
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bitmap };
	struct kvm_dirty_gfn got[4];
	uint32_t fetch = 0;
	struct rvm vm = { 0 };
	int idx;

	(void)state;
	assert_int_equal(ukvm_create_vm(NULL, &vm.kvm), 0);
	assert_int_equal(ring_cap(vm.kvm, RING_ACQ_REL, RING_BYTES), 0);
	assert_int_equal(ring_cap(vm.kvm, RING_WITH_BITMAP, 0), 0);
	add_slot(&vm, 0, GPA0, 512);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vm.vcpu), 0);

	/* The vCPU's write goes to its ring, not to the bitmap. */
	write_pages(vm.vcpu, (uint64_t[]){ GPA0 + 3 * 0x1000 }, 1);
	/* The VMM thread (no running vCPU) dirties page 9: the bitmap. */
	assert_null(kvm_get_running_vcpu());
	idx = srcu_read_lock(&vm.kvm->srcu);
	mark_page_dirty_in_slot(vm.kvm, gfn_to_memslot(vm.kvm, (GPA0 >> 12) + 9), (GPA0 >> 12) + 9);
	srcu_read_unlock(&vm.kvm->srcu, idx);

	assert_int_equal(mt_ring_harvest(vm.vcpu, &fetch, got, 4), 1);
	assert_int_equal(got[0].offset, 3);
	assert_int_equal(ukvm_reset_dirty_rings(vm.kvm), 1);
	assert_int_equal(ukvm_get_dirty_log(vm.kvm, &log), 0);
	assert_memory_equal(bitmap, ((uint64_t[8]){ 1ULL << 9 }), sizeof(bitmap));
	rvm_destroy(&vm);
	assert_nothing_reported();
}

/* ---- two vCPUs, one collector ---- */

#define CONC_PAGES	1024

struct conc_vcpu {
	struct conc *c;
	struct kvm_vcpu *vcpu;
	void *guest;			/* the memstress guest it runs */
	_Atomic unsigned long done;	/* accesses completed */
	_Atomic bool parked;		/* out of KVM_RUN: ring full, or finished */
};

struct conc {
	struct kvm *kvm;
	struct conc_vcpu v[2];
	unsigned long hva;
	struct guest_workload *w;
	_Atomic int vcpus_running;
	_Atomic unsigned long resets_done, full_exits;
	unsigned long harvested, reset_entries, rounds;
};

static int conc_write64(void *arg, uint64_t gpa, uint64_t v)
{
	return host_access(host_current_mm, ((struct conc *)arg)->hva + gpa - GPA0, &v, 8, true);
}

static int conc_read64(void *arg, uint64_t gpa, uint64_t *v)
{
	return host_access(host_current_mm, ((struct conc *)arg)->hva + gpa - GPA0, v, 8, false);
}

/* The memstress guest, counting the accesses it completes. */
static enum ukvm_guest_step conc_next(void *ctx, struct ukvm_guest_access *a)
{
	return guest_memstress_ops.next(((struct conc_vcpu *)ctx)->guest, a);
}

static void conc_complete(void *ctx, const struct ukvm_guest_access *a)
{
	struct conc_vcpu *cv = ctx;

	guest_memstress_ops.complete(cv->guest, a);
	atomic_fetch_add(&cv->done, 1);
}

static const struct ukvm_guest_ops conc_guest_ops = {
	.next = conc_next,
	.complete = conc_complete,
};

static void conc_vcpu_exit(const struct kvm_run *run, void *arg)
{
	struct conc_vcpu *cv = arg;
	struct conc *c = cv->c;

	T_CHECK(run->exit_reason == KVM_EXIT_DIRTY_RING_FULL);
	if (run->exit_reason == KVM_EXIT_DIRTY_RING_FULL) {
		/* Full until the collector's next reset: wait for one. */
		unsigned long seen = atomic_load(&c->resets_done);

		atomic_fetch_add(&c->full_exits, 1);
		atomic_store(&cv->parked, true);
		WAIT_UNTIL(atomic_load(&c->resets_done) != seen);
		atomic_store(&cv->parked, false);
	}
}

static void *conc_vcpu_fn(void *arg)
{
	struct conc_vcpu *cv = arg;
	struct conc *c = cv->c;

	mt_vcpu_loop(cv->vcpu, &conc_guest_ops, cv, conc_vcpu_exit, cv);
	atomic_store(&cv->parked, true);
	atomic_fetch_sub(&c->vcpus_running, 1);
	return NULL;
}

/*
 * The fast page fault pushes a gfn after its cmpxchg made the SPTE writable
 * (as KVM must: pushed before, the entry could be harvested and reset
 * before the SPTE is writable, which then stays unlogged).  Another vCPU
 * can complete a write through that SPTE before the push, so a write done
 * before a round closed may be pushed only after it, by a vCPU still in
 * its fault.  Wait until every vCPU has left the fault it was in at the
 * close -- completed one more access, or left KVM_RUN -- before harvesting.
 */
static void conc_wait_faults_in_flight(struct conc *c)
{
	unsigned long seen[2];

	for (int v = 0; v < 2; v++)
		seen[v] = atomic_load(&c->v[v].done);
	for (int v = 0; v < 2; v++)
		WAIT_UNTIL(atomic_load(&c->v[v].done) != seen[v] ||
			   atomic_load(&c->v[v].parked));
}

/*
 * The VMM's migration loop: close a round, harvest every ring, record the
 * pages, reset, check.  A write that completed before the round closed
 * must be in an entry collected in this round or an earlier one since the
 * write began (src/guest/verify.c); the last round runs after both vCPUs
 * have finished, so it must leave nothing out.
 */
static void *conc_collector_fn(void *arg)
{
	struct conc *c = arg;
	unsigned long bitmap[CONC_PAGES / 64];
	uint32_t fetch[2] = { 0, 0 };
	bool last = false;

	while (!last) {
		struct kvm_dirty_gfn got[64];
		uint32_t round;
		int r, n;

		last = atomic_load(&c->vcpus_running) == 0;
		round = guest_dirty_round_close(c->w);
		conc_wait_faults_in_flight(c);
		memset(bitmap, 0, sizeof(bitmap));
		for (int v = 0; v < 2; v++) {
			while ((n = mt_ring_harvest(c->v[v].vcpu, &fetch[v], got, 64)) > 0) {
				for (int i = 0; i < n; i++) {
					T_CHECK(got[i].slot == 0 && got[i].offset < CONC_PAGES);
					bitmap[(got[i].offset / 64) % ARRAY_SIZE(bitmap)] |=
						1UL << (got[i].offset % 64);
				}
				c->harvested += (unsigned long)n;
			}
		}
		guest_dirty_log_record(c->w, GPA0 >> 12, bitmap, CONC_PAGES, round);
		r = ukvm_reset_dirty_rings(c->kvm);
		T_CHECK(r >= 0);
		c->reset_entries += r > 0 ? (unsigned long)r : 0;
		atomic_fetch_add(&c->resets_done, 1);
		guest_dirty_check(c->w, round);
		c->rounds++;
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	const struct guest_region region = { GPA0, CONC_PAGES };
	const struct guest_config gc = {
		.nr_vcpus = 2, .regions = &region, .nr_regions = 1, .overlap = true,
		.random = true, .write_percent = 60, .seed = 29,
		.passes = SCALE(100), .scratch_every = 16, .pattern_every = 16,
	};
	struct conc c = { .vcpus_running = 2 };
	struct guest_verify_result res;
	struct guest_stats gs;
	struct rvm vm = { 0 };
	pthread_t vt[2], ct;
	uint64_t pushes = 0;

	(void)state;
	assert_int_equal(ukvm_create_vm(NULL, &vm.kvm), 0);
	assert_int_equal(ring_cap(vm.kvm, RING_ACQ_REL, RING_BYTES), 0);
	add_slot(&vm, 0, GPA0, CONC_PAGES);
	c.kvm = vm.kvm;
	c.hva = vm.hva[0];
	c.w = guest_workload_create(&gc);
	assert_non_null(c.w);
	assert_int_equal(guest_prefill(c.w, conc_write64, &c), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ukvm_create_vcpu(vm.kvm, (unsigned long)i, &c.v[i].vcpu), 0);
		c.v[i].c = &c;
		c.v[i].guest = guest_vcpu_ctx(c.w, i);
	}
	/* Logging is on from the slot's creation: every write is tracked. */
	guest_dirty_tracking_begin(c.w);

	ct = start_thread("collector", conc_collector_fn, &c);
	for (int i = 0; i < 2; i++)
		vt[i] = start_thread("vcpu", conc_vcpu_fn, &c.v[i]);
	for (int i = 0; i < 2; i++)
		join_thread(vt[i]);
	join_thread(ct);
	guest_dirty_tracking_end(c.w);

	for (int i = 0; i < 2; i++) {
		struct kvm_dirty_ring *ring = &c.v[i].vcpu->dirty_ring;

		/* Everything pushed was harvested and reset. */
		assert_int_equal(atomic_load(&ring->dirty_index),
				 atomic_load(&ring->reset_index));
		pushes += atomic_load(&ring->dirty_index);
	}
	mt_assert_guest_verified(c.w, conc_read64, &c, &res, &gs);
	assert_int_equal(c.harvested, pushes);
	assert_int_equal(c.reset_entries, pushes);
	assert_int_equal(atomic_load(&vm.kvm->stat.dirty_ring_pushes), pushes);
	assert_true(gs.writes > 0 && pushes > 0);
	fprintf(stderr, "# 2 vCPUs, %d-entry rings: %llu writes, %llu pushes, %lu entries "
		"harvested, %lu reset in %lu rounds, %lu soft-full exits, 0 missed\n",
		RING_ENTRIES, (unsigned long long)gs.writes, (unsigned long long)pushes,
		c.harvested, c.reset_entries, c.rounds, atomic_load(&c.full_exits));
	rvm_destroy(&vm);
	guest_workload_destroy(c.w);
	assert_nothing_reported();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enable_errors),
		cmocka_unit_test(test_push_harvest_reset),
#if UKVM_RACE_POINTS && UKVM_DEBUG_CHECKS
		cmocka_unit_test(test_reset_needs_flush),
#endif
		cmocka_unit_test(test_soft_full),
		cmocka_unit_test(test_with_bitmap),
		cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, mt_group_setup, mt_group_teardown);
}
