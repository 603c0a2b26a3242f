// SPDX-License-Identifier: MIT
/*
 * KVM_RUN's entry against requests that wait for guest exits (TLB flushes).
 *
 * A vCPU stores IN_GUEST_MODE, then looks one last time for kicks and
 * requests and may back out of the entry.  A WAIT requester that found it
 * IN_GUEST_MODE (and flipped it to EXITING) sleeps on the vCPU's exit epoch;
 * backing out must wake it like a real exit, because the vCPU may then
 * return to the VMM (KVM_EXIT_INTR) and not enter again for a long time.
 * Found by `ukvm run`: a host thread in an MMU-notifier callback slept
 * holding mmu_lock for write while the vCPU, back in userspace, waited for
 * slots_lock held by a memslot update that waited for mmu_lock.
 *
 * And the vCPU ioctls made between two KVM_RUNs (what `ukvm run
 * --vcpu-ioctls` does on its vCPU threads).
 */
#include <errno.h>
#include <unistd.h>

#include "mmu_test.h"

#define GPA	(1ULL << 32)
#define SIZE	(2UL << 20)

static struct {
	struct kvm_vcpu *vcpu;
	struct mt_script script;
	struct ukvm_guest_access op;
	_Atomic bool armed, held, release, vcpu_out, run_again, flushed;
} er;

/* The vCPU, the first time it reaches the point: wait there. */
static void hold_entry(enum ukvm_race_point rp, void *arg)
{
	(void)arg;
	if (rp != RP_VCPU_ENTERING || !atomic_exchange(&er.armed, false))
		return;
	atomic_store(&er.held, true);
	while (!atomic_load(&er.release))
		usleep(100);
}

static void *vcpu_fn(void *arg)
{
	struct kvm_run run;
	int r;

	(void)arg;
	/* Kicked before it enters: the entry backs out with KVM_EXIT_INTR. */
	ukvm_vcpu_kick_exit(er.vcpu);
	r = ukvm_vcpu_run(er.vcpu, &run);
	T_CHECK(r == 0 && run.exit_reason == KVM_EXIT_INTR);
	atomic_store(&er.vcpu_out, true);
	/* The VMM does not run it again until told (a parked vCPU). */
	while (!atomic_load(&er.run_again))
		usleep(100);
	r = ukvm_vcpu_run(er.vcpu, &run);
	T_CHECK(r == 0 && run.exit_reason == KVM_EXIT_HYPERCALL);
	return NULL;
}

static void *flusher_fn(void *arg)
{
	kvm_flush_remote_tlbs(arg);
	atomic_store(&er.flushed, true);
	return NULL;
}

static void test_backed_out_entry_wakes_flusher(void **state)
{
	const struct ukvm_vm_config cfg = { 0 };
	struct mt_vm vm;
	pthread_t vt, ft;
	bool flushed;
	int ms;

	(void)state;
	mt_vm_create(&vm, &cfg, GPA, SIZE, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &er.vcpu), 0);
	er.op = (struct ukvm_guest_access){ .gpa = GPA, .len = 8,
					    .type = UKVM_ACCESS_WRITE, .value = 1 };
	er.script = (struct mt_script){ .ops = &er.op, .n = 1 };
	assert_int_equal(ukvm_vcpu_set_guest(er.vcpu, &mt_script_ops, &er.script), 0);

	atomic_store(&er.armed, true);
	ukvm_race_arm(hold_entry, NULL);
	vt = start_thread("vcpu", vcpu_fn, NULL);
	while (!atomic_load(&er.held))
		usleep(100);
	/* IN_GUEST_MODE now: the flush flips it to EXITING and waits. */
	ft = start_thread("flusher", flusher_fn, vm.kvm);
	while (!atomic_load(&er.vcpu->exit_waiters))
		usleep(100);
	/* Give the flusher time to fall asleep (the bug needs it; the fix does not). */
	usleep(20000);
	atomic_store(&er.release, true);
	while (!atomic_load(&er.vcpu_out))
		usleep(100);
	ukvm_race_disarm();

	/* The vCPU is back in "userspace" and stays there: the flush must end. */
	for (ms = 0; ms < 10000 && !atomic_load(&er.flushed); ms++)
		usleep(1000);
	flushed = atomic_load(&er.flushed);
	if (!flushed)
		fprintf(stderr, "# the TLB flush still waits for a vCPU that left KVM_RUN\n");

	/* Running it again ends the wait in any case: clean up, then judge. */
	atomic_store(&er.run_again, true);
	join_thread(vt);
	join_thread(ft);
	assert_true(flushed);
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

/* Is the APIC-access internal memslot there? */
static bool apic_access_slot_present(struct kvm *kvm)
{
	bool present;

	mutex_lock(&kvm->slots_lock);
	present = id_to_memslot(__kvm_memslots(kvm, 0), KVM_USER_MEM_SLOTS) != NULL;
	mutex_unlock(&kvm->slots_lock);
	return present;
}

/*
 * The vCPU ioctls that reach the rarer locks, made between two KVM_RUNs
 * the way a VMM's vCPU thread makes them: the APIC base (a static key
 * flipped inside kvm->srcu), Hyper-V (hv_lock), Xen (xen_lock), the TSC
 * (tsc_write_lock) and the APICv inhibit that deletes and re-creates the
 * APIC-access memslot from vCPU context (vcpu->mutex => slots_lock).
 */
static void test_vcpu_ioctls_between_runs(void **state)
{
	const struct ukvm_vm_config cfg = { 0 };
	const uint64_t base = 0xfee00000ULL | (1ULL << 8);
	struct kvm_vcpu *vcpu;
	struct mt_vm vm;
	uint64_t v = 7;

	(void)state;
	mt_vm_create(&vm, &cfg, GPA, SIZE, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_WRITE, &v), 0);
	assert_false(apic_access_slot_present(vm.kvm));

	for (int i = 0; i < 4; i++) {
		bool disable = i % 2 == 0;

		assert_int_equal(kvm_x86_vcpu_set_apic_base(vcpu, base |
				 (disable ? 0 : 1ULL << 11)), 0);
		assert_int_equal(vcpu_x86(vcpu)->apic_base & (1ULL << 11),
				 disable ? 0 : 1ULL << 11);
		assert_int_equal(kvm_x86_hv_set_guest_os_id(vcpu, 0x8100ULL + (uint64_t)i), 0);
		assert_int_equal(kvm_x86(vm.kvm)->hyperv.hv_guest_os_id, 0x8100ULL + (uint64_t)i);
		assert_int_equal(kvm_x86_xen_set_shared_info(vcpu, (GPA >> 12) + (uint64_t)i), 0);
		assert_int_equal(kvm_x86(vm.kvm)->xen.shared_info_gfn, (GPA >> 12) + (uint64_t)i);
		assert_int_equal(kvm_x86_vcpu_set_tsc(vcpu, 1000000ULL * (uint64_t)i), 0);

		/* Not inhibited: the slot exists; inhibited: it is gone. */
		assert_int_equal(kvm_x86_vcpu_set_apicv_inhibit(vcpu, !disable), 0);
		assert_int_equal(apic_access_slot_present(vm.kvm), disable);
		/* The same state again changes nothing. */
		assert_int_equal(kvm_x86_vcpu_set_apicv_inhibit(vcpu, !disable), 0);
		assert_int_equal(apic_access_slot_present(vm.kvm), disable);

		/* And the guest still runs, its data intact. */
		v = 0;
		assert_int_equal(mt_access(vcpu, GPA, UKVM_ACCESS_READ, &v), 0);
		assert_int_equal(v, 7);
	}
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

/*
 * A vCPU runs guest code while another thread invalidates every root again
 * and again (ukvm_param_write_all_vms(): kvm_mmu_zap_all_fast()).  The
 * CPU's EPT walk and the fast page fault read the root's role locklessly
 * while the invalidation sets role.invalid: found by `ukvm run
 * --param-writer` under ThreadSanitizer (a plain bitfield read against an
 * atomic store).  Here TSan sees the race if it comes back; every build
 * checks that the guest reads back what it wrote.
 */
#define ZAP_WORDS	64
#define ZAP_ROUNDS	SCALE(3000)

static struct {
	struct kvm_vcpu *vcpu;
	_Atomic bool done;
	_Atomic unsigned long mismatches, accesses;
} zr;

static void *zap_vcpu_fn(void *arg)
{
	struct ukvm_guest_access ops[2 * ZAP_WORDS];
	struct mt_script s;
	struct kvm_run run;
	uint64_t round = 0;

	(void)arg;
	while (!atomic_load(&zr.done)) {
		round++;
		for (int i = 0; i < ZAP_WORDS; i++) {
			uint64_t gpa = GPA + (uint64_t)i * 4096 * 7 % SIZE + (uint64_t)(i % 8) * 8;

			ops[i] = (struct ukvm_guest_access){ .gpa = gpa, .len = 8,
				.type = UKVM_ACCESS_WRITE, .value = round << 8 | (uint64_t)i };
			ops[ZAP_WORDS + i] = (struct ukvm_guest_access){ .gpa = gpa, .len = 8,
				.type = UKVM_ACCESS_READ };
		}
		s = (struct mt_script){ .ops = ops, .n = 2 * ZAP_WORDS };
		T_CHECK(mt_run_script(zr.vcpu, &s, &run) == 0);
		for (int i = 0; i < ZAP_WORDS; i++)
			if (ops[ZAP_WORDS + i].value != (round << 8 | (uint64_t)i))
				atomic_fetch_add(&zr.mismatches, 1);
		atomic_fetch_add(&zr.accesses, 2 * ZAP_WORDS);
	}
	return NULL;
}

static void test_run_against_zap_all_fast(void **state)
{
	const struct ukvm_vm_config cfg = { 0 };
	struct mt_vm vm;
	pthread_t vt;

	(void)state;
	mt_vm_create(&vm, &cfg, GPA, SIZE, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &zr.vcpu), 0);
	vt = start_thread("vcpu", zap_vcpu_fn, NULL);
	for (int i = 0; i < ZAP_ROUNDS; i++) {
		assert_true(ukvm_param_write_all_vms() >= 1);
		while (atomic_load(&zr.accesses) < (unsigned long)(i + 1) * 2 * ZAP_WORDS)
			usleep(50);
	}
	atomic_store(&zr.done, true);
	join_thread(vt);
	assert_int_equal(atomic_load(&zr.mismatches), 0);
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backed_out_entry_wakes_flusher),
		cmocka_unit_test(test_vcpu_ioctls_between_runs),
		cmocka_unit_test(test_run_against_zap_all_fast),
	};

	return cmocka_run_group_tests_name("mmu_run", tests,
					   mt_group_setup, mt_group_teardown);
}
