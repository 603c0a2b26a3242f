// SPDX-License-Identifier: MIT
/*
 * VT-d posted interrupts and wakeup_vcpus_on_cpu_lock (src/x86/mmu/
 * posted_intr.c): a halted vCPU sits on the wakeup list of its CPU and is
 * woken by the wakeup handler; a running vCPU gets the interrupt at its next
 * entry; ON coalesces notifications; many halts against a concurrent
 * poster never lose a wake-up (a lost one hangs the test); and the memstress
 * guest with halt_every halts every N accesses, is woken by posted
 * interrupts through the wakeup handler and by injected ones, and tells its
 * VMM it is halted (what `ukvm run --halt-every` relies on).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest/guest.h"
#include "mmu_test.h"

#define GSI_DEV		10
#define GSI_DEV2	11

/* A guest that reads its page, then halts, @halts times; then exits. */
struct halter {
	struct kvm_vcpu *vcpu;
	uint64_t gpa;
	int halts, done_halts;
	bool halt_next;
	_Atomic int interrupts;
	_Atomic bool spin;		/* read forever until an interrupt */
	int r, exit_reason;
	_Atomic bool returned;		/* ukvm_vcpu_run() returned */
	_Atomic pid_t tid;		/* the vCPU thread */
};

/*
 * The thread @tid is asleep (state S in /proc).  A vCPU that has set
 * vcpu->blocked is not asleep yet: it still checks its wake-up conditions,
 * and if an interrupt is posted at that moment it sees the ON bit itself
 * and the wakeup handler finds nothing to wake.  Once asleep in its halt,
 * only a wake-up ends it: that is the state to wait for before asserting
 * which path ended the halt.
 */
static bool thread_asleep(pid_t tid)
{
	char path[64], buf[512], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'S';
}

/* Until the vCPU run by thread @tid sleeps in a halt. */
static bool halt_asleep(struct kvm_vcpu *vcpu, _Atomic pid_t *tid)
{
	pid_t t = atomic_load(tid);

	return t && atomic_load(&vcpu->blocked) && thread_asleep(t);
}

static enum ukvm_guest_step halter_next(void *ctx, struct ukvm_guest_access *a)
{
	struct halter *h = ctx;

	if (atomic_load(&h->spin)) {
		if (atomic_load(&h->interrupts) > 0)
			return UKVM_GUEST_EXIT;
	} else if (h->halt_next) {
		h->halt_next = false;
		h->done_halts++;
		return UKVM_GUEST_HALT;
	} else if (h->done_halts >= h->halts) {
		return UKVM_GUEST_EXIT;
	}
	*a = (struct ukvm_guest_access){ .gpa = h->gpa, .len = 8,
					 .type = UKVM_ACCESS_READ };
	return UKVM_GUEST_ACCESS;
}

static void halter_complete(void *ctx, const struct ukvm_guest_access *a)
{
	struct halter *h = ctx;

	(void)a;
	if (!atomic_load(&h->spin))
		h->halt_next = true;
}

static void halter_interrupt(void *ctx)
{
	struct halter *h = ctx;

	atomic_fetch_add(&h->interrupts, 1);
}

static const struct ukvm_guest_ops halter_ops = {
	.next = halter_next,
	.complete = halter_complete,
	.interrupt = halter_interrupt,
};

static void *halter_fn(void *arg)
{
	struct halter *h = arg;
	struct kvm_run run;

	atomic_store(&h->tid, gettid());
	h->r = ukvm_vcpu_run(h->vcpu, &run);
	h->exit_reason = (int)run.exit_reason;
	atomic_store(&h->returned, true);
	return NULL;
}

/* vCPU @idx of @kvm runs the halter @h. */
static void halter_create(struct kvm *kvm, int idx, struct halter *h)
{
	assert_int_equal(ukvm_create_vcpu(kvm, idx, &h->vcpu), 0);
	assert_int_equal(ukvm_vcpu_set_guest(h->vcpu, &halter_ops, h), 0);
}

/* A VM over 1 MiB of guest memory whose vCPU 0 runs @h; its x86 part. */
static struct kvm_arch *halter_vm_create(struct mt_vm *vm, struct halter *h)
{
	mt_vm_create(vm, NULL, 0, 1 << 20, 0, 0);
	halter_create(vm->kvm, 0, h);
	return kvm_x86(vm->kvm);
}

static void route_posted(struct kvm *kvm, int nvcpus)
{
	struct ukvm_irq_route rt[4];

	for (int i = 0; i < nvcpus; i++)
		rt[i] = (struct ukvm_irq_route){ .gsi = GSI_DEV + (uint32_t)i,
			.vcpu_idx = (uint32_t)i, .vector = (uint8_t)(0x40 + i),
			.posted = true };
	assert_int_equal(ukvm_set_irq_routing(kvm, rt, (unsigned int)nvcpus), 0);
}

static void test_halted_vcpu_woken_through_wakeup_list(void **state)
{
	struct mt_vm vm;
	struct halter h = { .gpa = 0x1000, .halts = 1 };
	struct kvm_vcpu_arch *va;
	struct kvm_arch *ka;
	pthread_t t;

	(void)state;
	ka = halter_vm_create(&vm, &h);
	route_posted(vm.kvm, 1);
	va = vcpu_x86(h.vcpu);

	t = start_thread("vcpu0", halter_fn, &h);
	WAIT_UNTIL(halt_asleep(h.vcpu, &h.tid));
	/* Blocked: on the list of the CPU it ran on, notifications rerouted. */
	assert_int_equal(va->pi_wakeup_cpu, atomic_load(&h.vcpu->cpu));
	assert_int_equal(atomic_load(&va->pi_desc.nv), POSTED_INTR_WAKEUP_VECTOR);
	assert_int_equal(atomic_load(&va->pi_desc.ndst), va->pi_wakeup_cpu);
	assert_false(kvm_x86_pi_lists_empty());
	/* The handler of that CPU does nothing while ON is clear. */
	assert_int_equal(pi_wakeup_handler((unsigned int)va->pi_wakeup_cpu), 0);
	assert_true(atomic_load(&h.vcpu->blocked));

	assert_int_equal(ukvm_set_irq(vm.kvm, GSI_DEV), 1);
	join_thread(t);
	assert_int_equal(h.r, 0);
	assert_int_equal(h.exit_reason, KVM_EXIT_HYPERCALL);
	assert_int_equal(atomic_load(&ka->stat.pi_wakeups), 1);
	assert_int_equal(atomic_load(&ka->stat.pi_notifications), 1);
	assert_int_equal(atomic_load(&va->pi_vectors_delivered), 1);
	assert_int_equal(atomic_load(&h.interrupts), 1);
	assert_int_equal(va->pi_wakeup_cpu, -1);
	assert_true(kvm_x86_pi_lists_empty());
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

static void test_running_vcpu_gets_posted_interrupt(void **state)
{
	struct mt_vm vm;
	struct halter h = { .gpa = 0x1000, .spin = true };
	struct kvm_arch *ka;
	pthread_t t;

	(void)state;
	ka = halter_vm_create(&vm, &h);
	route_posted(vm.kvm, 1);

	t = start_thread("vcpu0", halter_fn, &h);
	WAIT_UNTIL(atomic_load(&h.vcpu->stat.exits) > 0 &&
		   atomic_load(&h.vcpu->mode) == IN_GUEST_MODE);
	assert_int_equal(ukvm_set_irq(vm.kvm, GSI_DEV), 1);
	/* The guest exits only once it has seen the interrupt. */
	join_thread(t);
	assert_int_equal(h.exit_reason, KVM_EXIT_HYPERCALL);
	assert_int_equal(atomic_load(&h.interrupts), 1);
	assert_int_equal(atomic_load(&ka->stat.pi_wakeups), 0);
	assert_true(kvm_x86_pi_lists_empty());
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

/* Posted while the vCPU is not running: one notification, both vectors. */
static void test_on_coalesces_notifications(void **state)
{
	struct ukvm_irq_route rt[2] = {
		{ .gsi = GSI_DEV, .vcpu_idx = 0, .vector = 0x40, .posted = true },
		{ .gsi = GSI_DEV2, .vcpu_idx = 0, .vector = 0x41, .posted = true },
	};
	struct mt_vm vm;
	struct halter h = { .gpa = 0x1000, .spin = true };
	struct kvm_arch *ka;

	(void)state;
	ka = halter_vm_create(&vm, &h);
	assert_int_equal(ukvm_set_irq_routing(vm.kvm, rt, 2), 0);

	assert_int_equal(ukvm_set_irq(vm.kvm, GSI_DEV), 1);
	assert_int_equal(ukvm_set_irq(vm.kvm, GSI_DEV2), 1);
	assert_int_equal(ukvm_set_irq(vm.kvm, GSI_DEV), 1);	/* same vector */
	assert_int_equal(atomic_load(&ka->stat.pi_posted), 3);
	assert_int_equal(atomic_load(&ka->stat.pi_notifications), 1);
	assert_true(vmx_pi_has_pending(h.vcpu));
	halter_fn(&h);
	assert_int_equal(h.exit_reason, KVM_EXIT_HYPERCALL);
	assert_int_equal(atomic_load(&vcpu_x86(h.vcpu)->pi_vectors_delivered), 2);
	assert_int_equal(atomic_load(&h.interrupts), 1);
	assert_false(vmx_pi_has_pending(h.vcpu));
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

/* Bad routes are refused and leave the table as it was. */
static void test_bad_routes(void **state)
{
	struct ukvm_irq_route bad = { .gsi = 1, .vcpu_idx = 1u << 20, .posted = true };
	struct mt_vm vm;
	struct kvm_vcpu *vcpu;

	(void)state;
	mt_vm_create(&vm, NULL, 0, 1 << 20, 0, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &vcpu), 0);
	route_posted(vm.kvm, 1);
	assert_int_equal(ukvm_set_irq_routing(vm.kvm, &bad, 1), -EINVAL);
	assert_int_equal(ukvm_set_irq_routing(vm.kvm, NULL, 1), -EFAULT);
	assert_int_equal(ukvm_set_irq_routing(vm.kvm, &bad, KVM_MAX_IRQ_ROUTES + 1), -EINVAL);
	/* The old route still works; an unrouted GSI reaches nobody. */
	assert_int_equal(ukvm_set_irq(vm.kvm, GSI_DEV), 1);
	assert_int_equal(ukvm_set_irq(vm.kvm, 1), -ENOENT);
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

/*
 * Two vCPUs halt over and over; a poster keeps posting to both.  Every halt
 * must end: a lost wake-up leaves a vCPU asleep and the test times out.
 */
struct poster {
	struct kvm *kvm;
	struct halter *h;
	int n;
	_Atomic bool stop;
};

static void *poster_fn(void *arg)
{
	struct poster *p = arg;
	unsigned int i = 0;

	while (!atomic_load(&p->stop)) {
		T_CHECK(ukvm_set_irq(p->kvm, GSI_DEV + (i++ % (unsigned int)p->n)) == 1);
		sched_yield();
	}
	return NULL;
}

static void test_no_lost_wakeup(void **state)
{
	struct mt_vm vm;
	struct halter h[2];
	struct poster p = { .h = h, .n = 2 };
	pthread_t t[2], pt;
	unsigned long wakeups;

	(void)state;
	mt_vm_create(&vm, NULL, 0, 1 << 20, 0, 0);
	p.kvm = vm.kvm;
	for (int i = 0; i < 2; i++) {
		h[i] = (struct halter){ .gpa = 0x1000 * (uint64_t)(i + 1),
					.halts = SCALE(20000) };
		halter_create(vm.kvm, i, &h[i]);
	}
	route_posted(vm.kvm, 2);
	pt = start_thread("iommu", poster_fn, &p);
	for (int i = 0; i < 2; i++)
		t[i] = start_thread("vcpu", halter_fn, &h[i]);
	for (int i = 0; i < 2; i++) {
		join_thread(t[i]);
		assert_int_equal(h[i].r, 0);
		assert_int_equal(h[i].exit_reason, KVM_EXIT_HYPERCALL);
		assert_int_equal(h[i].done_halts, SCALE(20000));
		assert_true(atomic_load(&h[i].interrupts) > 0);
	}
	atomic_store(&p.stop, true);
	join_thread(pt);
	wakeups = atomic_load(&kvm_x86(vm.kvm)->stat.pi_wakeups);
	print_message("# %d halts per vCPU, %lu woken by the wakeup handler, "
		      "%lu posts, %lu notifications\n", SCALE(20000), wakeups,
		      atomic_load(&kvm_x86(vm.kvm)->stat.pi_posted),
		      atomic_load(&kvm_x86(vm.kvm)->stat.pi_notifications));
	assert_true(kvm_x86_pi_lists_empty());
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

#if UKVM_RACE_POINTS
/*
 * Halts against their wake-ups, interleaved with race points: a vCPU held
 * between leaving guest mode for its HLT and marking itself blocked, and a
 * waker held after deciding to end a halt.
 */
static struct {
	_Atomic bool hold_halt, halt_held, halt_release;
	_Atomic bool hold_wake, wake_held, wake_release;
} hp;

static void halt_hook(enum ukvm_race_point rp, void *arg)
{
	(void)arg;
	if (rp == RP_VCPU_HALTING && atomic_exchange(&hp.hold_halt, false)) {
		atomic_store(&hp.halt_held, true);
		while (!atomic_load(&hp.halt_release))
			usleep(100);
	} else if (rp == RP_VCPU_WAKING && atomic_exchange(&hp.hold_wake, false)) {
		atomic_store(&hp.wake_held, true);
		while (!atomic_load(&hp.wake_release))
			usleep(100);
	}
}

/*
 * ukvm_vcpu_kick_exit() on a vCPU that has left guest mode for a HLT but
 * is not blocked yet: the halt must end (KVM_EXIT_INTR), as a pending
 * signal ends KVM's.  It slept until the next interrupt: a VMM stopping
 * its halted vCPUs waited for one that might never come.
 */
static void test_kick_exit_ends_a_halt_being_entered(void **state)
{
	struct mt_vm vm;
	struct halter h = { .gpa = 0x1000, .halts = 1 };
	bool returned;
	pthread_t t;

	(void)state;
	halter_vm_create(&vm, &h);
	memset(&hp, 0, sizeof(hp));
	atomic_store(&hp.hold_halt, true);
	ukvm_race_arm(halt_hook, NULL);
	t = start_thread("vcpu0", halter_fn, &h);
	WAIT_UNTIL(atomic_load(&hp.halt_held));
	ukvm_vcpu_kick_exit(h.vcpu);
	atomic_store(&hp.halt_release, true);
	/* Nothing else will wake it: a lost kick shows as a vCPU that never returns. */
	for (int ms = 0; ms < 10000 && !atomic_load(&h.returned); ms++)
		usleep(1000);
	returned = atomic_load(&h.returned);
	ukvm_race_disarm();
	if (!returned) {
		fprintf(stderr, "# the kick was lost: the vCPU sleeps in its halt\n");
		/* An event ends the halt in any case: clean up, then judge. */
		kvm_make_request(KVM_REQ_EVENT, h.vcpu);
		kvm_vcpu_kick(h.vcpu);
	}
	join_thread(t);
	assert_true(returned);
	assert_int_equal(h.r, 0);
	assert_int_equal(h.exit_reason, KVM_EXIT_INTR);
	assert_true(kvm_x86_pi_lists_empty());
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}

static void *kicker_fn(void *arg)
{
	kvm_vcpu_kick(arg);
	return NULL;
}

/*
 * A waker that found the vCPU halted, but came second: a posted interrupt
 * ended the halt first.  Its wake-up must not outlive that halt and end
 * the next one at once: it left a "ready" token behind, so the guest's
 * next HLT returned without any event (and the halt counted two wake-ups).
 */
static void test_wakeup_ends_only_the_halt_it_found(void **state)
{
	struct mt_vm vm;
	struct halter h = { .gpa = 0x1000, .halts = 2 };
	struct kvm_arch *ka;
	pthread_t t, w;

	(void)state;
	ka = halter_vm_create(&vm, &h);
	route_posted(vm.kvm, 1);
	memset(&hp, 0, sizeof(hp));
	ukvm_race_arm(halt_hook, NULL);
	t = start_thread("vcpu0", halter_fn, &h);
	WAIT_UNTIL(halt_asleep(h.vcpu, &h.tid));
	/* Halt 1.  The next halt will wait at the point; so does the kicker. */
	atomic_store(&hp.hold_halt, true);
	atomic_store(&hp.hold_wake, true);
	w = start_thread("kicker", kicker_fn, h.vcpu);
	WAIT_UNTIL(atomic_load(&hp.wake_held));
	/* A posted interrupt ends halt 1 first, through the wakeup handler. */
	assert_int_equal(ukvm_set_irq(vm.kvm, GSI_DEV), 1);
	assert_int_equal(atomic_load(&ka->stat.pi_wakeups), 1);
	WAIT_UNTIL(atomic_load(&hp.halt_held));
	/* Between the halts: the kicker finishes and finds nothing to end. */
	atomic_store(&hp.wake_release, true);
	join_thread(w);
	assert_int_equal(atomic_load(&h.vcpu->stat.halt_wakeup), 1);
	atomic_store(&hp.halt_release, true);
	ukvm_race_disarm();
	/* Halt 2 lasts until the second interrupt. */
	WAIT_UNTIL(halt_asleep(h.vcpu, &h.tid) || atomic_load(&h.returned));
	assert_false(atomic_load(&h.returned));
	assert_int_equal(ukvm_set_irq(vm.kvm, GSI_DEV), 1);
	join_thread(t);
	assert_int_equal(h.exit_reason, KVM_EXIT_HYPERCALL);
	assert_int_equal(atomic_load(&h.interrupts), 2);
	assert_int_equal(atomic_load(&h.vcpu->stat.halt_wakeup), 2);
	assert_int_equal(atomic_load(&ka->stat.pi_wakeups), 2);
	mt_vm_destroy(&vm);
	assert_nothing_reported();
}
#endif

/*
 * The memstress guest with halt_every: N accesses, a halt, N accesses...
 * Each halt is ended by an interrupt, posted (the wakeup handler, walking
 * its CPU's wakeup list, wakes the vCPU) or injected (a request and a
 * kick); the guest reports each halt and its steps.  No timing: every wait
 * is for a state the vCPU reaches by itself.
 */
#define HALT_EVERY	100
#define HALT_ROUNDS	SCALE(40)

struct memstress_vcpu {
	struct kvm_vcpu *vcpu;
	void *guest;
	int r, exit_reason;
	_Atomic pid_t tid;
};

static void *memstress_fn(void *arg)
{
	struct memstress_vcpu *m = arg;
	struct kvm_run run;

	atomic_store(&m->tid, gettid());
	m->r = ukvm_vcpu_run(m->vcpu, &run);
	m->exit_reason = (int)run.exit_reason;
	return NULL;
}

static void test_memstress_halts(void **state)
{
	const struct guest_region region = { 0, 256 };
	const struct guest_config gc = {
		.nr_vcpus = 1, .regions = &region, .nr_regions = 1, .random = true,
		.write_percent = 50, .seed = 7, .halt_every = HALT_EVERY,
	};
	struct ukvm_irq_route rt[2] = {
		{ .gsi = GSI_DEV, .vcpu_idx = 0, .vector = 0x40, .posted = true },
		{ .gsi = GSI_DEV2, .vcpu_idx = 0, .vector = 0x41, .posted = false },
	};
	struct memstress_vcpu m = { 0 };
	struct guest_workload *w;
	struct guest_stats gs;
	struct kvm_arch *ka;
	struct mt_vm vm;
	unsigned long posted = 0;
	pthread_t t;

	(void)state;
	mt_vm_create(&vm, NULL, 0, 1 << 20, 0, 0);
	ka = kvm_x86(vm.kvm);
	w = guest_workload_create(&gc);
	assert_non_null(w);
	m.guest = guest_vcpu_ctx(w, 0);
	assert_int_equal(ukvm_create_vcpu(vm.kvm, 0, &m.vcpu), 0);
	assert_int_equal(ukvm_vcpu_set_guest(m.vcpu, &guest_memstress_ops, m.guest), 0);
	assert_int_equal(ukvm_set_irq_routing(vm.kvm, rt, 2), 0);
	assert_false(guest_vcpu_halted(w, 0));

	t = start_thread("vcpu0", memstress_fn, &m);
	for (uint64_t k = 1; k <= HALT_ROUNDS; k++) {
		bool post = k % 2;

		/* The k-th halt: the guest says so, and the vCPU sleeps. */
		guest_get_stats(w, &gs);
		while (gs.halts != k || !halt_asleep(m.vcpu, &m.tid)) {
			sched_yield();
			guest_get_stats(w, &gs);
		}
		/* Again, now that it sleeps: the snapshot above is not atomic. */
		guest_get_stats(w, &gs);
		assert_true(guest_vcpu_halted(w, 0));
		assert_int_equal(gs.accesses, k * HALT_EVERY);
		assert_int_equal(guest_vcpu_steps(w, 0), k * (HALT_EVERY + 1));
		assert_int_equal(atomic_load(&vcpu_x86(m.vcpu)->pi_desc.nv),
				 POSTED_INTR_WAKEUP_VECTOR);
		assert_int_equal(ukvm_set_irq(vm.kvm, post ? GSI_DEV : GSI_DEV2), 1);
		posted += post;
		/* A post is delivered by the handler, on this thread, right now. */
		assert_int_equal(atomic_load(&ka->stat.pi_wakeups), posted);
	}
	/* Stopped while halted: the kick that stops a run wakes it. */
	guest_get_stats(w, &gs);
	while (gs.halts != HALT_ROUNDS + 1 || !halt_asleep(m.vcpu, &m.tid)) {
		sched_yield();
		guest_get_stats(w, &gs);
	}
	ukvm_vcpu_kick_exit(m.vcpu);
	join_thread(t);
	guest_get_stats(w, &gs);
	assert_int_equal(m.r, 0);
	assert_int_equal(m.exit_reason, KVM_EXIT_INTR);
	assert_int_equal(hw_vcpu(m.vcpu)->stat.halts, HALT_ROUNDS + 1);
	assert_int_equal(hw_vcpu(m.vcpu)->stat.posted_interrupts, posted);
	assert_int_equal(hw_vcpu(m.vcpu)->stat.interrupts, HALT_ROUNDS);
	assert_int_equal(atomic_load(&ka->stat.pi_wakeups), posted);
	assert_int_equal(gs.read_mismatches, 0);
	/* Not halted any more once it runs again: it finishes when stopped. */
	guest_workload_stop(w);
	memstress_fn(&m);
	assert_int_equal(m.exit_reason, KVM_EXIT_HYPERCALL);
	assert_false(guest_vcpu_halted(w, 0));
	assert_true(kvm_x86_pi_lists_empty());
	mt_vm_destroy(&vm);
	guest_workload_destroy(w);
	assert_nothing_reported();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_halted_vcpu_woken_through_wakeup_list),
		cmocka_unit_test(test_running_vcpu_gets_posted_interrupt),
		cmocka_unit_test(test_on_coalesces_notifications),
		cmocka_unit_test(test_bad_routes),
		cmocka_unit_test(test_no_lost_wakeup),
		cmocka_unit_test(test_memstress_halts),
#if UKVM_RACE_POINTS
		cmocka_unit_test(test_kick_exit_ends_a_halt_being_entered),
		cmocka_unit_test(test_wakeup_ends_only_the_halt_it_found),
#endif
	};

	return cmocka_run_group_tests(tests, mt_group_setup, mt_group_teardown);
}
