// SPDX-License-Identifier: MIT
/*
 * The deadlock fixed by commit 44d17459 ("KVM: Use dedicated mutex to
 * protect kvm_usage_count to avoid deadlock"), replayed on bare lockdep
 * maps of the right types, one thread after the other:
 *
 *   CPU0 (SET_USER_MEMORY_REGION)  lock slots_lock, synchronize_srcu(kvm->srcu)
 *   CPU1 (VM creation, legacy)     cpus_read_lock, lock kvm_lock
 *        (set_nx_huge_pages)       lock kvm_lock, lock slots_lock
 *   CPU2 (vCPU KVM_SET_MSRS)       lock vcpu->mutex, srcu_read_lock(kvm->srcu),
 *                                  cpus_read_lock (static_key_slow_inc)
 *
 * cpu_hotplug_lock is a fair rwsem (non-recursive readers), so CPU2's read
 * blocks behind a queued hotplug writer: the cycle is real.  With the legacy
 * design the validator must report it; with the current one (enabling takes
 * kvm_usage_lock then cpu_hotplug_lock and never kvm_lock, and the vm_list
 * walker takes no slots_lock under kvm_lock) it must report nothing.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lockdep/lockdep.h"
#include "lockdep/order.h"

static struct lock_class_key k_slots = { .name = "&kvm->slots_lock", .type = LD_TYPE_MUTEX };
static struct lock_class_key k_srcu = { .name = "&kvm->srcu", .type = LD_TYPE_SRCU };
static struct lock_class_key k_hotplug = { .name = "cpu_hotplug_lock", .type = LD_TYPE_RWSEM };
static struct lock_class_key k_kvm_lock = { .name = "kvm_lock", .type = LD_TYPE_MUTEX };
static struct lock_class_key k_usage = { .name = "kvm_usage_lock", .type = LD_TYPE_MUTEX };
static struct lock_class_key k_vcpu = { .name = "&vcpu->mutex", .type = LD_TYPE_MUTEX };

static struct lockdep_map slots_lock, kvm_srcu, hotplug, kvm_lock, usage_lock,
			  vcpu_mutex;
static bool legacy;

static const struct lockdep_site here = { "seed", __FILE__, __LINE__ };

static void init_maps(void)
{
	lockdep_init_map_type(&slots_lock, "&kvm->slots_lock", &k_slots, 0,
			      LD_WAIT_SLEEP, LD_WAIT_SLEEP, LD_TYPE_MUTEX);
	lockdep_init_map_type(&kvm_srcu, "&kvm->srcu", &k_srcu, 0,
			      LD_WAIT_SLEEP, LD_WAIT_FREE, LD_TYPE_SRCU);
	lockdep_init_map_type(&hotplug, "cpu_hotplug_lock", &k_hotplug, 0,
			      LD_WAIT_SLEEP, LD_WAIT_SLEEP, LD_TYPE_RWSEM);
	lockdep_init_map_type(&kvm_lock, "kvm_lock", &k_kvm_lock, 0,
			      LD_WAIT_SLEEP, LD_WAIT_SLEEP, LD_TYPE_MUTEX);
	lockdep_init_map_type(&usage_lock, "kvm_usage_lock", &k_usage, 0,
			      LD_WAIT_SLEEP, LD_WAIT_SLEEP, LD_TYPE_MUTEX);
	lockdep_init_map_type(&vcpu_mutex, "&vcpu->mutex", &k_vcpu, 0,
			      LD_WAIT_SLEEP, LD_WAIT_SLEEP, LD_TYPE_MUTEX);
}

#define take(m, read)	lock_acquire((m), 0, 0, (read), 1, NULL, &here)
#define drop(m)		lock_release((m), &here)

static void *cpu0(void *arg)
{
	(void)arg;
	lockdep_set_task_name("cpu0-set-memory-region");
	take(&slots_lock, 0);
	lock_sync(&kvm_srcu, 0, 0, 1, NULL, &here);	/* synchronize_srcu() */
	drop(&slots_lock);
	return NULL;
}

static void *cpu1(void *arg)
{
	(void)arg;
	lockdep_set_task_name("cpu1-create-vm");
	if (legacy) {
		/* hardware_enable_all() under kvm_lock (0bf50497). */
		take(&hotplug, 1);
		take(&kvm_lock, 0);
		drop(&kvm_lock);
		drop(&hotplug);
		/* set_nx_huge_pages(): kvm_lock, then each VM's slots_lock. */
		take(&kvm_lock, 0);
		take(&slots_lock, 0);
		drop(&slots_lock);
		drop(&kvm_lock);
	} else {
		/* kvm_enable_virtualization(): cpuhp_setup_state() inside. */
		take(&usage_lock, 0);
		take(&hotplug, 1);
		drop(&hotplug);
		drop(&usage_lock);
		/* The vm_list walker takes no per-VM mutex under kvm_lock. */
		take(&kvm_lock, 0);
		drop(&kvm_lock);
	}
	return NULL;
}

static void *cpu2(void *arg)
{
	(void)arg;
	lockdep_set_task_name("cpu2-vcpu-set-msrs");
	take(&vcpu_mutex, 0);
	take(&kvm_srcu, 2);		/* srcu_read_lock() */
	take(&hotplug, 1);		/* static_key_slow_inc() */
	drop(&hotplug);
	drop(&kvm_srcu);
	drop(&vcpu_mutex);
	return NULL;
}

static char *replay(bool use_legacy)
{
	void *(*cpus[3])(void *) = { cpu0, cpu1, cpu2 };
	char *buf = NULL, err[512];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	legacy = use_legacy;
	assert_int_equal(lockdep_order_load_text(ukvm_lock_order_text,
			"src/lockdep/lock-order.txt",
			legacy ? "legacy" : "current", err, sizeof(err)), 0);
	lockdep_order_set_enabled(true);
	lockdep_reset();
	lockdep_set_report_stream(f);
	init_maps();
	for (int i = 0; i < 3; i++) {
		pthread_t th;

		assert_int_equal(pthread_create(&th, NULL, cpus[i], NULL), 0);
		pthread_join(th, NULL);
	}
	lockdep_set_report_stream(NULL);
	fclose(f);
	return buf;
}

static void test_legacy_design_deadlocks(void **state)
{
	struct lockdep_stats st;
	char *text;

	(void)state;
	text = replay(true);
	lockdep_get_stats(&st);
	if (st.by_kind[LDR_CIRCULAR] != 1)
		print_error("%s", text);
	assert_int_equal(st.by_kind[LDR_CIRCULAR], 1);
	assert_non_null(strstr(text, "WARNING: possible circular locking dependency detected"));
	assert_non_null(strstr(text, "cpu2-vcpu-set-msrs/"));
	assert_non_null(strstr(text, "is trying to acquire lock:\n (cpu_hotplug_lock){r}"));
	assert_non_null(strstr(text, "but task is already holding lock:\n (&kvm->srcu){R}"));
	assert_non_null(strstr(text, "Chain exists of:\n  cpu_hotplug_lock --> &kvm->slots_lock --> &kvm->srcu"));
	assert_non_null(strstr(text, "-> #3 (&kvm->srcu){s}"));
	assert_non_null(strstr(text, "-> #2 (&kvm->slots_lock){w}"));
	assert_non_null(strstr(text, "-> #1 (kvm_lock){w}"));
	assert_non_null(strstr(text, "-> #0 (cpu_hotplug_lock){r}"));
	assert_non_null(strstr(text, "                               sync(&kvm->srcu);"));
	assert_non_null(strstr(text, "  rlock(cpu_hotplug_lock);"));
	/* The documented order already says kvm_lock is a leaf. */
	assert_int_equal(st.by_kind[LDR_ORDER_VIOLATION], 1);
	assert_non_null(strstr(text, "kvm_lock is a leaf"));
	free(text);
}

static void test_current_design_is_clean(void **state)
{
	struct lockdep_stats st;
	char *text;

	(void)state;
	text = replay(false);
	lockdep_get_stats(&st);
	if (st.errors || st.warnings)
		print_error("%s", text);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.warnings, 0);
	assert_int_equal(lockdep_report_count(), 0);
	assert_true(st.dependencies >= 4);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_legacy_design_deadlocks),
		cmocka_unit_test(test_current_design_is_clean),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
