// SPDX-License-Identifier: MIT
/*
 * The global CPU-hotplug lock.  Its class is named "cpu_hotplug_lock", as in
 * the kernel and in src/lockdep/lock-order.txt.
 */
#include "sync/cpu_hotplug_lock.h"

DECLARE_RWSEM(cpu_hotplug_lock);
