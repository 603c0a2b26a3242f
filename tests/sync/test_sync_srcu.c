// SPDX-License-Identifier: MIT
/*
 * SRCU: independent domains, a pre-existing reader blocks a grace period
 * (normal and expedited), grace-period sleeping and wake-up, cleanup with a
 * reader inside, and the use-after-free torture: readers dereference a
 * pointer that writers replace, synchronize, poison and free (run under
 * ASan and TSan in `make test`).
 */
#include <errno.h>
#include <stdlib.h>

#include "sync_test.h"

static struct srcu_struct srcu_a, srcu_b;

static int srcu_setup(void **state)
{
	(void)state;
	assert_int_equal(init_srcu_struct(&srcu_a), 0);
	assert_int_equal(init_srcu_struct(&srcu_b), 0);
	return 0;
}

static int srcu_teardown(void **state)
{
	(void)state;
	assert_int_equal(cleanup_srcu_struct(&srcu_a), 0);
	assert_int_equal(cleanup_srcu_struct(&srcu_b), 0);
	return 0;
}

/* ---- a reader holding a domain, driven by the test thread -------------- */

struct holder {
	struct srcu_struct *ssp;
	struct flag inside, release;
};

static void *holder_fn(void *arg)
{
	struct holder *h = arg;
	int idx = srcu_read_lock(h->ssp);

	flag_set(&h->inside);
	flag_wait(&h->release);
	srcu_read_unlock(h->ssp, idx);
	return NULL;
}

struct syncer {
	struct srcu_struct *ssp;
	bool expedited;
	struct flag done;
};

static void *syncer_fn(void *arg)
{
	struct syncer *s = arg;

	if (s->expedited)
		synchronize_srcu_expedited(s->ssp);
	else
		synchronize_srcu(s->ssp);
	flag_set(&s->done);
	return NULL;
}

static void test_read_lock_basic(void **state)
{
	int i1, i2;

	(void)state;
	assert_int_equal(srcu_readers_active(&srcu_a), 0);
	i1 = srcu_read_lock(&srcu_a);
	i2 = srcu_read_lock(&srcu_a);		/* readers nest */
	assert_true(i1 == 0 || i1 == 1);
	assert_int_equal(i1, i2);
	assert_true(srcu_read_lock_held(&srcu_a));
	assert_int_equal(srcu_readers_active(&srcu_a), 2);
	srcu_read_unlock(&srcu_a, i2);
	srcu_read_unlock(&srcu_a, i1);
	assert_int_equal(srcu_readers_active(&srcu_a), 0);
	synchronize_srcu(&srcu_a);
	synchronize_srcu_expedited(&srcu_a);
	/* Each grace period flips the index new readers use. */
	i2 = srcu_read_lock(&srcu_a);
	srcu_read_unlock(&srcu_a, i2);
	assert_int_equal(i1, i2);
	synchronize_srcu(&srcu_a);
	i2 = srcu_read_lock(&srcu_a);
	srcu_read_unlock(&srcu_a, i2);
	assert_int_not_equal(i1, i2);
}

/* A grace period of domain A does not wait for a reader of domain B. */
static void test_independent_domains(void **state)
{
	struct holder h = { .ssp = &srcu_b };
	pthread_t tid;
	int idx;

	(void)state;
	tid = start_thread("reader-B", holder_fn, &h);
	flag_wait(&h.inside);
	synchronize_srcu(&srcu_a);
	synchronize_srcu_expedited(&srcu_a);
	/* Legal nesting: synchronize A inside a read section of B. */
	idx = srcu_read_lock(&srcu_b);
	synchronize_srcu(&srcu_a);
	synchronize_srcu_expedited(&srcu_a);
	srcu_read_unlock(&srcu_b, idx);
	assert_int_equal(srcu_readers_active(&srcu_b), 1);
	flag_set(&h.release);
	join_thread(tid);
	assert_int_equal(srcu_readers_active(&srcu_b), 0);
}

/*
 * A reader that entered before synchronize_srcu() holds it up until it
 * leaves: the grace period goes to sleep (observed through nr_gp_sleeps,
 * no timing involved) and has not returned while the reader is inside.
 */
static void run_reader_blocks_sync(bool expedited)
{
	struct holder h = { .ssp = &srcu_a };
	struct syncer s = { .ssp = &srcu_a, .expedited = expedited };
	unsigned long sleeps = atomic_load(&srcu_a.nr_gp_sleeps);
	pthread_t reader, syncer;

	reader = start_thread("reader", holder_fn, &h);
	flag_wait(&h.inside);
	syncer = start_thread("syncer", syncer_fn, &s);
	/* A broken grace period returns instead of sleeping: fail, not hang. */
	WAIT_UNTIL(atomic_load(&srcu_a.nr_gp_sleeps) > sleeps ||
		   flag_is_set(&s.done));
	assert_false(flag_is_set(&s.done));
	for (int i = 0; i < 100; i++)
		sched_yield();
	assert_false(flag_is_set(&s.done));
	flag_set(&h.release);
	join_thread(reader);
	join_thread(syncer);
	assert_true(flag_is_set(&s.done));
}

static void test_reader_blocks_sync(void **state)
{
	(void)state;
	run_reader_blocks_sync(false);
}

static void test_reader_blocks_sync_expedited(void **state)
{
	(void)state;
	run_reader_blocks_sync(true);
}

/*
 * A reader that loaded srcu_idx before a flip and incremented afterwards is
 * counted on the index that is *inactive* when the next grace period starts:
 * the first phase must wait for it.  The stale reader is simulated by
 * counting on the inactive index by hand (what srcu_read_lock() does, with
 * the index chosen), then leaving through the real srcu_read_unlock().
 */
struct stale_reader {
	int idx;
	struct flag inside, release;
};

static void *stale_reader_fn(void *arg)
{
	struct stale_reader *r = arg;

	atomic_fetch_add(__srcu_counter(&srcu_a, srcu_this_shard(), false,
					(unsigned int)r->idx), 1);
	lock_acquire(&srcu_a.dep_map, 0, 0, 2, 1, NULL, LOCKDEP_SITE);
	flag_set(&r->inside);
	flag_wait(&r->release);
	srcu_read_unlock(&srcu_a, r->idx);
	return NULL;
}

static void test_reader_on_inactive_index(void **state)
{
	struct stale_reader r = { 0 };
	struct syncer s = { .ssp = &srcu_a };
	pthread_t reader, syncer;

	(void)state;
	r.idx = (int)(atomic_load(&srcu_a.srcu_idx) & 1) ^ 1;
	reader = start_thread("stale-reader", stale_reader_fn, &r);
	flag_wait(&r.inside);
	syncer = start_thread("syncer", syncer_fn, &s);
	/* Phase one sleeps on the inactive index, i.e. on our reader. */
	WAIT_UNTIL(atomic_load(&srcu_a.gp_waiting) == r.idx + 1 ||
		   flag_is_set(&s.done));
	assert_false(flag_is_set(&s.done));
	flag_set(&r.release);
	join_thread(syncer);
	join_thread(reader);
	assert_true(flag_is_set(&s.done));
	assert_int_equal(srcu_readers_active(&srcu_a), 0);
}

/*
 * More reader threads than owned shards: the rest count on shared shards
 * with RMWs, and a grace period waits for readers of both kinds.
 */
#define NR_CROWD (SRCU_NR_OWNED_SHARDS + 8)

static struct {
	_Atomic int inside, shared, owned;
	struct flag release;
} crowd;

static void *crowd_reader(void *arg)
{
	int idx = srcu_read_lock(&srcu_a);

	(void)arg;
	if (srcu_this_shard() & SRCU_SHARD_SHARED)
		atomic_fetch_add(&crowd.shared, 1);
	else
		atomic_fetch_add(&crowd.owned, 1);
	atomic_fetch_add(&crowd.inside, 1);
	flag_wait(&crowd.release);
	srcu_read_unlock(&srcu_a, idx);
	return NULL;
}

static void test_more_threads_than_shards(void **state)
{
	static pthread_t tids[NR_CROWD];
	struct syncer s = { .ssp = &srcu_a, .expedited = true };
	unsigned long sleeps = atomic_load(&srcu_a.nr_gp_sleeps);
	pthread_t syncer;

	(void)state;
	memset(&crowd, 0, sizeof(crowd));
	start_threads(tids, NR_CROWD, "crowd", crowd_reader, NULL, 0);
	WAIT_UNTIL(atomic_load(&crowd.inside) == NR_CROWD);
	assert_int_equal(srcu_readers_active(&srcu_a), NR_CROWD);
	/* Owned shards only exist with membarrier(); then some must spill. */
	if (atomic_load(&crowd.owned))
		assert_true(atomic_load(&crowd.shared) >= NR_CROWD - SRCU_NR_OWNED_SHARDS);
	syncer = start_thread("syncer", syncer_fn, &s);
	WAIT_UNTIL(atomic_load(&srcu_a.nr_gp_sleeps) > sleeps ||
		   flag_is_set(&s.done));
	assert_false(flag_is_set(&s.done));
	flag_set(&crowd.release);
	join_threads(tids, NR_CROWD);
	join_thread(syncer);
	assert_true(flag_is_set(&s.done));
	assert_int_equal(srcu_readers_active(&srcu_a), 0);
}

static void test_cleanup_busy(void **state)
{
	struct srcu_struct tmp;
	int idx;

	(void)state;
	assert_int_equal(init_srcu_struct(&tmp), 0);
	lockdep_set_report_mode(LOCKDEP_REPORT_QUIET);
	idx = srcu_read_lock(&tmp);
	assert_int_equal(cleanup_srcu_struct(&tmp), -EBUSY);
	srcu_read_unlock(&tmp, idx);
	lockdep_set_report_mode(LOCKDEP_REPORT_CONTINUE);
	assert_int_equal(cleanup_srcu_struct(&tmp), 0);
}

/* ---- use-after-free torture -------------------------------------------- */

#define NR_READERS 4
#define NR_WRITERS 3
#define UAF_ITERS SCALE(10000)

static int uaf_read_lock(void)
{
	return srcu_read_lock(&srcu_a);
}

static void uaf_read_unlock(int idx)
{
	srcu_read_unlock(&srcu_a, idx);
}

static struct uaf_obj *uaf_deref(struct uaf_obj **pp)
{
	return srcu_dereference(*pp, &srcu_a);
}

static void uaf_retire(struct uaf_obj *old, long id, long i)
{
	if ((i + id) % 3 == 0)
		synchronize_srcu_expedited(&srcu_a);
	else
		synchronize_srcu(&srcu_a);
	uaf_obj_poison_free(old);
}

static void test_free_after_sync_never_seen(void **state)
{
	static const struct uaf_ops ops = {
		.enter = uaf_read_lock, .leave = uaf_read_unlock,
		.deref = uaf_deref, .retire = uaf_retire,
	};
	struct uaf_result res;

	(void)state;
	uaf_torture(&ops, NR_READERS, NR_WRITERS, UAF_ITERS, &res);
	assert_int_equal(res.replaced, (unsigned long)NR_WRITERS * UAF_ITERS);
	assert_int_equal(srcu_readers_active(&srcu_a), 0);
	printf("# %lu reads, %lu grace periods (%lu slept), %lu+%lu syncs\n",
	       res.reads, atomic_load(&srcu_a.gp_seq) / 2,
	       atomic_load(&srcu_a.nr_gp_sleeps), atomic_load(&srcu_a.nr_sync),
	       atomic_load(&srcu_a.nr_sync_expedited));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_lock_basic),
		cmocka_unit_test(test_independent_domains),
		cmocka_unit_test(test_reader_blocks_sync),
		cmocka_unit_test(test_reader_blocks_sync_expedited),
		cmocka_unit_test(test_reader_on_inactive_index),
		cmocka_unit_test(test_more_threads_than_shards),
		cmocka_unit_test(test_cleanup_busy),
		cmocka_unit_test(test_free_after_sync_never_seen),
	};
	int r;

	sync_test_group_setup(NULL);
	r = cmocka_run_group_tests_name("sync_srcu", tests, srcu_setup,
					srcu_teardown);
	sync_test_group_teardown(NULL);
	return r;
}
