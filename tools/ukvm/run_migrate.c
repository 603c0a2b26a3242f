// SPDX-License-Identifier: MIT
/*
 * `ukvm run --migrate`: live migration while the guests run, again and
 * again until the run ends; the last one ends it.
 *
 * One migration, as a VMM does it (pre-copy):
 *   1. dirty logging on for every guest slot, then the guest checker's
 *      tracking (so every write that starts from now on must be logged);
 *   2. copy all guest memory through the VMM's own reads (ukvm_host_read())
 *      to the destination;
 *   3. rounds: close the round, GET (+ CLEAR) each slot's log, record it in
 *      the checker, copy the dirty pages; until the dirty set is small
 *      (< max(64 pages, 1% of memory)) or the round limit.  Auto-converge
 *      (QEMU's CPU throttling, by parking): from the third round on, the
 *      vCPUs are parked for a growing share of each round's copying
 *      (50%, 75%, 90%, 95%, 99%), so that they dirty less than we copy;
 *   4. stop the vCPUs (kicked out of KVM_RUN, they park and do not enter
 *      again), a last round: the downtime set;
 *   5. compare the destination with the source byte for byte, every page;
 *   6. tracking and logging off; unless this was the last, resume.
 * Any difference means a write the dirty log did not report: a missed
 * dirty page as seen by a real destination.  With --dirty-ring the rounds
 * come from the vCPUs' rings (run_ring.c): a round copies every page the
 * collector harvested and reset since the last one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host/host.h"
#include "run.h"

#define GAP_US		100000	/* guests run unlogged between migrations */
#define MAX_DIFF_REPORTS 5

struct mig {
	struct run *r;
	uint8_t *dst;
	unsigned long *bitmap;
	uint64_t copied;
	unsigned int throttle;		/* % of the copying with vCPUs parked */
	bool parked;
};

static const unsigned int throttle_steps[] = { 0, 0, 50, 75, 90, 95, 99 };

/*
 * Auto-converge: of every 100 pages copied, the vCPUs are parked during the
 * first @throttle (and during the round's GETs, which start a window).
 */
static void throttle_step(struct mig *m)
{
	unsigned int pos = (unsigned int)(m->copied % 100);

	if (!m->throttle)
		return;
	if (pos == 0 && !m->parked) {
		run_vcpus_stop(m->r, false);
		m->parked = true;
		run_count(m->r, RC_MIG_THROTTLE_PARKS, 1);
	} else if (pos == m->throttle && m->parked) {
		run_vcpus_resume(m->r);
		m->parked = false;
	}
}

static void throttle_end(struct mig *m)
{
	if (m->parked)
		run_vcpus_resume(m->r);
	m->parked = false;
}

static uint8_t *dst_page(struct mig *m, int s, uint64_t page)
{
	const struct run_slot *sl = &m->r->slots[s];

	return m->dst + ((uint64_t)s * sl->npages + page) * PAGE_SIZE;
}

static void copy_page(struct mig *m, int s, uint64_t page)
{
	const struct run_slot *sl = &m->r->slots[s];
	int ret = ukvm_host_read(sl->hva + page * PAGE_SIZE, dst_page(m, s, page), PAGE_SIZE);

	if (ret)
		run_unexpected(m->r, "migration: reading guest memory", ret);
	m->copied++;
	throttle_step(m);
}

static void copy_dirty(struct run *r, int s, const unsigned long *bitmap, void *arg)
{
	struct mig *m = arg;

	for (uint64_t i = 0; i < (r->slots[s].npages + 63) / 64; i++) {
		unsigned long word = bitmap[i];

		while (word) {
			copy_page(m, s, i * 64 + (uint64_t)__builtin_ctzl(word));
			word &= word - 1;
		}
	}
}

static void compare(struct mig *m, struct run_migration *cur)
{
	struct run *r = m->r;
	uint8_t src[PAGE_SIZE];

	for (int s = 0; s < r->nr_slots; s++) {
		const struct run_slot *sl = &r->slots[s];

		for (uint64_t p = 0; p < sl->npages; p++) {
			const uint8_t *d = dst_page(m, s, p);
			unsigned long bytes = 0, first = 0;
			int ret = ukvm_host_read(sl->hva + p * PAGE_SIZE, src, PAGE_SIZE);

			if (ret) {
				run_unexpected(r, "migration: reading the source", ret);
				continue;
			}
			if (!memcmp(src, d, PAGE_SIZE))
				continue;
			for (unsigned long i = 0; i < PAGE_SIZE; i++)
				if (src[i] != d[i] && !bytes++)
					first = i;
			if (cur->diff_pages++ < MAX_DIFF_REPORTS) {
				uint64_t sw, dw;

				memcpy(&sw, src + (first & ~7UL), 8);
				memcpy(&dw, d + (first & ~7UL), 8);
				fprintf(stderr, "migration: gpa %#llx differs (%lu bytes): source "
					"%#llx, destination %#llx\n",
					(unsigned long long)(sl->gpa + p * PAGE_SIZE + (first & ~7UL)),
					bytes, (unsigned long long)sw, (unsigned long long)dw);
			}
			cur->diff_bytes += bytes;
		}
	}
}

/* One migration; returns true if it was the last one (vCPUs stopped). */
static bool migrate_once(struct mig *m)
{
	struct run *r = m->r;
	struct run_migration cur = { 0 };
	uint64_t threshold = r->guest_pages / 100 > 64 ? r->guest_pages / 100 : 64;
	bool last;
	long dirty;
	double t0;

	if (run_set_logging(r, true))
		return true;
	run_dirty_tracking_begin(r);
	m->copied = 0;
	for (int s = 0; s < r->nr_slots; s++)
		for (uint64_t p = 0; p < r->slots[s].npages; p++)
			copy_page(m, s, p);
	cur.pages[0] = m->copied;

	do {
		unsigned int step = cur.rounds < sizeof(throttle_steps) / sizeof(throttle_steps[0]) ?
				    cur.rounds : sizeof(throttle_steps) / sizeof(throttle_steps[0]) - 1;

		m->throttle = throttle_steps[step];
		if (m->throttle > cur.max_throttle)
			cur.max_throttle = m->throttle;
		m->copied = 0;
		throttle_step(m);	/* throttled: the GETs run parked too */
		dirty = run_dirty_round(r, m->bitmap, copy_dirty, m);
		throttle_end(m);
		if (dirty < 0)
			break;
		cur.pages[++cur.rounds] = m->copied;
	} while ((uint64_t)dirty >= threshold && cur.rounds < r->o.migrate_rounds);
	m->throttle = 0;

	/* Stop and copy. */
	last = atomic_load(&r->deadline);
	t0 = run_now();
	run_vcpus_stop(r, last);
	m->copied = 0;
	dirty = run_dirty_round(r, m->bitmap, copy_dirty, m);
	cur.downtime_ms = (run_now() - t0) * 1e3;
	cur.downtime_pages = m->copied;
	compare(m, &cur);

	guest_dirty_tracking_end(r->w);
	run_set_logging(r, false);
	if (!last)
		run_vcpus_resume(r);

	run_count(r, RC_MIG_DONE, 1);
	run_count(r, RC_MIG_ROUNDS, cur.rounds + 1);
	for (unsigned int i = 0; i <= cur.rounds; i++)
		run_count(r, RC_MIG_PAGES, cur.pages[i]);
	run_count(r, RC_MIG_PAGES, cur.downtime_pages);
	run_count(r, RC_MIG_DOWNTIME_PAGES, cur.downtime_pages);
	run_count(r, RC_MIG_DIFF_PAGES, cur.diff_pages);
	run_count(r, RC_MIG_DIFF_BYTES, cur.diff_bytes);
	if ((uint64_t)dirty < threshold)
		run_count(r, RC_MIG_CONVERGED, 1);
	r->mig = cur;
	return last || dirty < 0;
}

void *run_migrate_thread(void *arg)
{
	struct mig m = { .r = arg };
	struct run *r = m.r;

	m.dst = calloc(r->guest_pages, PAGE_SIZE);
	m.bitmap = run_bitmap_alloc(r);
	if (!m.dst || !m.bitmap) {
		run_unexpected(r, "migration: destination memory", -ENOMEM);
		/* Still stop the vCPUs for good, as the last migration would. */
		run_vcpus_stop(r, true);
		goto out;
	}
	while (!migrate_once(&m)) {
		for (int i = 0; i < GAP_US / 1000 && !atomic_load(&r->deadline); i++)
			run_sleep_us(1000);
	}
out:
	free(m.bitmap);
	free(m.dst);
	return NULL;
}
