// SPDX-License-Identifier: MIT
/*
 * RCU wrappers over liburcu: a reader holds up synchronize_rcu() and
 * call_rcu() callbacks, rcu_barrier() waits for callbacks, the
 * use-after-free torture (synchronize + free and call_rcu-free), and the
 * RCU list helpers under concurrent readers.
 */
#include <stdlib.h>

#include "sync_test.h"

/* ---- a reader holding RCU, driven by the test thread ------------------- */

static struct {
	struct flag inside, release;
} holder;

static void *holder_fn(void *arg)
{
	(void)arg;
	ukvm_rcu_read_lock();
	flag_set(&holder.inside);
	flag_wait(&holder.release);
	ukvm_rcu_read_unlock();
	return NULL;
}

static struct flag sync_done;

static void *syncer_fn(void *arg)
{
	(void)arg;
	ukvm_synchronize_rcu();
	flag_set(&sync_done);
	return NULL;
}

struct cb_obj {
	struct rcu_head head;
	_Atomic int *counter;
};

static void cb_count_and_free(struct rcu_head *head)
{
	struct cb_obj *o = caa_container_of(head, struct cb_obj, head);

	atomic_fetch_add(o->counter, 1);
	free(o);
}

static void queue_cb(_Atomic int *counter)
{
	struct cb_obj *o = malloc(sizeof(*o));

	assert_non_null(o);
	o->counter = counter;
	ukvm_call_rcu(&o->head, cb_count_and_free);
}

static void test_registered(void **state)
{
	(void)state;
	assert_true(ukvm_rcu_thread_registered());
	ukvm_rcu_read_lock();
	assert_true(ukvm_rcu_read_lock_held());
	ukvm_rcu_read_lock();		/* readers nest */
	ukvm_rcu_read_unlock();
	ukvm_rcu_read_unlock();
	ukvm_synchronize_rcu();
}

/*
 * While a reader is inside, neither synchronize_rcu() nor a call_rcu()
 * callback may complete.  "Not yet" is checked after the grace period has
 * had every chance to run (the other threads yielded to many times): the
 * check can be weak, never wrong.
 */
static void test_reader_holds_grace_period(void **state)
{
	_Atomic int ran = 0;
	pthread_t reader, syncer;

	(void)state;
	memset(&holder, 0, sizeof(holder));
	memset(&sync_done, 0, sizeof(sync_done));
	reader = start_thread("reader", holder_fn, NULL);
	flag_wait(&holder.inside);
	syncer = start_thread("syncer", syncer_fn, NULL);
	queue_cb(&ran);
	for (int i = 0; i < 1000; i++)
		sched_yield();
	assert_false(flag_is_set(&sync_done));
	assert_int_equal(atomic_load(&ran), 0);
	flag_set(&holder.release);
	join_thread(reader);
	join_thread(syncer);
	assert_true(flag_is_set(&sync_done));
	ukvm_rcu_barrier();
	assert_int_equal(atomic_load(&ran), 1);
}

static void test_barrier_waits_for_callbacks(void **state)
{
	_Atomic int ran = 0;
	int n = SCALE(2000);

	(void)state;
	for (int i = 0; i < n; i++)
		queue_cb(&ran);
	ukvm_rcu_barrier();
	assert_int_equal(atomic_load(&ran), n);
}

/* ---- use-after-free torture -------------------------------------------- */

#define NR_READERS 4
#define NR_WRITERS 2

static int uaf_read_lock(void)
{
	ukvm_rcu_read_lock();
	return 0;
}

static void uaf_read_unlock(int idx)
{
	(void)idx;
	ukvm_rcu_read_unlock();
}

static struct uaf_obj *uaf_deref(struct uaf_obj **pp)
{
	return ukvm_rcu_dereference(*pp);
}

static void uaf_free_cb(struct rcu_head *head)
{
	uaf_obj_poison_free(caa_container_of(head, struct uaf_obj, head));
}

/* Writer 0 frees after ukvm_synchronize_rcu(), writer 1 through call_rcu. */
static void uaf_retire(struct uaf_obj *old, long id, long i)
{
	(void)i;
	if (id == 0) {
		ukvm_synchronize_rcu();
		uaf_obj_poison_free(old);
	} else {
		ukvm_call_rcu(&old->head, uaf_free_cb);
	}
}

static void test_free_after_sync_never_seen(void **state)
{
	static const struct uaf_ops ops = {
		.enter = uaf_read_lock, .leave = uaf_read_unlock,
		.deref = uaf_deref, .retire = uaf_retire,
	};
	struct uaf_result res;

	(void)state;
	uaf_torture(&ops, NR_READERS, NR_WRITERS, SCALE(2000), &res);
	ukvm_rcu_barrier();
}

/* ---- RCU list ---------------------------------------------------------- */

#define LIST_MAGIC 0x5ca1ab1eUL

struct item {
	unsigned long magic;	/* LIST_MAGIC while on the list */
	long key;
	struct cds_list_head node;
	struct rcu_head head;
};

static struct {
	struct cds_list_head list;
	struct mutex lock;	/* writers */
	long nr;		/* items on the list, under lock */
	_Atomic int stop;
} rl;

static void item_free(struct rcu_head *head)
{
	struct item *it = caa_container_of(head, struct item, head);

	it->magic = UAF_POISON;
	free(it);
}

static void *list_reader(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&rl.stop, memory_order_relaxed)) {
		struct item *it;
		long n = 0, prev = -1;

		ukvm_rcu_read_lock();
		ukvm_list_for_each_entry_rcu(it, &rl.list, node) {
			T_CHECK(it->magic == LIST_MAGIC);
			T_CHECK(it->key > prev);	/* kept sorted */
			prev = it->key;
			n++;
		}
		ukvm_rcu_read_unlock();
		T_CHECK(n <= 64);
	}
	return NULL;
}

/* Insert keys in order (before the first larger key); delete at random. */
static void *list_writer(void *arg)
{
	unsigned int seed = (unsigned int)(intptr_t)arg;

	for (long i = 0; i < SCALE(5000); i++) {
		long key = rand_r(&seed) % 64;
		struct item *it, *found = NULL;
		struct cds_list_head *pos = &rl.list;

		mutex_lock(&rl.lock);
		cds_list_for_each_entry(it, &rl.list, node) {
			if (it->key >= key) {
				if (it->key == key)
					found = it;
				pos = &it->node;
				break;
			}
		}
		if (found) {
			ukvm_list_del_rcu(&found->node);
			rl.nr--;
			mutex_unlock(&rl.lock);
			if (i & 1) {
				ukvm_call_rcu(&found->head, item_free);
			} else {
				ukvm_synchronize_rcu();
				item_free(&found->head);
			}
			continue;
		}
		it = malloc(sizeof(*it));
		T_CHECK(it != NULL);
		if (it) {
			it->magic = LIST_MAGIC;
			it->key = key;
			/* Before pos: after pos's predecessor. */
			ukvm_list_add_rcu(&it->node, pos->prev);
			rl.nr++;
		}
		mutex_unlock(&rl.lock);
	}
	return NULL;
}

static void test_rcu_list(void **state)
{
	pthread_t readers[3], writers[2];
	struct item *it, *tmp;
	long n = 0;

	(void)state;
	CDS_INIT_LIST_HEAD(&rl.list);
	mutex_init(&rl.lock);
	start_threads(readers, 3, "list-reader", list_reader, NULL, 0);
	for (long i = 0; i < 2; i++)
		writers[i] = start_thread("list-writer", list_writer,
					  (void *)(intptr_t)(i + 1));
	join_threads(writers, 2);
	atomic_store(&rl.stop, 1);
	join_threads(readers, 3);
	ukvm_rcu_barrier();
	assert_no_thread_failures();
	mutex_lock(&rl.lock);
	cds_list_for_each_entry_safe(it, tmp, &rl.list, node) {
		cds_list_del(&it->node);
		free(it);
		n++;
	}
	assert_int_equal(n, rl.nr);
	mutex_unlock(&rl.lock);
	mutex_destroy(&rl.lock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registered),
		cmocka_unit_test(test_reader_holds_grace_period),
		cmocka_unit_test(test_barrier_waits_for_callbacks),
		cmocka_unit_test(test_free_after_sync_never_seen),
		cmocka_unit_test(test_rcu_list),
	};
	int r;

	sync_test_group_setup(NULL);
	r = cmocka_run_group_tests_name("sync_rcu", tests, NULL, NULL);
	sync_test_group_teardown(NULL);
	return r;
}
