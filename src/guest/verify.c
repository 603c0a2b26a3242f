// SPDX-License-Identifier: MIT
/*
 * Verification: dirty logs against the writes the guests made, and guest
 * memory (read through the host mapping once quiesced) against what they
 * wrote.
 */
#include <stdio.h>

#include "guest/guest_internal.h"

static bool gfn_to_index(const struct guest_workload *w, uint64_t gfn, uint64_t *idx)
{
	int lo = 0, hi = w->cfg.nr_regions - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		uint64_t first = w->regions[mid].gpa >> 12;

		if (gfn < first)
			hi = mid - 1;
		else if (gfn >= first + w->regions[mid].npages)
			lo = mid + 1;
		else {
			*idx = w->first_index[mid] + (gfn - first);
			return true;
		}
	}
	return false;
}

void guest_dirty_tracking_begin(struct guest_workload *w)
{
	uint32_t x = atomic_fetch_add(&w->round, 1);

	/* Writes that start from now on must show up in the logs. */
	atomic_store(&w->tracking_start, x + 1);
}

void guest_dirty_tracking_end(struct guest_workload *w)
{
	atomic_store(&w->tracking_start, 0);
}

uint32_t guest_dirty_round_close(struct guest_workload *w)
{
	return atomic_fetch_add(&w->round, 1);
}

void guest_dirty_log_record(struct guest_workload *w, uint64_t base_gfn,
			    const unsigned long *bitmap, uint64_t npages,
			    uint32_t round)
{
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t idx;

		if (!(bitmap[i / 64] & (1UL << (i % 64))) ||
		    !gfn_to_index(w, base_gfn + i, &idx))
			continue;
		/* Rounds are recorded in increasing order by one VMM thread. */
		atomic_store_explicit(&w->logged[idx], round + 1, memory_order_relaxed);
	}
}

uint64_t guest_dirty_check(struct guest_workload *w, uint32_t round)
{
	uint32_t start = atomic_load(&w->tracking_start);
	uint64_t missed = 0;

	if (!start)
		return 0;
	for (uint64_t idx = 0; idx < w->total_pages; idx++) {
		uint64_t win = atomic_load_explicit(&w->window[idx], memory_order_acquire);
		uint32_t s = (uint32_t)(win >> 32), e = (uint32_t)win;

		/* Not tracked, or not yet required to be logged. */
		if (!win || s < start || e > round)
			continue;
		/* Logged in a round taken after the write could have started. */
		if (atomic_load_explicit(&w->logged[idx], memory_order_relaxed) >= s)
			continue;
		if (atomic_load(&w->checked[idx]) == win)
			continue;
		atomic_store(&w->checked[idx], win);
		if (missed++ < 5)
			fprintf(stderr, "guest: missed dirty page: gfn %#llx written in rounds "
				"%u..%u, in no log since round %u (checked at round %u)\n",
				(unsigned long long)guest_index_to_gfn(w, idx), s, e,
				s - 1, round);
	}
	atomic_fetch_add(&w->stat.missed_dirty, missed);
	return missed;
}

int guest_prefill(struct guest_workload *w, guest_write64_fn write, void *arg)
{
	for (uint64_t idx = 0; idx < w->total_pages; idx++) {
		uint64_t gfn = guest_index_to_gfn(w, idx);
		int r;

		if (guest_page_class(w, gfn) != GUEST_PAGE_PATTERN)
			continue;
		for (uint64_t v = 0; v < w->nv && v < 512; v++) {
			r = write(arg, (gfn << 12) + 8 * v, guest_pattern_value(gfn));
			if (r)
				return r;
		}
	}
	return 0;
}

static void bad(struct guest_verify_result *res, uint64_t gpa, uint64_t *counter)
{
	if (!res->lost_writes && !res->bad_pattern && !res->bad_scratch)
		res->first_bad_gpa = gpa;
	(*counter)++;
}

int guest_verify(struct guest_workload *w, guest_read64_fn read, void *arg,
		 struct guest_verify_result *res)
{
	*res = (struct guest_verify_result){ 0 };
	for (uint64_t idx = 0; idx < w->total_pages; idx++) {
		uint64_t gfn = guest_index_to_gfn(w, idx);
		enum guest_page_class cls = guest_page_class(w, gfn);

		for (uint64_t v = 0; v < w->nv && v < 512; v++) {
			uint64_t gpa = (gfn << 12) + 8 * v, got, want;
			int r = read(arg, gpa, &got);

			if (r)
				return r;
			switch (cls) {
			case GUEST_PAGE_TAG:
				want = atomic_load(&w->expected[idx * w->nv + v]);
				if (got != want) {
					if (res->lost_writes < 5)
						fprintf(stderr, "verify: lost write at gpa %#llx: "
							"%#llx, expected %#llx\n",
							(unsigned long long)gpa,
							(unsigned long long)got,
							(unsigned long long)want);
					bad(res, gpa, &res->lost_writes);
				}
				break;
			case GUEST_PAGE_PATTERN:
				if (got != guest_pattern_value(gfn))
					bad(res, gpa, &res->bad_pattern);
				break;
			default:
				if (got)
					bad(res, gpa, &res->bad_scratch);
				break;
			}
		}
		res->pages_checked++;
	}
	return 0;
}
