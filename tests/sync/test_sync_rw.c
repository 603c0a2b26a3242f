// SPDX-License-Identifier: MIT
/*
 * Reader-writer locks: rwlock_t (readers share, writers exclude, needbreak
 * and cond_resched), the fair rw_semaphore (a reader queues behind a
 * waiting writer), downgrade_write(), and the CPU-hotplug lock.
 */
#include <unistd.h>

#include "sync/race.h"
#include "sync_test.h"

static rwlock_t t_rw;
static struct rw_semaphore t_sem;

/* ---- rwlock_t --------------------------------------------------------- */

static struct {
	struct flag go, done;
	_Atomic int result;
	_Atomic int readers_inside, writer_inside;
	_Atomic int writer_done;
} rw;

static void *rw_try_read(void *arg)
{
	(void)arg;
	bool ok = read_trylock(&t_rw);

	atomic_store(&rw.result, ok);
	if (ok)
		read_unlock(&t_rw);
	return NULL;
}

static void *rw_try_write(void *arg)
{
	(void)arg;
	bool ok = write_trylock(&t_rw);

	atomic_store(&rw.result, ok);
	if (ok)
		write_unlock(&t_rw);
	return NULL;
}

/* Run @fn in a fresh thread and return its trylock result. */
static int try_in_thread(void *(*fn)(void *))
{
	join_thread(start_thread("try", fn, NULL));
	return atomic_load(&rw.result);
}

static void test_rwlock_shared_exclusive(void **state)
{
	(void)state;
	read_lock(&t_rw);
	assert_true(try_in_thread(rw_try_read));	/* readers share */
	assert_false(try_in_thread(rw_try_write));	/* a writer waits */
	read_unlock(&t_rw);

	write_lock(&t_rw);
	assert_false(try_in_thread(rw_try_read));
	assert_false(try_in_thread(rw_try_write));
	write_unlock(&t_rw);

	assert_true(try_in_thread(rw_try_write));
	assert_false(rwlock_needbreak(&t_rw));
}

static void *rw_blocking_writer(void *arg)
{
	(void)arg;
	write_lock(&t_rw);
	T_CHECK(atomic_load(&rw.readers_inside) == 0);
	atomic_store(&rw.writer_done, 1);
	write_unlock(&t_rw);
	return NULL;
}

/*
 * A writer that waits makes rwlock_needbreak() true for the reader holding
 * the lock; cond_resched_rwlock_read() then drops the lock (returns true),
 * which lets the writer through at some point.
 */
static void test_rwlock_needbreak(void **state)
{
	pthread_t tid;

	(void)state;
	atomic_store(&rw.writer_done, 0);
	read_lock(&t_rw);
	atomic_fetch_add(&rw.readers_inside, 1);
	assert_false(cond_resched_rwlock_read(&t_rw));	/* nobody waits */
	tid = start_thread("writer", rw_blocking_writer, NULL);
	WAIT_UNTIL(rwlock_needbreak(&t_rw));
	assert_int_equal(atomic_load(&rw.writer_done), 0);
	atomic_fetch_sub(&rw.readers_inside, 1);
	assert_true(cond_resched_rwlock_read(&t_rw));
	atomic_fetch_add(&rw.readers_inside, 1);
	atomic_fetch_sub(&rw.readers_inside, 1);
	read_unlock(&t_rw);
	join_thread(tid);
	assert_int_equal(atomic_load(&rw.writer_done), 1);
	assert_false(rwlock_needbreak(&t_rw));
	assert_no_thread_failures();
}

static void *rw_blocking_reader(void *arg)
{
	(void)arg;
	read_lock(&t_rw);
	T_CHECK(atomic_load(&rw.writer_inside) == 0);
	read_unlock(&t_rw);
	flag_set(&rw.done);
	return NULL;
}

static void test_rwlock_write_needbreak(void **state)
{
	pthread_t tid;

	(void)state;
	memset(&rw.done, 0, sizeof(rw.done));
	write_lock(&t_rw);
	atomic_store(&rw.writer_inside, 1);
	assert_false(cond_resched_rwlock_write(&t_rw));
	tid = start_thread("reader", rw_blocking_reader, NULL);
	WAIT_UNTIL(rwlock_needbreak(&t_rw));
	assert_false(flag_is_set(&rw.done));
	atomic_store(&rw.writer_inside, 0);
	assert_true(cond_resched_rwlock_write(&t_rw));
	atomic_store(&rw.writer_inside, 1);
	atomic_store(&rw.writer_inside, 0);
	write_unlock(&t_rw);
	join_thread(tid);
	assert_true(flag_is_set(&rw.done));
	assert_no_thread_failures();
}

/* Readers and writers hammering the lock: writers always alone. */
static void *rw_mixed(void *arg)
{
	long id = (long)(intptr_t)arg;

	for (long i = 0; i < SCALE(20000); i++) {
		if ((i + id) % 8 == 0) {
			write_lock(&t_rw);
			T_CHECK(atomic_fetch_add(&rw.writer_inside, 1) == 0);
			T_CHECK(atomic_load(&rw.readers_inside) == 0);
			atomic_fetch_sub(&rw.writer_inside, 1);
			cond_resched_rwlock_write(&t_rw);
			write_unlock(&t_rw);
		} else {
			read_lock(&t_rw);
			atomic_fetch_add(&rw.readers_inside, 1);
			T_CHECK(atomic_load(&rw.writer_inside) == 0);
			atomic_fetch_sub(&rw.readers_inside, 1);
			cond_resched_rwlock_read(&t_rw);
			read_unlock(&t_rw);
		}
	}
	return NULL;
}

static void test_rwlock_mixed(void **state)
{
	pthread_t tids[6];

	(void)state;
	for (long i = 0; i < 6; i++)
		tids[i] = start_thread("rw", rw_mixed, (void *)(intptr_t)i);
	join_threads(tids, 6);
	assert_no_thread_failures();
}

/* ---- rw_semaphore ------------------------------------------------------ */

static struct {
	struct flag c_tried;
	_Atomic int c_trylock;
	_Atomic int seq, b_order, c_order;
} fair;

static void *sem_writer_b(void *arg)
{
	(void)arg;
	down_write(&t_sem);
	atomic_store(&fair.b_order, atomic_fetch_add(&fair.seq, 1) + 1);
	up_write(&t_sem);
	return NULL;
}

static void *sem_reader_c(void *arg)
{
	(void)arg;
	bool ok = down_read_trylock(&t_sem);

	atomic_store(&fair.c_trylock, ok);
	if (ok)
		up_read(&t_sem);
	flag_set(&fair.c_tried);
	down_read(&t_sem);
	atomic_store(&fair.c_order, atomic_fetch_add(&fair.seq, 1) + 1);
	up_read(&t_sem);
	return NULL;
}

/*
 * Reader A (this thread) holds the semaphore; writer B queues; a new reader
 * C cannot get in, not even by trylock, and when A leaves B goes first.
 */
static void test_rwsem_fair(void **state)
{
	pthread_t b, c;

	(void)state;
	memset(&fair, 0, sizeof(fair));
	down_read(&t_sem);
	assert_true(rwsem_is_locked(&t_sem));
	b = start_thread("writer-B", sem_writer_b, NULL);
	WAIT_UNTIL(rwsem_writers_waiting(&t_sem) == 1);
	c = start_thread("reader-C", sem_reader_c, NULL);
	flag_wait(&fair.c_tried);
	assert_false(atomic_load(&fair.c_trylock));
	assert_int_equal(atomic_load(&fair.b_order), 0);
	up_read(&t_sem);
	join_thread(b);
	join_thread(c);
	assert_int_equal(atomic_load(&fair.b_order), 1);
	assert_int_equal(atomic_load(&fair.c_order), 2);
	assert_false(rwsem_is_locked(&t_sem));
	assert_int_equal(rwsem_writers_waiting(&t_sem), 0);
}

static void *sem_try_read(void *arg)
{
	(void)arg;
	bool ok = down_read_trylock(&t_sem);

	if (ok)
		up_read(&t_sem);
	return (void *)(intptr_t)ok;
}

static void *sem_try_write(void *arg)
{
	(void)arg;
	bool ok = down_write_trylock(&t_sem);

	if (ok)
		up_write(&t_sem);
	return (void *)(intptr_t)ok;
}

static bool sem_try_in_thread(void *(*fn)(void *))
{
	pthread_t tid = start_thread("try", fn, NULL);
	void *ret;

	assert_int_equal(pthread_join(tid, &ret), 0);
	return (intptr_t)ret != 0;
}

static void test_rwsem_trylock_downgrade(void **state)
{
	(void)state;
	assert_true(down_write_trylock(&t_sem));
	assert_false(sem_try_in_thread(sem_try_read));
	assert_false(sem_try_in_thread(sem_try_write));
	downgrade_write(&t_sem);
	assert_true(rwsem_is_locked(&t_sem));
	assert_true(sem_try_in_thread(sem_try_read));	/* readers share now */
	assert_false(sem_try_in_thread(sem_try_write));
	up_read(&t_sem);
	assert_false(rwsem_is_locked(&t_sem));

	assert_true(down_read_trylock(&t_sem));
	assert_true(sem_try_in_thread(sem_try_read));
	assert_false(sem_try_in_thread(sem_try_write));
	up_read(&t_sem);
	assert_true(sem_try_in_thread(sem_try_write));
}

static struct {
	unsigned long counter;		/* under t_sem for write */
	_Atomic int readers, writers;
} semx;

static void *sem_mixed(void *arg)
{
	long id = (long)(intptr_t)arg;

	for (long i = 0; i < SCALE(10000); i++) {
		if ((i + id) % 4 == 0) {
			down_write(&t_sem);
			T_CHECK(atomic_fetch_add(&semx.writers, 1) == 0);
			T_CHECK(atomic_load(&semx.readers) == 0);
			semx.counter++;
			atomic_fetch_sub(&semx.writers, 1);
			up_write(&t_sem);
		} else {
			down_read(&t_sem);
			atomic_fetch_add(&semx.readers, 1);
			T_CHECK(atomic_load(&semx.writers) == 0);
			atomic_fetch_sub(&semx.readers, 1);
			up_read(&t_sem);
		}
	}
	return NULL;
}

static void test_rwsem_mixed(void **state)
{
	pthread_t tids[6];

	(void)state;
	semx.counter = 0;
	for (long i = 0; i < 6; i++)
		tids[i] = start_thread("sem", sem_mixed, (void *)(intptr_t)i);
	join_threads(tids, 6);
	assert_no_thread_failures();
	assert_int_equal(semx.counter, 6 * SCALE(10000) / 4);
}

#if UKVM_RACE_POINTS
/*
 * A reader whose fetch-and-add found a writer bit takes its bias back; if
 * the reader that held the lock left in between, that bias was the last
 * one, and the reader backing out must wake the queued writer: the one
 * that left saw a reader still counted and signalled nobody.
 */
static struct {
	_Atomic bool hold, held, release, writer_in;
} bo;

static void backout_hook(enum ukvm_race_point rp, void *arg)
{
	(void)arg;
	if (rp == RP_RWSEM_READER_BACKING_OUT && atomic_exchange(&bo.hold, false)) {
		atomic_store(&bo.held, true);
		while (!atomic_load(&bo.release))
			usleep(100);
	}
}

static void *bo_writer(void *arg)
{
	(void)arg;
	down_write(&t_sem);
	atomic_store(&bo.writer_in, true);
	up_write(&t_sem);
	return NULL;
}

static void *bo_reader(void *arg)
{
	(void)arg;
	down_read(&t_sem);
	/* Behind the writer: it went first. */
	T_CHECK(atomic_load(&bo.writer_in));
	up_read(&t_sem);
	return NULL;
}

static void test_rwsem_backing_out_reader_wakes_writer(void **state)
{
	pthread_t w, r;
	bool woken = false;

	(void)state;
	memset(&bo, 0, sizeof(bo));
	down_read(&t_sem);
	w = start_thread("writer", bo_writer, NULL);
	WAIT_UNTIL(rwsem_writers_waiting(&t_sem) == 1);
	atomic_store(&bo.hold, true);
	ukvm_race_arm(backout_hook, NULL);
	r = start_thread("reader", bo_reader, NULL);
	WAIT_UNTIL(atomic_load(&bo.held));
	/* The reader's bias is still in the count: this wakes nobody. */
	up_read(&t_sem);
	atomic_store(&bo.release, true);
	/* Nothing else wakes the writer: a lost wake-up leaves it asleep. */
	for (int ms = 0; ms < 10000 && !woken; ms++) {
		woken = atomic_load(&bo.writer_in);
		if (!woken)
			usleep(1000);
	}
	ukvm_race_disarm();
	if (!woken) {
		fprintf(stderr, "# the queued writer was never woken\n");
		/* Wake it anyway, so that the test can end and say so. */
		pthread_mutex_lock(&t_sem.mu);
		pthread_cond_signal(&t_sem.writers_cv);
		pthread_mutex_unlock(&t_sem.mu);
	}
	join_thread(w);
	join_thread(r);
	assert_true(woken);
	assert_false(rwsem_is_locked(&t_sem));
	assert_int_equal(rwsem_writers_waiting(&t_sem), 0);
	assert_no_thread_failures();
}
#endif

/* ---- cpu_hotplug_lock -------------------------------------------------- */

static struct {
	struct flag writer_in;
	_Atomic int writer_done;
} hp;

static void *hp_writer(void *arg)
{
	(void)arg;
	cpus_write_lock();
	flag_set(&hp.writer_in);
	atomic_store(&hp.writer_done, 1);
	cpus_write_unlock();
	return NULL;
}

static void *hp_try_read(void *arg)
{
	(void)arg;
	bool ok = cpus_read_trylock();

	if (ok)
		cpus_read_unlock();
	return (void *)(intptr_t)ok;
}

static bool hp_try_read_in_thread(void)
{
	pthread_t tid = start_thread("cpus-read", hp_try_read, NULL);
	void *ret;

	assert_int_equal(pthread_join(tid, &ret), 0);
	return (intptr_t)ret != 0;
}

static void test_cpu_hotplug_lock(void **state)
{
	pthread_t w;

	(void)state;
	memset(&hp, 0, sizeof(hp));
	cpus_read_lock();
	lockdep_assert_cpus_held();
	assert_true(hp_try_read_in_thread());		/* readers share */
	w = start_thread("hotplug", hp_writer, NULL);
	WAIT_UNTIL(rwsem_writers_waiting(&cpu_hotplug_lock) == 1);
	assert_false(flag_is_set(&hp.writer_in));
	assert_false(hp_try_read_in_thread());		/* behind the writer */
	cpus_read_unlock();
	join_thread(w);
	assert_int_equal(atomic_load(&hp.writer_done), 1);
	assert_true(hp_try_read_in_thread());
	assert_false(rwsem_is_locked(&cpu_hotplug_lock));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rwlock_shared_exclusive),
		cmocka_unit_test(test_rwlock_needbreak),
		cmocka_unit_test(test_rwlock_write_needbreak),
		cmocka_unit_test(test_rwlock_mixed),
		cmocka_unit_test(test_rwsem_fair),
		cmocka_unit_test(test_rwsem_trylock_downgrade),
		cmocka_unit_test(test_rwsem_mixed),
#if UKVM_RACE_POINTS
		cmocka_unit_test(test_rwsem_backing_out_reader_wakes_writer),
#endif
		cmocka_unit_test(test_cpu_hotplug_lock),
	};
	int r;

	sync_test_group_setup(NULL);
	rwlock_init(&t_rw);
	init_rwsem(&t_sem);
	r = cmocka_run_group_tests_name("sync_rw", tests, NULL, NULL);
	rwlock_destroy(&t_rw);
	sync_test_group_teardown(NULL);
	return r;
}
