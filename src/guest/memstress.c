// SPDX-License-Identifier: MIT
/*
 * The memstress-like guest program (see guest.h): each vCPU walks its pages
 * (or all of them with overlap), sequentially or at random, and reads or
 * writes one 8-byte word per access.  It runs in guest mode on the vCPU's
 * thread: no locks, only atomics on the bookkeeping arrays.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest/guest_internal.h"

static inline uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: cheap, good enough to spread accesses. */
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Shared by the pattern pages of a 64-page group: KSM can merge them. */
uint64_t guest_pattern_value(uint64_t gfn)
{
	return 0x9e3779b97f4a7c15ULL ^ ((gfn >> 6) * 0xff51afd7ed558ccdULL);
}

enum guest_page_class guest_page_class(const struct guest_workload *w, uint64_t gfn)
{
	const struct guest_config *c = &w->cfg;

	if (c->scratch_every && gfn % (uint64_t)c->scratch_every == 0)
		return GUEST_PAGE_SCRATCH;
	if (c->pattern_every &&
	    gfn % (uint64_t)c->pattern_every == (uint64_t)c->pattern_every / 2)
		return GUEST_PAGE_PATTERN;
	return GUEST_PAGE_TAG;
}

uint64_t guest_index_to_gfn(const struct guest_workload *w, uint64_t idx)
{
	int lo = 0, hi = w->cfg.nr_regions - 1;

	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;

		if (w->first_index[mid] <= idx)
			lo = mid;
		else
			hi = mid - 1;
	}
	return (w->regions[lo].gpa >> 12) + (idx - w->first_index[lo]);
}

static void report_mismatch(struct guest_workload *w, const char *what,
			    uint64_t gpa, uint64_t got, uint64_t want)
{
	if (atomic_fetch_add(&w->mismatch_reports, 1) < 5)
		fprintf(stderr, "guest: %s at gpa %#llx: read %#llx, expected %#llx\n",
			what, (unsigned long long)gpa, (unsigned long long)got,
			(unsigned long long)want);
}

/*
 * One more step done (see guest_vcpu_steps()); only this thread writes.
 * Release: what the step did (a fault's ring push) is seen by a VMM that
 * reads the new count with acquire.  The count before a fault is visible
 * before the fault's cmpxchg (a locked instruction on x86), so a VMM that
 * reads the count after closing its round never sees one too old.
 */
static inline void step_done(struct guest_vcpu *g)
{
	atomic_store_explicit(&g->steps,
			      atomic_load_explicit(&g->steps, memory_order_relaxed) + 1,
			      memory_order_release);
}

static enum ukvm_guest_step memstress_next(void *ctx, struct ukvm_guest_access *a)
{
	struct guest_vcpu *g = ctx;
	struct guest_workload *w = g->w;
	uint64_t idx, gfn;
	bool write;

	/* Woken (or kicked out of the halt): the next access may fault. */
	if (atomic_load_explicit(&g->halted, memory_order_relaxed))
		atomic_store(&g->halted, false);
	if (atomic_load_explicit(&w->stop, memory_order_relaxed) ||
	    (w->cfg.passes && g->passes >= w->cfg.passes)) {
		atomic_store(&g->finished, true);
		return UKVM_GUEST_EXIT;
	}
	/* HLT every halt_every accesses: sleep until an interrupt. */
	if (w->cfg.halt_every && ++g->since_halt > w->cfg.halt_every) {
		g->since_halt = 0;
		guest_stat_inc(g, halts);
		atomic_store(&g->halted, true);
		step_done(g);
		return UKVM_GUEST_HALT;
	}
	if (w->cfg.random) {
		idx = g->first + rng_next(&g->rng) % g->count;
		if (++g->pos == g->count) {
			g->pos = 0;
			g->passes++;
		}
	} else {
		idx = g->first + g->pos;
		if (++g->pos == g->count) {
			g->pos = 0;
			g->passes++;
		}
	}
	gfn = guest_index_to_gfn(w, idx);
	write = (int)(rng_next(&g->rng) % 100) < w->cfg.write_percent;

	g->cur_index = idx;
	g->cur_gfn = gfn;
	g->cur_class = guest_page_class(w, gfn);
	if (g->cur_class == GUEST_PAGE_SCRATCH)
		write = false;
	a->gpa = (gfn << 12) + 8 * (uint64_t)(g->id % 512);
	a->len = 8;
	a->type = write ? UKVM_ACCESS_WRITE : UKVM_ACCESS_READ;
	if (write)
		a->value = g->cur_class == GUEST_PAGE_PATTERN ? guest_pattern_value(gfn) :
			   guest_make_tag(g->id, ++g->seq);
	/* The round this access starts in (its window's lower bound). */
	g->cur_start_round = atomic_load_explicit(&w->round, memory_order_acquire);
	return UKVM_GUEST_ACCESS;
}

static void memstress_complete(void *ctx, const struct ukvm_guest_access *a)
{
	struct guest_vcpu *g = ctx;
	struct guest_workload *w = g->w;
	uint64_t idx = g->cur_index;

	guest_stat_inc(g, accesses);
	step_done(g);
	if (a->type == UKVM_ACCESS_WRITE) {
		uint32_t end = atomic_load_explicit(&w->round, memory_order_acquire);

		if (g->cur_class == GUEST_PAGE_TAG)
			atomic_store_explicit(&w->expected[idx * w->nv + (uint64_t)g->id],
					      a->value, memory_order_relaxed);
		else
			guest_stat_inc(g, pattern_writes);
		atomic_store_explicit(&w->window[idx],
				      ((uint64_t)g->cur_start_round << 32) | end,
				      memory_order_release);
		guest_stat_inc(g, writes);
		return;
	}

	guest_stat_inc(g, reads);
	switch (g->cur_class) {
	case GUEST_PAGE_TAG: {
		uint64_t want = atomic_load_explicit(&w->expected[idx * w->nv + (uint64_t)g->id],
						     memory_order_relaxed);
		if (a->value != want) {
			atomic_fetch_add(&w->stat.read_mismatches, 1);
			report_mismatch(w, "lost write", a->gpa, a->value, want);
		}
		break;
	}
	case GUEST_PAGE_PATTERN:
		if (a->value != guest_pattern_value(g->cur_gfn)) {
			atomic_fetch_add(&w->stat.read_mismatches, 1);
			report_mismatch(w, "pattern changed", a->gpa, a->value,
					guest_pattern_value(g->cur_gfn));
		}
		break;
	default:
		if (a->value) {
			atomic_fetch_add(&w->stat.read_mismatches, 1);
			report_mismatch(w, "scratch page not zero", a->gpa, a->value, 0);
		}
		break;
	}
}

const struct ukvm_guest_ops guest_memstress_ops = {
	.next = memstress_next,
	.complete = memstress_complete,
};

struct guest_workload *guest_workload_create(const struct guest_config *cfg)
{
	struct guest_workload *w;
	uint64_t share;

	if (!cfg || cfg->nr_vcpus <= 0 || cfg->nr_regions <= 0 ||
	    cfg->write_percent < 0 || cfg->write_percent > 100)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->cfg = *cfg;
	w->nv = (uint64_t)cfg->nr_vcpus;
	w->regions = calloc((size_t)cfg->nr_regions, sizeof(*w->regions));
	w->first_index = calloc((size_t)cfg->nr_regions, sizeof(*w->first_index));
	/* A cache line per vCPU (struct guest_vcpu is 64-byte aligned). */
	w->vcpus = aligned_alloc(_Alignof(struct guest_vcpu),
				 (size_t)cfg->nr_vcpus * sizeof(*w->vcpus));
	if (!w->regions || !w->first_index || !w->vcpus)
		goto fail;
	memset(w->vcpus, 0, (size_t)cfg->nr_vcpus * sizeof(*w->vcpus));
	for (int r = 0; r < cfg->nr_regions; r++) {
		w->regions[r] = cfg->regions[r];
		w->first_index[r] = w->total_pages;
		w->total_pages += cfg->regions[r].npages;
	}
	w->cfg.regions = w->regions;
	if (!w->total_pages || (!cfg->overlap && w->total_pages < w->nv))
		goto fail;
	w->expected = calloc(w->total_pages * w->nv, sizeof(*w->expected));
	w->window = calloc(w->total_pages, sizeof(*w->window));
	w->logged = calloc(w->total_pages, sizeof(*w->logged));
	w->checked = calloc(w->total_pages, sizeof(*w->checked));
	if (!w->expected || !w->window || !w->logged || !w->checked)
		goto fail;
	atomic_init(&w->round, 1);

	share = w->total_pages / w->nv;
	for (int v = 0; v < cfg->nr_vcpus; v++) {
		struct guest_vcpu *g = &w->vcpus[v];

		g->w = w;
		g->id = v;
		g->rng = (cfg->seed ? cfg->seed : 1) * 0x9E3779B97F4A7C15ULL + (uint64_t)v + 1;
		if (cfg->overlap) {
			g->first = 0;
			g->count = w->total_pages;
		} else {
			g->first = share * (uint64_t)v;
			g->count = v == cfg->nr_vcpus - 1 ? w->total_pages - g->first : share;
		}
	}
	return w;
fail:
	guest_workload_destroy(w);
	return NULL;
}

void guest_workload_destroy(struct guest_workload *w)
{
	if (!w)
		return;
	free(w->expected);
	free(w->window);
	free(w->logged);
	free(w->checked);
	free(w->vcpus);
	free(w->first_index);
	free(w->regions);
	free(w);
}

void *guest_vcpu_ctx(struct guest_workload *w, int v)
{
	return v >= 0 && v < w->cfg.nr_vcpus ? &w->vcpus[v] : NULL;
}

void guest_workload_stop(struct guest_workload *w)
{
	atomic_store(&w->stop, true);
}

bool guest_vcpu_finished(struct guest_workload *w, int v)
{
	return atomic_load(&w->vcpus[v].finished);
}

uint64_t guest_vcpu_steps(struct guest_workload *w, int v)
{
	return atomic_load(&w->vcpus[v].steps);
}

bool guest_vcpu_halted(struct guest_workload *w, int v)
{
	return atomic_load(&w->vcpus[v].halted);
}

void guest_get_stats(struct guest_workload *w, struct guest_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->read_mismatches = atomic_load(&w->stat.read_mismatches);
	st->missed_dirty = atomic_load(&w->stat.missed_dirty);
	for (int v = 0; v < w->cfg.nr_vcpus; v++) {
		struct guest_vcpu *g = &w->vcpus[v];

		st->accesses += atomic_load(&g->stat.accesses);
		st->reads += atomic_load(&g->stat.reads);
		st->writes += atomic_load(&g->stat.writes);
		st->pattern_writes += atomic_load(&g->stat.pattern_writes);
		st->halts += atomic_load(&g->stat.halts);
		st->passes_done += g->passes;
	}
}
