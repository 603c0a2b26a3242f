// SPDX-License-Identifier: MIT
/*
 * struct rw_semaphore: a fair, writer-preferring sleeping reader-writer lock.
 *
 * The fast paths are one atomic operation on @count, like the kernel's: a
 * reader adds RWSEM_READER_BIAS and backs out if a writer holds the lock *or
 * waits for it*, and a reader leaving subtracts it.
 * Everything that waits or wakes goes through the slow path under sem->mu,
 * with two condition variables:
 *
 *   - a writer queues under mu (writers_waiting++, RWSEM_WRITER_WAITING set:
 *     from now on new readers take the slow path and wait) and sleeps until
 *     no reader and no writer holds the lock, then sets RWSEM_WRITER_LOCKED
 *     with a compare-and-exchange (readers cannot slip in: a fast reader
 *     that finds the waiting bit backs out, and slow readers hold mu; a
 *     backing-out bias only makes the writer's attempt fail and sleep
 *     until that reader, leaving, signals it);
 *   - the last reader out sees the waiting bit and signals a writer under
 *     mu; since the queued writer checks @count and sleeps with mu held, the
 *     signal is never lost;
 *   - a releasing writer hands over to the next queued writer if there is
 *     one, else to all waiting readers.
 *
 * That is the "reader behind a queued writer" property that makes read-read
 * across two threads a deadlock (commit 44d17459), hence read=1 for the
 * validator.
 */
#include "sync/race.h"
#include "sync/rwsem.h"

#define RWSEM_WRITER_MASK	(RWSEM_WRITER_LOCKED | RWSEM_WRITER_WAITING)

void __init_rwsem(struct rw_semaphore *sem, const char *name,
		  const struct lock_class_key *key)
{
	atomic_init(&sem->count, 0);
	pthread_mutex_init(&sem->mu, NULL);
	pthread_cond_init(&sem->readers_cv, NULL);
	pthread_cond_init(&sem->writers_cv, NULL);
	sem->writers_waiting = 0;
	lockdep_init_map_type(&sem->dep_map, name, key, 0, LD_WAIT_SLEEP,
			      LD_WAIT_SLEEP, LD_TYPE_RWSEM);
}

/* A reader leaves: the last one out lets the first queued writer in. */
static void rwsem_read_release(struct rw_semaphore *sem)
{
	long c = atomic_fetch_sub_explicit(&sem->count, RWSEM_READER_BIAS,
					   memory_order_release) - RWSEM_READER_BIAS;

	if (c == RWSEM_WRITER_WAITING) {
		pthread_mutex_lock(&sem->mu);
		pthread_cond_signal(&sem->writers_cv);
		pthread_mutex_unlock(&sem->mu);
	}
}

/*
 * The reader fast path: in unless a writer holds or waits for the lock.
 * One fetch-and-add, as in the kernel (a compare-and-exchange loop needs
 * the line twice and retries when the other CPU's reader got there first):
 * a reader that finds a writer bit takes its bias back, which is a reader
 * leaving like any other, and may be the one that lets the writer in.
 */
static inline bool rwsem_read_trylock(struct rw_semaphore *sem)
{
	long c = atomic_fetch_add_explicit(&sem->count, RWSEM_READER_BIAS,
					   memory_order_acquire);

	if (__builtin_expect(!(c & RWSEM_WRITER_MASK), 1))
		return true;
	RACE_POINT(RWSEM_READER_BACKING_OUT);
	rwsem_read_release(sem);
	return false;
}

static void rwsem_down_read_slowpath(struct rw_semaphore *sem)
{
	pthread_mutex_lock(&sem->mu);
	/* Writers change the bits only under mu: the test below is stable. */
	while (atomic_load_explicit(&sem->count, memory_order_relaxed) &
	       RWSEM_WRITER_MASK)
		pthread_cond_wait(&sem->readers_cv, &sem->mu);
	atomic_fetch_add_explicit(&sem->count, RWSEM_READER_BIAS,
				  memory_order_acquire);
	pthread_mutex_unlock(&sem->mu);
}

void __down_read(struct rw_semaphore *sem, unsigned int subclass,
		 const struct lockdep_site *site)
{
	lockdep_might_sleep(site);
	/* Validate before blocking, so a deadlock is reported, not suffered. */
	lock_acquire(&sem->dep_map, subclass, 0, 1, 1, NULL, site);
	if (!rwsem_read_trylock(sem))
		rwsem_down_read_slowpath(sem);
}

bool __down_read_trylock(struct rw_semaphore *sem,
			 const struct lockdep_site *site)
{
	bool ok = rwsem_read_trylock(sem);

	if (ok)
		lock_acquire(&sem->dep_map, 0, 1, 1, 1, NULL, site);
	return ok;
}

void __up_read(struct rw_semaphore *sem, const struct lockdep_site *site)
{
	lock_release(&sem->dep_map, site);
	rwsem_read_release(sem);
}

/* Under mu: take the write side if nobody holds the lock. */
static bool rwsem_write_trylock_locked(struct rw_semaphore *sem)
{
	long c = atomic_load_explicit(&sem->count, memory_order_relaxed);

	while (!(c & ~RWSEM_WRITER_WAITING))
		if (atomic_compare_exchange_weak_explicit(&sem->count, &c,
				c | RWSEM_WRITER_LOCKED, memory_order_acquire,
				memory_order_relaxed))
			return true;
	return false;
}

void __down_write(struct rw_semaphore *sem, unsigned int subclass,
		  const struct lockdep_site *site)
{
	lockdep_might_sleep(site);
	lock_acquire(&sem->dep_map, subclass, 0, 0, 1, NULL, site);
	pthread_mutex_lock(&sem->mu);
	if (!rwsem_write_trylock_locked(sem)) {
		/* Queue: from now on new readers wait behind us. */
		if (sem->writers_waiting++ == 0)
			atomic_fetch_or_explicit(&sem->count, RWSEM_WRITER_WAITING,
						 memory_order_relaxed);
		/*
		 * Try again before sleeping: a reader that left before the
		 * waiting bit was set did not signal.  One that leaves after
		 * it sees the bit and signals under mu, which we hold until
		 * pthread_cond_wait() releases it.
		 */
		while (!rwsem_write_trylock_locked(sem))
			pthread_cond_wait(&sem->writers_cv, &sem->mu);
		if (--sem->writers_waiting == 0)
			atomic_fetch_and_explicit(&sem->count, ~RWSEM_WRITER_WAITING,
						  memory_order_relaxed);
	}
	pthread_mutex_unlock(&sem->mu);
}

bool __down_write_trylock(struct rw_semaphore *sem,
			  const struct lockdep_site *site)
{
	long c = 0;
	bool ok = atomic_compare_exchange_strong_explicit(&sem->count, &c,
			RWSEM_WRITER_LOCKED, memory_order_acquire,
			memory_order_relaxed);

	if (ok)
		lock_acquire(&sem->dep_map, 0, 1, 0, 1, NULL, site);
	return ok;
}

/* Under sem->mu, the lock just became free of writers: pick who goes next. */
static void rwsem_wake(struct rw_semaphore *sem)
{
	if (sem->writers_waiting) {
		/* Readers would only re-check and sleep again: skip them. */
		if (!(atomic_load_explicit(&sem->count, memory_order_relaxed) &
		      ~RWSEM_WRITER_MASK))
			pthread_cond_signal(&sem->writers_cv);
	} else {
		pthread_cond_broadcast(&sem->readers_cv);
	}
}

void __up_write(struct rw_semaphore *sem, const struct lockdep_site *site)
{
	lock_release(&sem->dep_map, site);
	pthread_mutex_lock(&sem->mu);
	atomic_fetch_and_explicit(&sem->count, ~RWSEM_WRITER_LOCKED,
				  memory_order_release);
	rwsem_wake(sem);
	pthread_mutex_unlock(&sem->mu);
}

/*
 * Turn a write hold into a read hold without letting a writer in between.
 * For the validator it is a release of the write hold followed by a read
 * acquisition (the kernel has lock_downgrade(); the dependency graph learns
 * the same edges either way, since nothing is acquired in between).
 */
void __downgrade_write(struct rw_semaphore *sem,
		       const struct lockdep_site *site)
{
	lock_release(&sem->dep_map, site);
	lock_acquire(&sem->dep_map, 0, 0, 1, 1, NULL, site);
	pthread_mutex_lock(&sem->mu);
	/* One atomic step from "write-held" to "one reader". */
	atomic_fetch_add_explicit(&sem->count,
				  RWSEM_READER_BIAS - RWSEM_WRITER_LOCKED,
				  memory_order_release);
	/*
	 * Waiting readers may join only if no writer is queued; a queued
	 * writer keeps waiting for our up_read().
	 */
	if (!sem->writers_waiting)
		pthread_cond_broadcast(&sem->readers_cv);
	pthread_mutex_unlock(&sem->mu);
}

int rwsem_writers_waiting(struct rw_semaphore *sem)
{
	int n;

	pthread_mutex_lock(&sem->mu);
	n = sem->writers_waiting;
	pthread_mutex_unlock(&sem->mu);
	return n;
}

bool rwsem_is_locked(struct rw_semaphore *sem)
{
	return atomic_load(&sem->count) & ~RWSEM_WRITER_WAITING;
}
