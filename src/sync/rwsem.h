/* SPDX-License-Identifier: MIT */
/*
 * struct rw_semaphore: a sleeping reader-writer lock that is *fair*: a new
 * reader blocks while a writer is waiting.  That is the property behind the
 * kvm_usage_lock deadlock of commit 44d17459 (a cpus_read_lock() stuck behind
 * a queued CPU-hotplug writer), so for the validator its readers are
 * non-recursive (read=1): read-read across two threads can deadlock when a
 * writer queues between them.
 *
 * rwsem_writers_waiting() exposes the queue so that tests can build the
 * "reader behind a waiting writer" situation deterministically.
 */
#ifndef UKVM_SYNC_RWSEM_H
#define UKVM_SYNC_RWSEM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "lockdep/lockdep.h"

/*
 * @count: RWSEM_WRITER_LOCKED | RWSEM_WRITER_WAITING | readers * RWSEM_READER_BIAS
 *         (readers in, plus fast-path readers backing out from a writer).
 * A reader enters with one fetch-and-add when neither writer bit is
 * set; everything else (waiting, waking, queueing a writer) happens under @mu.
 */
#define RWSEM_WRITER_LOCKED	1L
#define RWSEM_WRITER_WAITING	2L
#define RWSEM_READER_BIAS	4L

struct rw_semaphore {
	_Atomic long count;
	pthread_mutex_t mu;		/* the slow paths; protects writers_waiting */
	pthread_cond_t readers_cv;
	pthread_cond_t writers_cv;
	int writers_waiting;		/* queued writers: block new readers */
	struct lockdep_map dep_map;
};

void __init_rwsem(struct rw_semaphore *sem, const char *name,
		  const struct lock_class_key *key);

#define init_rwsem(sem)                                                       \
	__init_rwsem((sem), #sem, LOCKDEP_STATIC_KEY(#sem, LD_TYPE_RWSEM))

#define __RWSEM_INITIALIZER(_var, _key)                                       \
	{ .mu = PTHREAD_MUTEX_INITIALIZER,                                    \
	  .readers_cv = PTHREAD_COND_INITIALIZER,                             \
	  .writers_cv = PTHREAD_COND_INITIALIZER,                             \
	  .dep_map = STATIC_LOCKDEP_MAP_INIT(#_var, (_key), LD_WAIT_SLEEP,    \
					     LD_WAIT_SLEEP, LD_TYPE_RWSEM) }

#define DECLARE_RWSEM(_var)                                                   \
	DEFINE_LOCKDEP_KEY(_var##__lockdep_key, #_var, LD_TYPE_RWSEM);        \
	struct rw_semaphore _var =                                            \
		__RWSEM_INITIALIZER(_var, &_var##__lockdep_key)

void __down_read(struct rw_semaphore *sem, unsigned int subclass,
		 const struct lockdep_site *site);
bool __down_read_trylock(struct rw_semaphore *sem,
			 const struct lockdep_site *site);
void __up_read(struct rw_semaphore *sem, const struct lockdep_site *site);
void __down_write(struct rw_semaphore *sem, unsigned int subclass,
		  const struct lockdep_site *site);
bool __down_write_trylock(struct rw_semaphore *sem,
			  const struct lockdep_site *site);
void __up_write(struct rw_semaphore *sem, const struct lockdep_site *site);
void __downgrade_write(struct rw_semaphore *sem,
		       const struct lockdep_site *site);

#define down_read(s)		 __down_read((s), 0, LOCKDEP_SITE)
#define down_read_nested(s, n)	 __down_read((s), (n), LOCKDEP_SITE)
#define down_read_trylock(s)	 __down_read_trylock((s), LOCKDEP_SITE)
#define up_read(s)		 __up_read((s), LOCKDEP_SITE)
#define down_write(s)		 __down_write((s), 0, LOCKDEP_SITE)
#define down_write_nested(s, n)	 __down_write((s), (n), LOCKDEP_SITE)
#define down_write_trylock(s)	 __down_write_trylock((s), LOCKDEP_SITE)
#define up_write(s)		 __up_write((s), LOCKDEP_SITE)
#define downgrade_write(s)	 __downgrade_write((s), LOCKDEP_SITE)

/* Introspection (tests, assertions): snapshots. */
int rwsem_writers_waiting(struct rw_semaphore *sem);
bool rwsem_is_locked(struct rw_semaphore *sem);

#endif /* UKVM_SYNC_RWSEM_H */
