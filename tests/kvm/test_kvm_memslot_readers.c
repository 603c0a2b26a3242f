// SPDX-License-Identifier: MIT
/*
 * Memslot updates with readers running (kvm-brief.md 2.6, Appendix B 6-7):
 *  - inside one kvm->srcu read section the set a reader sees is consistent
 *    (id hash, gfn tree and hva tree agree) and does not change;
 *  - after an update returns, no reader that starts afterwards sees the
 *    old set (its generation is at least the one published);
 *  - generations only grow, and the active set never keeps IN_PROGRESS.
 */
#include <errno.h>
#include <stdlib.h>

#include "kvm_test.h"

#define HVA_BASE 0x7f0000000000UL

struct shared {
	struct kvm *kvm;
	_Atomic uint64_t min_gen;	/* generation every later reader must see */
	_Atomic bool stop;
	_Atomic unsigned long sections, invalid_seen;
};

/* A checksum of a set; also verifies that its three indexes agree. */
static uint64_t scan_set(struct kvm_memslots *slots, unsigned long *invalid)
{
	struct kvm_memory_slot *s;
	uint64_t sum = 0;

	kvm_for_each_memslot(s, slots) {
		struct kvm_memory_slot *h;
		bool in_hva = false;

		T_CHECK(id_to_memslot(slots, s->id) == s);
		T_CHECK(search_memslots(slots, s->base_gfn + s->npages / 2, false) == s);
		kvm_for_each_memslot_in_hva_range(h, slots, s->userspace_addr,
						  s->userspace_addr)
			in_hva |= h == s;
		T_CHECK(in_hva);
		if (s->flags & KVM_MEMSLOT_INVALID)
			(*invalid)++;
		sum = sum * 31 + (uint64_t)s->id * 1000003 + s->base_gfn * 7 +
		      s->npages + s->flags;
	}
	return sum;
}

static void *reader_fn(void *arg)
{
	struct shared *sh = arg;
	struct kvm *kvm = sh->kvm;

	while (!atomic_load(&sh->stop)) {
		uint64_t min = atomic_load_explicit(&sh->min_gen, memory_order_acquire);
		unsigned long inv = 0;
		int idx = srcu_read_lock(&kvm->srcu);
		struct kvm_memslots *slots = kvm_memslots(kvm);
		uint64_t gen = kvm_memslots_gen(slots) & ~KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS;
		uint64_t a, b;

		/* Appendix B 6: an update that returned is visible to us. */
		T_CHECK(gen >= min);
		a = scan_set(slots, &inv);
		sched_yield();		/* give the writer a chance to misbehave */
		b = scan_set(slots, &inv);
		T_CHECK(a == b);	/* nobody edited a set we can reach */
		srcu_read_unlock(&kvm->srcu, idx);
		atomic_fetch_add(&sh->sections, 1);
		atomic_fetch_add(&sh->invalid_seen, inv);
	}
	return NULL;
}

static void publish_gen(struct shared *sh)
{
	uint64_t gen;

	mutex_lock(&sh->kvm->slots_lock);
	gen = kvm_memslots_gen(kvm_memslots(sh->kvm));
	mutex_unlock(&sh->kvm->slots_lock);
	/* Appendix B 7: final generations never carry IN_PROGRESS, and grow. */
	assert_false(gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS);
	assert_true(gen >= atomic_load(&sh->min_gen));
	atomic_store_explicit(&sh->min_gen, gen, memory_order_release);
}

static void test_updates_with_readers(void **state)
{
	struct shared sh = { .kvm = kt_create_vm() };
	unsigned int seed = 42;
	pthread_t readers[3];

	(void)state;
	for (int i = 0; i < 3; i++)
		readers[i] = start_thread("srcu-reader", reader_fn, &sh);

	for (int iter = 0; iter < SCALE(2000); iter++) {
		uint32_t id = (uint32_t)(rand_r(&seed) % 16);
		uint64_t base = (uint64_t)id * 64 + (rand_r(&seed) % 2 ? 2048 : 0);
		uint32_t flags = rand_r(&seed) % 2 ? KVM_MEM_LOG_DIRTY_PAGES : 0;
		int r;

		switch (rand_r(&seed) % 4) {
		case 0:		/* create or move */
		case 1:
			r = kt_set_region(sh.kvm, id, flags, base << 12, 16 << 12,
					  HVA_BASE + ((uint64_t)id << 20));
			assert_true(r == 0 || r == -EEXIST || r == -EINVAL);
			break;
		case 2:		/* flags only */
			r = kt_set_region(sh.kvm, id, flags, (uint64_t)id * 64 << 12,
					  16 << 12, HVA_BASE + ((uint64_t)id << 20));
			assert_true(r == 0 || r == -EEXIST || r == -EINVAL);
			break;
		default:	/* delete */
			r = kt_set_region(sh.kvm, id, 0, 0, 0, 0);
			assert_true(r == 0 || r == -EINVAL);
			break;
		}
		publish_gen(&sh);
		/*
		 * Every 100 updates, wait for a reader to finish a section:
		 * readers and updates interleave however the threads are
		 * scheduled (a busy machine could run all updates first).
		 */
		if (iter % 100 == 99) {
			unsigned long done = atomic_load(&sh.sections);

			WAIT_UNTIL(atomic_load(&sh.sections) > done);
		}
	}
	atomic_store(&sh.stop, true);
	for (int i = 0; i < 3; i++)
		join_thread(readers[i]);

	/* The readers did run concurrently with the updates. */
	assert_true(atomic_load(&sh.sections) >= (unsigned long)SCALE(2000) / 100);
	kt_assert_sets_consistent(sh.kvm);
	ukvm_destroy_vm(sh.kvm);
	assert_nothing_reported();
}

/* A reader inside kvm->srcu holds back the swap's grace period. */
struct holder {
	struct kvm *kvm;
	struct flag inside, release, done;
	struct kvm_memslots *seen;
};

static void *holder_fn(void *arg)
{
	struct holder *h = arg;
	int idx = srcu_read_lock(&h->kvm->srcu);

	h->seen = kvm_memslots(h->kvm);
	flag_set(&h->inside);
	flag_wait(&h->release);
	/*
	 * A new set with slot 5 is published by now, but the one we hold must
	 * not have been edited: the writer waits for us before catching it up.
	 */
	T_CHECK(kvm_memslots(h->kvm) != h->seen);
	T_CHECK(id_to_memslot(kvm_memslots(h->kvm), 5) != NULL);
	T_CHECK(id_to_memslot(h->seen, 5) == NULL);
	srcu_read_unlock(&h->kvm->srcu, idx);
	return NULL;
}

struct updater {
	struct kvm *kvm;
	struct flag done;
};

static void *updater_fn(void *arg)
{
	struct updater *u = arg;

	T_CHECK(kt_set_region(u->kvm, 5, 0, 1ULL << 30, 1 << 20, HVA_BASE) == 0);
	flag_set(&u->done);
	return NULL;
}

static void test_swap_waits_for_readers(void **state)
{
	struct holder h = { .kvm = kt_create_vm() };
	struct updater u = { .kvm = h.kvm };
	pthread_t th, tu;

	(void)state;
	th = start_thread("srcu-holder", holder_fn, &h);
	flag_wait(&h.inside);
	tu = start_thread("memslot-writer", updater_fn, &u);
	/* The new set gets published, but the update cannot return yet. */
	WAIT_UNTIL(kvm_memslots_gen(__atomic_load_n(&h.kvm->memslots[0],
			__ATOMIC_ACQUIRE)) & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS);
	for (int i = 0; i < 1000; i++) {
		assert_false(flag_is_set(&u.done));
		sched_yield();
	}
	flag_set(&h.release);
	join_thread(th);
	flag_wait(&u.done);
	join_thread(tu);
	ukvm_destroy_vm(h.kvm);
	assert_nothing_reported();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_updates_with_readers),
		cmocka_unit_test(test_swap_waits_for_readers),
	};

	return cmocka_run_group_tests_name("kvm_memslot_readers", tests,
					   kt_group_setup, kt_group_teardown);
}
