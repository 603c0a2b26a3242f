/* SPDX-License-Identifier: MIT */
/*
 * The CPU-hotplug lock (the kernel's percpu rw-semaphore cpu_hotplug_lock),
 * built on the fair rw_semaphore: cpus_read_lock() blocks behind a waiting
 * hotplug writer.  Class name "cpu_hotplug_lock".
 */
#ifndef UKVM_SYNC_CPU_HOTPLUG_LOCK_H
#define UKVM_SYNC_CPU_HOTPLUG_LOCK_H

#include "sync/rwsem.h"

extern struct rw_semaphore cpu_hotplug_lock;

#define cpus_read_lock()	__down_read(&cpu_hotplug_lock, 0, LOCKDEP_SITE)
#define cpus_read_trylock()	__down_read_trylock(&cpu_hotplug_lock, LOCKDEP_SITE)
#define cpus_read_unlock()	__up_read(&cpu_hotplug_lock, LOCKDEP_SITE)
#define cpus_write_lock()	__down_write(&cpu_hotplug_lock, 0, LOCKDEP_SITE)
#define cpus_write_unlock()	__up_write(&cpu_hotplug_lock, LOCKDEP_SITE)
#define lockdep_assert_cpus_held() lockdep_assert_held(&cpu_hotplug_lock)

#endif /* UKVM_SYNC_CPU_HOTPLUG_LOCK_H */
