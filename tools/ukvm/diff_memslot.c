// SPDX-License-Identifier: MIT
/*
 * The memslot API part of `ukvm diff-kvm`: seeded random sequences of
 * KVM_SET_USER_MEMORY_REGION, KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2),
 * KVM_GET_DIRTY_LOG and KVM_CLEAR_DIRTY_LOG calls, valid and invalid, each
 * made on a fresh real VM and a fresh ukvm VM; results (and returned
 * bitmaps) compared call by call.
 *
 * The hvas are the same numbers on both sides: addresses in memory mapped
 * in this process for the real KVM, and just numbers for ukvm (a slot's
 * memory is never touched without a vCPU).  A model of the slots, updated
 * from the real KVM's results, steers the generator towards interesting
 * calls (moves and flag changes of existing slots, overlaps, deletes).
 * After the first disagreement the sequence stops: the states differ.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "diff_kvm.h"

#define PAGE		4096ULL
#define MAX_NR_PAGES	((1ULL << 31) - 1)	/* KVM_MEM_MAX_NR_PAGES */
#define POOL_SIZE	(1ULL << 30)		/* hvas of real memory */
#define WINDOW_PAGES	(16384ULL)		/* 64 MiB of gpa: overlaps are common */
#define SEQ_MIN		16
#define SEQ_SPAN	64
#define MAX_SLOTS	(SEQ_MIN + SEQ_SPAN + 16)	/* one per successful call */
#define GUARD		64			/* bytes past a bitmap, compared too */

struct ms_slot {
	uint32_t slot;
	uint32_t flags;
	uint64_t gpa, size, hva;
};

struct ms_seq {
	struct diff_ctx *c;
	struct diff_stats *st;
	struct diff_rng rng;
	struct diff_pair p;
	struct ms_slot slots[MAX_SLOTS];
	int nr_slots;
	uint64_t pool;
	bool diverged;
};

static struct ms_slot *find_slot(struct ms_seq *s, uint32_t slot)
{
	for (int i = 0; i < s->nr_slots; i++)
		if (s->slots[i].slot == slot)
			return &s->slots[i];
	return NULL;
}

static struct ms_slot *any_slot(struct ms_seq *s)
{
	return s->nr_slots ? &s->slots[diff_below(&s->rng, (uint64_t)s->nr_slots)] : NULL;
}

/* ---- generators ------------------------------------------------------------ */

static uint32_t gen_slot_id(struct ms_seq *s)
{
	const struct diff_host *h = &s->c->host;
	const uint32_t special[] = {
		(uint32_t)h->nr_memslots - 1, (uint32_t)h->nr_memslots,
		(uint32_t)h->nr_memslots + 1, 32766, 32767, 32768, 65535,
	};
	uint64_t k = diff_below(&s->rng, 100);

	if (k < 70)
		return (uint32_t)diff_below(&s->rng, 8);
	if (k < 80)
		return 1u << 16 | (uint32_t)diff_below(&s->rng, 8);
	if (k < 90)
		return special[diff_below(&s->rng, sizeof(special) / sizeof(special[0]))];
	if (k < 95) {
		const uint32_t as[] = { 2, 3, 0x7fff, 0xffff };

		return as[diff_below(&s->rng, 4)] << 16 | (uint32_t)diff_below(&s->rng, 8);
	}
	return (uint32_t)diff_rand(&s->rng);
}

static uint64_t gen_pages(struct ms_seq *s)
{
	uint64_t k = diff_below(&s->rng, 100);

	if (k < 60)
		return 1 + diff_below(&s->rng, 256);
	if (k < 75)
		return 64 * (1 + diff_below(&s->rng, 8));
	if (k < 95)
		return 1 + diff_below(&s->rng, 65536);
	return 1 + diff_below(&s->rng, 1u << 20);
}

static uint64_t gen_gpa(struct ms_seq *s, uint64_t size)
{
	unsigned int bits = s->c->host.max_gpa_bits;
	uint64_t k = diff_below(&s->rng, 100);
	struct ms_slot *near;

	if (k < 60)
		return diff_below(&s->rng, WINDOW_PAGES) * PAGE;
	if (k < 75 && (near = any_slot(s)) != NULL) {
		int64_t delta = (int64_t)diff_below(&s->rng, 17) - 8;
		uint64_t base = delta < 0 ? near->gpa : near->gpa + near->size;

		return base + (uint64_t)delta * PAGE;
	}
	if (k < 85) {
		/* Just below, at or just above the highest gpa. */
		uint64_t top = 1ULL << bits;
		int64_t delta = (int64_t)diff_below(&s->rng, 5) - 2;

		return top - size + (uint64_t)delta * PAGE;
	}
	if (k < 92)
		return (4ULL << 30) + diff_below(&s->rng, WINDOW_PAGES) * PAGE;
	return diff_rand(&s->rng) & ~(PAGE - 1);
}

static uint64_t gen_hva(struct ms_seq *s, uint64_t size)
{
	uint64_t limit = s->c->host.hva_limit;
	uint64_t k = diff_below(&s->rng, 100);

	if (k < 85)
		return s->pool + diff_below(&s->rng, POOL_SIZE / PAGE) * PAGE;
	if (k < 93) {
		/* The end of the range at, just below or just above the limit. */
		int64_t delta = (int64_t)diff_below(&s->rng, 5) - 2;

		return limit - size + (uint64_t)delta * PAGE;
	}
	if (k < 96)
		return 0;
	return diff_rand(&s->rng) & ~(PAGE - 1);
}

static uint32_t gen_flags(struct ms_seq *s)
{
	uint64_t k = diff_below(&s->rng, 100);

	if (k < 45)
		return KVM_MEM_LOG_DIRTY_PAGES;
	if (k < 80)
		return 0;
	if (k < 92)
		return KVM_MEM_READONLY | (diff_pct(&s->rng, 50) ? KVM_MEM_LOG_DIRTY_PAGES : 0);
	return 1u << diff_below(&s->rng, 32);
}

/* Spoil one field of a region in one of the ways KVM must reject (or not). */
static void corrupt(struct ms_seq *s, struct kvm_userspace_memory_region *m)
{
	switch (diff_below(&s->rng, 11)) {
	case 0: m->guest_phys_addr |= 1 + diff_below(&s->rng, PAGE - 1); break;
	case 1: m->memory_size += 1 + diff_below(&s->rng, PAGE - 1); break;
	case 2: m->userspace_addr |= 1 + diff_below(&s->rng, PAGE - 1); break;
	case 3: m->memory_size = (MAX_NR_PAGES + 1 + diff_below(&s->rng, 4)) * PAGE; break;
	case 4: m->memory_size = (diff_rand(&s->rng) | (1ULL << 62)) & ~(PAGE - 1); break;
	case 5: m->guest_phys_addr = (~0ULL << 12) - diff_below(&s->rng, 4) * PAGE; break;
	case 6:
		m->guest_phys_addr = 1ULL << (s->c->host.max_gpa_bits + diff_below(&s->rng, 3));
		break;
	case 7: m->userspace_addr = s->c->host.hva_limit - m->memory_size + PAGE; break;
	case 8: m->flags |= 1u << (2 + diff_below(&s->rng, 30)); break;
	case 9: m->slot = (uint32_t)diff_rand(&s->rng); break;
	default: m->memory_size = 0; m->userspace_addr |= 1ULL << 63; break;
	}
}

/* ---- calls on both sides ------------------------------------------------ */

static void apply_to_model(struct ms_seq *s, const struct kvm_userspace_memory_region *m)
{
	struct ms_slot *old = find_slot(s, m->slot);

	if (!m->memory_size) {
		if (old)
			*old = s->slots[--s->nr_slots];
	} else if (old) {
		old->gpa = m->guest_phys_addr;
		old->flags = m->flags;
	} else if (s->nr_slots < MAX_SLOTS) {
		s->slots[s->nr_slots++] = (struct ms_slot){
			.slot = m->slot, .flags = m->flags, .gpa = m->guest_phys_addr,
			.size = m->memory_size, .hva = m->userspace_addr };
	}
}

static void set_region(struct ms_seq *s, const struct kvm_userspace_memory_region *m)
{
	char call[160];
	int rr, ur;

	rr = realkvm_set_user_memory_region(&s->p.real, m);
	ur = ukvm_set_user_memory_region(s->p.ukvm, m);
	diff_fmt_region(call, sizeof(call), m);
	if (!diff_results(s->c, s->st, DK_SET_REGION, call, rr, ur))
		s->diverged = true;
	if (!rr)
		apply_to_model(s, m);
}

static void enable_cap(struct ms_seq *s)
{
	const uint64_t args[] = { 0, 1, 2, 3, 3, 3, 1, 4, 5, 7, ~0ULL };
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };
	char call[96];
	int rr, ur;

	cap.args[0] = diff_pct(&s->rng, 90) ? args[diff_below(&s->rng, 11)] : diff_rand(&s->rng);
	if (diff_pct(&s->rng, 8))
		cap.flags = 1u << diff_below(&s->rng, 32);
	if (diff_pct(&s->rng, 5))
		cap.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT;
	rr = realkvm_enable_cap(&s->p.real, &cap);
	ur = ukvm_enable_cap(s->p.ukvm, &cap);
	snprintf(call, sizeof(call), "ENABLE_CAP(cap=%u flags=%#x args[0]=%#llx)",
		 cap.cap, cap.flags, (unsigned long long)cap.args[0]);
	if (!diff_results(s->c, s->st, DK_ENABLE_CAP, call, rr, ur))
		s->diverged = true;
}

static void check_extensions(struct ms_seq *s)
{
	static const long caps[] = {
		KVM_CAP_NR_MEMSLOTS, KVM_CAP_MULTI_ADDRESS_SPACE,
		KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_CAP_READONLY_MEM,
		KVM_CAP_SYNC_MMU, KVM_CAP_USER_MEMORY,
	};

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		int rr = realkvm_check_extension(&s->p.real, caps[i]);
		int ur = ukvm_check_extension(s->p.ukvm, caps[i]);
		char call[48];

		snprintf(call, sizeof(call), "CHECK_EXTENSION(%ld)", caps[i]);
		diff_count(s->st, DK_CHECK_EXT, rr < 0 ? rr : 0);
		diff_check(s->c, s->st, rr == ur, call, "real %d, ukvm %d", rr, ur);
	}
}

static uint32_t gen_log_slot(struct ms_seq *s)
{
	struct ms_slot *m = any_slot(s);

	return m && diff_pct(&s->rng, 80) ? m->slot : gen_slot_id(s);
}

/* Compare two returned bitmaps (with their guard bytes). */
static bool bitmaps_equal(const uint8_t *a, const uint8_t *b, size_t len, char *msg, size_t mlen)
{
	for (size_t i = 0; i < len; i++) {
		if (a[i] != b[i]) {
			snprintf(msg, mlen, "bitmaps differ at byte %zu of %zu: real %#x, ukvm %#x",
				 i, len, a[i], b[i]);
			return false;
		}
	}
	return true;
}

static void get_log(struct ms_seq *s, uint32_t slot)
{
	struct ms_slot *m = find_slot(s, slot);
	size_t len = (m ? (m->size / PAGE + 63) / 64 * 8 : 512) + GUARD;
	uint8_t *rb = malloc(len), *ub = malloc(len);
	struct kvm_dirty_log rl = { .slot = slot }, ul = { .slot = slot };
	bool null = diff_pct(&s->rng, 3);
	char call[64], msg[128];
	int rr, ur;

	if (!rb || !ub)
		goto out;
	memset(rb, 0xa5, len);
	memset(ub, 0xa5, len);
	rl.dirty_bitmap = null ? NULL : rb;
	ul.dirty_bitmap = null ? NULL : ub;
	rr = realkvm_get_dirty_log(&s->p.real, &rl);
	ur = ukvm_get_dirty_log(s->p.ukvm, &ul);
	snprintf(call, sizeof(call), "GET_DIRTY_LOG(slot=%u:%u%s)", slot >> 16,
		 slot & 0xffff, null ? " bitmap=NULL" : "");
	diff_call(s->c, s->st, DK_GET_LOG, call, rr);
	if (!rr && !null && m)
		diff_count_dirty(s->st, rb, len - GUARD);
	if (rr != ur) {
		diff_check(s->c, s->st, false, call, "real %s, ukvm %s", diff_err(rr),
			   diff_err(ur));
		s->diverged = true;
	} else if (!rr && !null && !bitmaps_equal(rb, ub, len, msg, sizeof(msg))) {
		diff_check(s->c, s->st, false, call, "%s", msg);
		s->diverged = true;
	} else {
		diff_check(s->c, s->st, true, call, " ");
	}
out:
	free(rb);
	free(ub);
}

static void clear_log(struct ms_seq *s)
{
	uint32_t slot = gen_log_slot(s);
	struct ms_slot *m = find_slot(s, slot);
	uint64_t npages = m ? m->size / PAGE : 1 + diff_below(&s->rng, 512);
	struct kvm_clear_dirty_log log = { .slot = slot };
	uint64_t k = diff_below(&s->rng, 100), rest;
	uint8_t *bits = NULL;
	size_t len;
	char call[128];
	int rr, ur;

	if (k < 70)
		log.first_page = diff_below(&s->rng, npages / 64 + 1) * 64;
	else if (k < 80)
		log.first_page = npages;
	else if (k < 90)
		log.first_page = diff_below(&s->rng, npages + 1);
	else
		log.first_page = diff_rand(&s->rng) >> diff_below(&s->rng, 64);
	rest = log.first_page <= npages ? npages - log.first_page : 0;
	k = diff_below(&s->rng, 100);
	if (k < 40)
		log.num_pages = (uint32_t)rest;
	else if (k < 70)
		log.num_pages = (uint32_t)(diff_below(&s->rng, rest / 64 + 1) * 64);
	else if (k < 85)
		log.num_pages = (uint32_t)diff_below(&s->rng, rest + 1);
	else if (k < 95)
		log.num_pages = (uint32_t)(rest + 1 + diff_below(&s->rng, 128));
	else
		log.num_pages = (uint32_t)diff_rand(&s->rng);

	len = log.num_pages <= (1u << 24) ? ((size_t)log.num_pages + 63) / 64 * 8 : 64;
	bits = malloc(len + 8);
	if (!bits)
		return;
	for (size_t i = 0; i < len + 8; i++)
		bits[i] = diff_pct(&s->rng, 50) ? 0xff : (uint8_t)diff_rand(&s->rng);
	log.dirty_bitmap = diff_pct(&s->rng, 3) ? NULL : bits;

	rr = realkvm_clear_dirty_log(&s->p.real, &log);
	ur = ukvm_clear_dirty_log(s->p.ukvm, &log);
	snprintf(call, sizeof(call), "CLEAR_DIRTY_LOG(slot=%u:%u first_page=%llu num_pages=%u%s)",
		 slot >> 16, slot & 0xffff, (unsigned long long)log.first_page,
		 log.num_pages, log.dirty_bitmap ? "" : " bitmap=NULL");
	if (!diff_results(s->c, s->st, DK_CLEAR_LOG, call, rr, ur))
		s->diverged = true;
	free(bits);
	/* What was cleared shows in the next GET, on both sides. */
	if (!rr && diff_pct(&s->rng, 50))
		get_log(s, slot);
}

/* ---- one step, one sequence --------------------------------------------- */

static void step(struct ms_seq *s)
{
	struct kvm_userspace_memory_region m = { 0 };
	struct ms_slot *old = any_slot(s);
	uint64_t k = diff_below(&s->rng, 100);

	if (k < 4) {
		enable_cap(s);
		return;
	}
	if (k < 14) {
		get_log(s, gen_log_slot(s));
		return;
	}
	if (k < 22) {
		clear_log(s);
		return;
	}
	if (k < 23) {
		check_extensions(s);
		return;
	}
	if (old && k < 60) {
		/* An existing slot: move, flags, delete, resize, identical. */
		m = (struct kvm_userspace_memory_region){
			.slot = old->slot, .flags = old->flags,
			.guest_phys_addr = old->gpa, .memory_size = old->size,
			.userspace_addr = old->hva };
		k = diff_below(&s->rng, 100);
		if (k < 25)
			m.guest_phys_addr = gen_gpa(s, m.memory_size);
		else if (k < 45)
			m.flags ^= KVM_MEM_LOG_DIRTY_PAGES;
		else if (k < 50)
			m.flags ^= KVM_MEM_READONLY;
		else if (k < 75)
			m.memory_size = 0;
		else if (k < 82)
			m.memory_size = gen_pages(s) * PAGE;
		else if (k < 88)
			m.userspace_addr = gen_hva(s, m.memory_size);
		else if (k < 95)
			;	/* identical */
		else
			corrupt(s, &m);
	} else {
		uint64_t size = gen_pages(s) * PAGE;

		m.slot = gen_slot_id(s);
		m.flags = gen_flags(s);
		m.memory_size = size;
		m.guest_phys_addr = gen_gpa(s, size);
		m.userspace_addr = gen_hva(s, size);
		if (diff_pct(&s->rng, 20))
			corrupt(s, &m);
		else if (diff_pct(&s->rng, 5))
			m.memory_size = 0;	/* delete, maybe of nothing */
	}
	set_region(s, &m);
}

/* Take every slot apart: GET, an invalid resize, DELETE; compared too. */
static void sweep(struct ms_seq *s)
{
	while (s->nr_slots && !s->diverged) {
		struct ms_slot *m = &s->slots[s->nr_slots - 1];
		struct kvm_userspace_memory_region r = {
			.slot = m->slot, .flags = m->flags, .guest_phys_addr = m->gpa,
			.memory_size = m->size + PAGE, .userspace_addr = m->hva };
		int before = s->nr_slots;

		get_log(s, m->slot);
		set_region(s, &r);
		r.memory_size = 0;
		set_region(s, &r);
		if (s->nr_slots == before)
			break;		/* the real delete failed: reported above */
	}
}

static int run_sequence(struct ms_seq *s, uint64_t nr_calls)
{
	int r = diff_pair_create(s->c, &s->p);

	if (r)
		return r;
	s->nr_slots = 0;
	s->diverged = false;
	if (diff_pct(&s->rng, 40)) {
		/* Manual protect, often initially-set, before any slot exists. */
		diff_pair_enable_manual(s->c, s->st, &s->p, diff_pct(&s->rng, 70) ? 3 : 1);
	}
	for (uint64_t i = 0; i < nr_calls && !s->diverged; i++)
		step(s);
	sweep(s);
	diff_pair_destroy(&s->p);
	return 0;
}

int diff_memslot_run(struct diff_ctx *c, struct diff_stats *st)
{
	struct ms_seq *s = calloc(1, sizeof(*s));
	void *pool;
	int r = 0;

	if (!s)
		return -ENOMEM;
	/* The hvas of the real slots: reserved, never touched (no vCPU). */
	pool = mmap(NULL, POOL_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (pool == MAP_FAILED) {
		free(s);
		return -ENOMEM;
	}
	s->c = c;
	s->st = st;
	s->pool = (uintptr_t)pool;
	for (c->seq = c->only_seq >= 0 ? (uint64_t)c->only_seq : 0;
	     st->calls < c->calls && !r; c->seq++) {
		uint64_t before = st->calls;

		diff_rng_seed(&s->rng, c->seed * 1000003 + c->seq);
		r = run_sequence(s, SEQ_MIN + diff_below(&s->rng, SEQ_SPAN));
		st->sequences++;
		if (c->verbose > 1)
			printf("# memslot sequence %llu: %llu calls%s\n",
			       (unsigned long long)c->seq,
			       (unsigned long long)(st->calls - before),
			       s->diverged ? ", diverged" : "");
		if (c->only_seq >= 0)
			break;
	}
	munmap(pool, POOL_SIZE);
	free(s);
	return r;
}
