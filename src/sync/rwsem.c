// SPDX-License-Identifier: MIT
/*
 * struct rw_semaphore: a fair, writer-preferring sleeping reader-writer lock
 * built from one pthread mutex and two condition variables.
 *
 * The state (readers, writer, writers_waiting) only changes under sem->mu,
 * so every ordering question is answered by the mutex: the unlock of mu by a
 * releasing holder happens-before the lock of mu by the next acquirer.
 *
 * Policy: a new reader waits while a writer holds the lock *or waits for
 * it*; a writer waits while anybody holds it.  A releasing writer hands over
 * to the next waiting writer if there is one, else to all waiting readers.
 * That is the "reader behind a queued writer" property that makes read-read
 * across two threads a deadlock (commit 44d17459), hence read=1 for the
 * validator.
 */
#include "sync/rwsem.h"

void __init_rwsem(struct rw_semaphore *sem, const char *name,
		  const struct lock_class_key *key)
{
	pthread_mutex_init(&sem->mu, NULL);
	pthread_cond_init(&sem->readers_cv, NULL);
	pthread_cond_init(&sem->writers_cv, NULL);
	sem->readers = 0;
	sem->writer = 0;
	sem->writers_waiting = 0;
	lockdep_init_map_type(&sem->dep_map, name, key, 0, LD_WAIT_SLEEP,
			      LD_WAIT_SLEEP, LD_TYPE_RWSEM);
}

/* Under sem->mu: may a new reader enter now? */
static inline bool rwsem_read_ok(const struct rw_semaphore *sem)
{
	return !sem->writer && !sem->writers_waiting;
}

void __down_read(struct rw_semaphore *sem, unsigned int subclass,
		 const struct lockdep_site *site)
{
	lockdep_might_sleep(site);
	/* Validate before blocking, so a deadlock is reported, not suffered. */
	lock_acquire(&sem->dep_map, subclass, 0, 1, 1, NULL, site);
	pthread_mutex_lock(&sem->mu);
	while (!rwsem_read_ok(sem))
		pthread_cond_wait(&sem->readers_cv, &sem->mu);
	sem->readers++;
	pthread_mutex_unlock(&sem->mu);
}

bool __down_read_trylock(struct rw_semaphore *sem,
			 const struct lockdep_site *site)
{
	bool ok;

	pthread_mutex_lock(&sem->mu);
	ok = rwsem_read_ok(sem);
	if (ok)
		sem->readers++;
	pthread_mutex_unlock(&sem->mu);
	if (ok)
		lock_acquire(&sem->dep_map, 0, 1, 1, 1, NULL, site);
	return ok;
}

void __up_read(struct rw_semaphore *sem, const struct lockdep_site *site)
{
	lock_release(&sem->dep_map, site);
	pthread_mutex_lock(&sem->mu);
	/* The last reader out lets the first waiting writer in. */
	if (--sem->readers == 0 && sem->writers_waiting)
		pthread_cond_signal(&sem->writers_cv);
	pthread_mutex_unlock(&sem->mu);
}

void __down_write(struct rw_semaphore *sem, unsigned int subclass,
		  const struct lockdep_site *site)
{
	lockdep_might_sleep(site);
	lock_acquire(&sem->dep_map, subclass, 0, 0, 1, NULL, site);
	pthread_mutex_lock(&sem->mu);
	if (sem->writer || sem->readers) {
		/* Queue: from now on new readers wait behind us. */
		sem->writers_waiting++;
		do
			pthread_cond_wait(&sem->writers_cv, &sem->mu);
		while (sem->writer || sem->readers);
		sem->writers_waiting--;
	}
	sem->writer = 1;
	pthread_mutex_unlock(&sem->mu);
}

bool __down_write_trylock(struct rw_semaphore *sem,
			  const struct lockdep_site *site)
{
	bool ok;

	pthread_mutex_lock(&sem->mu);
	ok = !sem->writer && !sem->readers;
	if (ok)
		sem->writer = 1;
	pthread_mutex_unlock(&sem->mu);
	if (ok)
		lock_acquire(&sem->dep_map, 0, 1, 0, 1, NULL, site);
	return ok;
}

/* Under sem->mu, the lock just became free of writers: pick who goes next. */
static void rwsem_wake(struct rw_semaphore *sem)
{
	if (sem->writers_waiting) {
		/* Readers would only re-check and sleep again: skip them. */
		if (!sem->readers)
			pthread_cond_signal(&sem->writers_cv);
	} else {
		pthread_cond_broadcast(&sem->readers_cv);
	}
}

void __up_write(struct rw_semaphore *sem, const struct lockdep_site *site)
{
	lock_release(&sem->dep_map, site);
	pthread_mutex_lock(&sem->mu);
	sem->writer = 0;
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
	sem->writer = 0;
	sem->readers = 1;
	/*
	 * Waiting readers may join only if no writer is queued (rwsem_read_ok());
	 * a queued writer keeps waiting for our up_read().
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
	bool locked;

	pthread_mutex_lock(&sem->mu);
	locked = sem->writer || sem->readers;
	pthread_mutex_unlock(&sem->mu);
	return locked;
}
