// SPDX-License-Identifier: MIT
/*
 * vCPUs and requests (kvm-brief.md 8): creation limits, the mode/request
 * pairing with a stand-in guest loop, WAIT requests that really wait for
 * the vCPU to leave guest mode, halting and waking, plus the in-kernel I/O
 * bus and IRQ routing (registered/updated under their locks, read under
 * SRCU by a vCPU).
 */
#include <errno.h>
#include <stdlib.h>

#include "kvm_test.h"

static void test_create_limits(void **state)
{
	struct ukvm_vm_config cfg = { .max_vcpus = 2 };
	struct kvm_vcpu *v0, *v1, *v2;
	struct kvm *kvm;

	(void)state;
	assert_int_equal(ukvm_create_vm(&cfg, &kvm), 0);
	assert_int_equal(ukvm_create_vcpu(kvm, 7, &v0), 0);
	assert_int_equal(ukvm_create_vcpu(kvm, 7, &v1), -EEXIST);
	assert_int_equal(ukvm_create_vcpu(kvm, 8, &v1), 0);
	assert_int_equal(ukvm_create_vcpu(kvm, 9, &v2), -EINVAL);
	assert_int_equal(ukvm_create_vcpu(kvm, 100000, &v2), -EINVAL);
	assert_int_equal(atomic_load(&kvm->online_vcpus), 2);
	assert_ptr_equal(kvm_get_vcpu(kvm, 0), v0);
	assert_ptr_equal(kvm_get_vcpu(kvm, 1), v1);
	assert_int_equal(v1->vcpu_idx, 1);
	ukvm_destroy_vm(kvm);
	assert_nothing_reported();
}

/*
 * A stand-in for the run loop of src/hw: enter guest mode with the
 * mode/request pairing, "run guest code" until kicked, leave, service.
 */
struct guest {
	struct kvm_vcpu *vcpu;
	_Atomic bool stop;
	_Atomic unsigned long entries, exits, flushes;
};

static void *guest_fn(void *arg)
{
	struct guest *g = arg;
	struct kvm_vcpu *vcpu = g->vcpu;

	T_CHECK(kvm_vcpu_ioctl_begin(vcpu) == 0);
	while (!atomic_load(&g->stop)) {
		if (kvm_check_request(KVM_REQ_TLB_FLUSH, vcpu))
			atomic_fetch_add(&g->flushes, 1);
		atomic_store(&vcpu->mode, IN_GUEST_MODE);
		/* Full barrier, then the last check before "VM-enter". */
		if (kvm_request_pending(vcpu)) {
			atomic_store(&vcpu->mode, OUTSIDE_GUEST_MODE);
			continue;
		}
		atomic_fetch_add(&g->entries, 1);
		while (atomic_load(&vcpu->mode) == IN_GUEST_MODE && !atomic_load(&g->stop))
			sched_yield();	/* guest code; the kick ends it */
		atomic_fetch_add(&g->exits, 1);
		kvm_vcpu_guest_exit(vcpu);
	}
	atomic_store(&vcpu->mode, OUTSIDE_GUEST_MODE);
	kvm_vcpu_ioctl_end(vcpu);
	return NULL;
}

static void test_flush_waits_for_exit(void **state)
{
	struct kvm *kvm = kt_create_vm();
	struct guest g = { 0 };
	pthread_t t;

	(void)state;
	assert_int_equal(ukvm_create_vcpu(kvm, 0, &g.vcpu), 0);
	t = start_thread("vcpu0", guest_fn, &g);
	for (int round = 0; round < SCALE(2000); round++) {
		unsigned long entries, exits, flushes;

		/* Wait until the vCPU runs guest code. */
		WAIT_UNTIL(atomic_load(&g.vcpu->mode) == IN_GUEST_MODE &&
			   atomic_load(&g.entries) > atomic_load(&g.exits));
		entries = atomic_load(&g.entries);
		exits = atomic_load(&g.exits);
		flushes = atomic_load(&g.flushes);
		kvm_flush_remote_tlbs(kvm);
		/* It left guest mode before the flush returned ... */
		assert_true(atomic_load(&g.exits) > exits);
		/* ... and flushed before running guest code again. */
		WAIT_UNTIL(atomic_load(&g.entries) > entries);
		assert_true(atomic_load(&g.flushes) > flushes);
	}
	atomic_store(&g.stop, true);
	kvm_vcpu_kick(g.vcpu);
	join_thread(t);
	assert_true(atomic_load(&kvm->stat.remote_tlb_flush) >= (unsigned long)SCALE(2000));
	ukvm_destroy_vm(kvm);
	assert_nothing_reported();
}

struct blocker {
	struct kvm_vcpu *vcpu;
	struct flag returned;
};

static void *block_fn(void *arg)
{
	struct blocker *b = arg;

	kvm_vcpu_block(b->vcpu);
	flag_set(&b->returned);
	return NULL;
}

static void test_block_and_wake(void **state)
{
	struct kvm *kvm = kt_create_vm();
	struct blocker b = { 0 };
	pthread_t t;

	(void)state;
	assert_int_equal(ukvm_create_vcpu(kvm, 0, &b.vcpu), 0);
	t = start_thread("vcpu-halt", block_fn, &b);
	WAIT_UNTIL(atomic_load(&b.vcpu->blocked));
	/* A TLB flush (NO_WAKEUP) does not end a halt ... */
	kvm_flush_remote_tlbs(kvm);
	for (int i = 0; i < 100; i++) {
		assert_false(flag_is_set(&b.returned));
		sched_yield();
	}
	assert_true(kvm_test_request(KVM_REQ_TLB_FLUSH, b.vcpu));
	/* ... an interrupt does. */
	{
		const struct kvm_irq_route route = { .gsi = 5, .vcpu_idx = 0 };

		const struct kvm_irq_route posted = { .gsi = 6, .vcpu_idx = 0,
						      .posted = true };

		assert_int_equal(kvm_set_irq_routing(kvm, &route, 1), 0);
		/* No architecture, no IOMMU: a posted route is refused. */
		assert_int_equal(kvm_set_irq_routing(kvm, &posted, 1), -EINVAL);
		assert_int_equal(kvm_set_irq(kvm, 6), -ENOENT);
		assert_int_equal(kvm_set_irq(kvm, 5), 1);
	}
	flag_wait(&b.returned);
	join_thread(t);
	assert_true(kvm_test_request(KVM_REQ_EVENT, b.vcpu));
	ukvm_destroy_vm(kvm);
	assert_nothing_reported();
}

struct dev {
	struct kvm_io_device dev;
	_Atomic int writes;
	uint64_t last;
};

static int dev_write(struct kvm_vcpu *vcpu, struct kvm_io_device *d, gpa_t addr,
		     int len, const void *val)
{
	struct dev *dv = caa_container_of(d, struct dev, dev);

	(void)vcpu;
	(void)addr;
	memcpy(&dv->last, val, (size_t)len);
	atomic_fetch_add(&dv->writes, 1);
	return 0;
}

static const struct kvm_io_device_ops dev_ops = { .write = dev_write };

static void test_io_bus(void **state)
{
	struct kvm *kvm = kt_create_vm();
	struct dev a = { .dev.ops = &dev_ops }, b = { .dev.ops = &dev_ops };
	struct kvm_vcpu *vcpu;
	uint64_t v = 0x1234;

	(void)state;
	assert_int_equal(ukvm_create_vcpu(kvm, 0, &vcpu), 0);
	mutex_lock(&kvm->slots_lock);
	assert_int_equal(kvm_io_bus_register_dev(kvm, KVM_MMIO_BUS, 0xfee00000, 0x1000, &a.dev), 0);
	assert_int_equal(kvm_io_bus_register_dev(kvm, KVM_MMIO_BUS, 0xfee00800, 8, &b.dev), -EEXIST);
	assert_int_equal(kvm_io_bus_register_dev(kvm, KVM_MMIO_BUS, 0xd0000000, 8, &b.dev), 0);
	mutex_unlock(&kvm->slots_lock);

	assert_int_equal(kvm_vcpu_ioctl_begin(vcpu), 0);
	kvm_vcpu_srcu_read_lock(vcpu);
	assert_int_equal(kvm_io_bus_write(vcpu, KVM_MMIO_BUS, 0xfee00010, 8, &v), 0);
	assert_int_equal(kvm_io_bus_write(vcpu, KVM_MMIO_BUS, 0xd0000000, 8, &v), 0);
	assert_int_equal(kvm_io_bus_write(vcpu, KVM_MMIO_BUS, 0xe0000000, 8, &v), -EOPNOTSUPP);
	/* Straddling the end of a device: no device handles it. */
	assert_int_equal(kvm_io_bus_write(vcpu, KVM_MMIO_BUS, 0xfee00ffc, 8, &v), -EOPNOTSUPP);
	kvm_vcpu_srcu_read_unlock(vcpu);
	kvm_vcpu_ioctl_end(vcpu);
	assert_int_equal(atomic_load(&a.writes), 1);
	assert_int_equal(atomic_load(&b.writes), 1);
	assert_int_equal(a.last, 0x1234);

	mutex_lock(&kvm->slots_lock);
	assert_int_equal(kvm_io_bus_unregister_dev(kvm, KVM_MMIO_BUS, &a.dev), 0);
	assert_int_equal(kvm_io_bus_unregister_dev(kvm, KVM_MMIO_BUS, &a.dev), -ENOENT);
	mutex_unlock(&kvm->slots_lock);
	ukvm_destroy_vm(kvm);
	assert_nothing_reported();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_limits),
		cmocka_unit_test(test_flush_waits_for_exit),
		cmocka_unit_test(test_block_and_wake),
		cmocka_unit_test(test_io_bus),
	};

	return cmocka_run_group_tests_name("kvm_vcpu", tests,
					   kt_group_setup, kt_group_teardown);
}
