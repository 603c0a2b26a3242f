// SPDX-License-Identifier: MIT
/*
 * kvm->arch.mmu_unsync_pages_lock under concurrency (src/x86/mmu/shadow.c):
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

#include "unsync_test.h"

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
	assert_nothing_reported();
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
	assert_nothing_reported();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unsync_recheck),
		cmocka_unit_test(test_unsync_no_recheck_unsafe),
		cmocka_unit_test(test_concurrent_unsync),
	};

	return cmocka_run_group_tests_name("mmu_unsync_race", tests,
					   mt_group_setup, mt_group_teardown);
}
