// SPDX-License-Identifier: MIT
/*
 * `ukvm run`: dirty-log rounds and the memslot-churn thread.
 *
 * A round is what tests/mmu/test_mmu_stress.c does: close the guests'
 * round window, GET_DIRTY_LOG every guest slot (and CLEAR_DIRTY_LOG what it
 * returned, with manual protect), hand each log to the guest checker, then
 * ask the checker for writes completed before the round closed that no log
 * since their start contains.  Only one thread runs rounds: the migration
 * thread with --migrate, the memslot-churn thread otherwise.  With
 * --dirty-ring a round is the ring collector's (run_ring.c): the same
 * checks, from ring entries.
 *
 * The memslot-churn thread also owns a spare memslot that no guest touches,
 * over host memory of its own, and puts it through every kind of change:
 * create, move, flags only (dirty logging), delete.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host/host.h"
#include "kvm/kvm_host.h"
#include "run.h"

#define SPARE_SIZE	PMD_SIZE
#define SPARE_GPA_A	(1ULL << 30)
#define SPARE_GPA_B	(2ULL << 30)
#define LOG_ROUNDS	8	/* rounds per logging period */

unsigned long *run_bitmap_alloc(struct run *r)
{
	return calloc((size_t)(r->slots[0].npages + 63) / 64, sizeof(unsigned long));
}

static unsigned long popcount_bitmap(const unsigned long *b, uint64_t npages)
{
	unsigned long n = 0;

	for (uint64_t i = 0; i < (npages + 63) / 64; i++)
		n += (unsigned long)__builtin_popcountl(b[i]);
	return n;
}

void run_dirty_tracking_begin(struct run *r)
{
	if (r->ring)
		run_ring_tracking_begin(r);
	else
		guest_dirty_tracking_begin(r->w);
}

long run_dirty_round(struct run *r, unsigned long *bitmap, run_dirty_fn fn, void *arg)
{
	uint32_t round;
	unsigned long dirty = 0;

	if (r->ring)
		return run_ring_round(r, bitmap, fn, arg);
	round = guest_dirty_round_close(r->w);

	for (int s = 0; s < r->nr_slots; s++) {
		const struct run_slot *sl = &r->slots[s];
		struct kvm_dirty_log log = { .slot = (uint32_t)s, .dirty_bitmap = bitmap };
		int ret;

		memset(bitmap, 0, (size_t)(sl->npages + 63) / 64 * sizeof(*bitmap));
		ret = ukvm_get_dirty_log(r->kvm, &log);
		if (ret) {
			run_unexpected(r, "GET_DIRTY_LOG", ret);
			return ret;
		}
		guest_dirty_log_record(r->w, sl->gpa >> PAGE_SHIFT, bitmap, sl->npages, round);
		if (r->o.manual_protect) {
			struct kvm_clear_dirty_log clr = {
				.slot = (uint32_t)s, .num_pages = (uint32_t)sl->npages,
				.dirty_bitmap = bitmap,
			};

			ret = ukvm_clear_dirty_log(r->kvm, &clr);
			if (ret) {
				run_unexpected(r, "CLEAR_DIRTY_LOG", ret);
				return ret;
			}
		}
		dirty += popcount_bitmap(bitmap, sl->npages);
		if (fn)
			fn(r, s, bitmap, arg);
	}
	/* The checker counts what it finds in its stats (missed_dirty). */
	guest_dirty_check(r->w, round);
	run_count(r, RC_LOG_ROUNDS, 1);
	run_count(r, RC_LOG_PAGES, dirty);
	return (long)dirty;
}

/* ---- the spare memslot ---- */

struct spare {
	struct run *r;
	int id;
	unsigned long hva;
	bool present, logging;
	uint64_t gpa;
};

static int spare_set(struct spare *sp, uint64_t gpa, uint64_t size, bool logging)
{
	struct kvm_userspace_memory_region mem = {
		.slot = (uint32_t)sp->id,
		.flags = logging ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = sp->hva,
	};

	return ukvm_set_user_memory_region(sp->r->kvm, &mem);
}

/* One change of the spare slot: the next in create, move, flags, delete. */
static void spare_step(struct spare *sp, uint64_t *rng)
{
	struct run *r = sp->r;
	enum run_counter what;
	int ret;

	if (!sp->present) {
		sp->gpa = run_rand(rng) & 1 ? SPARE_GPA_A : SPARE_GPA_B;
		sp->logging = run_rand(rng) & 1;
		ret = spare_set(sp, sp->gpa, SPARE_SIZE, sp->logging);
		what = RC_SPARE_CREATE;
		sp->present = !ret;
	} else {
		switch (run_rand(rng) % 4) {
		case 0:
			sp->gpa = sp->gpa == SPARE_GPA_A ? SPARE_GPA_B : SPARE_GPA_A;
			ret = spare_set(sp, sp->gpa, SPARE_SIZE, sp->logging);
			what = RC_SPARE_MOVE;
			break;
		case 1:
		case 2:
			ret = spare_set(sp, sp->gpa, SPARE_SIZE, !sp->logging);
			if (!ret)
				sp->logging = !sp->logging;
			what = RC_SPARE_FLAGS;
			break;
		default:
			ret = spare_set(sp, sp->gpa, 0, false);
			what = RC_SPARE_DELETE;
			sp->present = ret != 0;
			break;
		}
	}
	if (ret)
		run_unexpected(r, "spare memslot update", ret);
	else
		run_count(r, what, 1);
}

/* Logging on, LOG_ROUNDS rounds (a spare-slot change before each), off. */
static void logging_period(struct run *r, struct spare *sp, unsigned long *bitmap,
			   uint64_t *rng)
{
	if (run_set_logging(r, true))
		return;
	run_dirty_tracking_begin(r);
	for (int i = 0; i < LOG_ROUNDS; i++) {
		spare_step(sp, rng);
		run_sleep_us(r->o.churn_delay_us);
		if (run_dirty_round(r, bitmap, NULL, NULL) < 0)
			break;
		/* At the end, one last round after the vCPUs have stopped. */
		if (atomic_load(&r->stop_churn)) {
			run_dirty_round(r, bitmap, NULL, NULL);
			break;
		}
	}
	guest_dirty_tracking_end(r->w);
	run_set_logging(r, false);
}

void *run_memslot_thread(void *arg)
{
	struct run *r = arg;
	struct spare sp = { .r = r, .id = r->nr_slots };
	uint64_t rng = r->o.seed * 0x9E3779B97F4A7C15ULL + 101;
	unsigned long *bitmap = NULL;

	sp.hva = host_mmap(host_current_mm, SPARE_SIZE,
			   VM_READ | VM_WRITE | (r->o.huge ? VM_THP : 0));
	if (IS_ERR_HVA(sp.hva)) {
		run_unexpected(r, "spare memslot mmap", (int)(long)sp.hva);
		return NULL;
	}
	if (!r->o.migrate) {
		bitmap = run_bitmap_alloc(r);
		if (!bitmap) {
			run_unexpected(r, "dirty bitmap", -ENOMEM);
			return NULL;
		}
	}
	do {
		if (bitmap) {
			logging_period(r, &sp, bitmap, &rng);
		} else {
			spare_step(&sp, &rng);
			run_sleep_us(r->o.churn_delay_us);
		}
	} while (!atomic_load(&r->stop_churn));

	if (sp.present) {
		int ret = spare_set(&sp, sp.gpa, 0, false);

		if (ret)
			run_unexpected(r, "spare memslot delete", ret);
	}
	host_munmap(host_current_mm, sp.hva, SPARE_SIZE);
	free(bitmap);
	return NULL;
}
