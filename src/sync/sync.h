/* SPDX-License-Identifier: MIT */
/* All synchronization primitives of ukvm (src/sync). */
#ifndef UKVM_SYNC_SYNC_H
#define UKVM_SYNC_SYNC_H

#include "lockdep/lockdep.h"
#include "sync/cpu_hotplug_lock.h"
#include "sync/mutex.h"
#include "sync/rcu.h"
#include "sync/rcuwait.h"
#include "sync/rwlock.h"
#include "sync/rwsem.h"
#include "sync/spinlock.h"
#include "sync/srcu.h"
#include "sync/thread.h"

#endif /* UKVM_SYNC_SYNC_H */
