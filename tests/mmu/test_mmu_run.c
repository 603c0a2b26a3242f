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
	mt_assert_clean();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backed_out_entry_wakes_flusher),
	};

	return cmocka_run_group_tests_name("mmu_run", tests,
					   mt_group_setup, mt_group_teardown);
}
