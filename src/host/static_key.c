// SPDX-License-Identifier: MIT
/*
 * Static keys.  The kernel patches code when a key flips, with
 * cpus_read_lock() held (text patching must not race with CPUs coming and
 * going) and jump_label_mutex inside it.  ukvm has no code to patch, but it
 * takes the same locks in the same order, because that is what makes
 * static_key_slow_inc() inside kvm->srcu part of the 44d17459 deadlock:
 * kvm->srcu -> cpu_hotplug_lock.
 */
#include "host/host_internal.h"

DEFINE_MUTEX(jump_label_mutex);

void static_key_slow_inc_cpuslocked(struct static_key *key)
{
	lockdep_assert_cpus_held();
	mutex_lock(&jump_label_mutex);
	atomic_fetch_add(&key->enabled, 1);
	mutex_unlock(&jump_label_mutex);
}

void static_key_slow_dec_cpuslocked(struct static_key *key)
{
	lockdep_assert_cpus_held();
	mutex_lock(&jump_label_mutex);
	if (!HOST_WARN_ON(atomic_load(&key->enabled) <= 0))
		atomic_fetch_sub(&key->enabled, 1);
	mutex_unlock(&jump_label_mutex);
}

void static_key_slow_inc(struct static_key *key)
{
	cpus_read_lock();
	static_key_slow_inc_cpuslocked(key);
	cpus_read_unlock();
}

void static_key_slow_dec(struct static_key *key)
{
	cpus_read_lock();
	static_key_slow_dec_cpuslocked(key);
	cpus_read_unlock();
}
