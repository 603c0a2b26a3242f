// SPDX-License-Identifier: MIT
/*
 * The dirty-log part of `ukvm diff-kvm`: the tiny guest on the real KVM
 * (bench/realkvm_guest.c) and ukvm's vCPU running a scripted guest execute
 * the very same list of accesses, round after round, with dirty-log calls
 * in between.  Compared: every read's value, the MMIO exits (writes to a
 * read-only slot, accesses outside every slot), GET_DIRTY_LOG's bitmaps,
 * the results of CLEAR_DIRTY_LOG and of slot flag changes and moves, and
 * the memory of every slot after every round.
 *
 * Both VMs have the same slots at the same gpas (the guest's code slot
 * too, so that slot ids and overlaps behave the same); the memory behind
 * them is this process's for the real KVM and ukvm's host memory for ukvm.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff_kvm.h"

#define PAGE		4096ULL
#define CODE_SLOT	0
#define CODE_GPA	(1ULL << 20)
#define DATA_GPA	(4ULL << 20)
#define MAX_DSLOTS	4
#define MAX_ACC		256
#define MAX_MMIO	(MAX_ACC + 8)
#define GUARD		64

struct dd_slot {
	uint32_t id;
	uint32_t flags;
	uint64_t gpa, npages;
	uint8_t *real_mem;
	unsigned long ukvm_hva;
	bool present;
};

struct dd_mmio_log {
	struct realkvm_mmio e[MAX_MMIO];
	int n;
};

struct dd_scn {
	struct diff_ctx *c;
	struct diff_stats *st;
	struct diff_rng rng;
	struct diff_pair p;
	struct realkvm_guest *g;
	struct kvm_vcpu *vcpu;
	unsigned long code_hva;
	struct dd_slot slots[MAX_DSLOTS];
	int nr_slots;
	uint64_t manual;
	uint64_t gpa_end;		/* above every slot */
	bool diverged;
	/* Scratch: the accesses, as each side saw them. */
	struct ukvm_guest_access acc[MAX_ACC], racc[MAX_ACC];
	int nr_acc;
	struct dd_mmio_log rmmio, ummio;
};

/* ---- ukvm's side: the accesses as a scripted guest ------------------------ */

struct dd_script {
	struct ukvm_guest_access *acc;
	int n, next;
};

static enum ukvm_guest_step script_next(void *ctx, struct ukvm_guest_access *a)
{
	struct dd_script *s = ctx;

	if (s->next >= s->n)
		return UKVM_GUEST_EXIT;
	*a = s->acc[s->next];
	return UKVM_GUEST_ACCESS;
}

static void script_complete(void *ctx, const struct ukvm_guest_access *a)
{
	struct dd_script *s = ctx;

	s->acc[s->next++].value = a->value;
}

static const struct ukvm_guest_ops script_ops = {
	.next = script_next,
	.complete = script_complete,
};

static uint64_t mask_len(uint64_t v, unsigned int len)
{
	return len >= 8 ? v : v & ((1ULL << (8 * len)) - 1);
}

static int ukvm_side_run(struct dd_scn *s, struct ukvm_guest_access *acc, int n)
{
	struct dd_script script = { .acc = acc, .n = n };
	struct kvm_run run;
	int r;

	s->ummio.n = 0;
	r = ukvm_vcpu_set_guest(s->vcpu, &script_ops, &script);
	if (r)
		return r;
	for (;;) {
		memset(&run, 0, sizeof(run));
		r = ukvm_vcpu_run(s->vcpu, &run);
		if (r)
			return r;
		if (run.exit_reason == KVM_EXIT_HYPERCALL)
			return 0;
		if (run.exit_reason != KVM_EXIT_MMIO)
			return -EIO;
		if (s->ummio.n < MAX_MMIO) {
			struct realkvm_mmio *m = &s->ummio.e[s->ummio.n];
			uint64_t v = 0;

			memcpy(&v, run.mmio.data, sizeof(v));
			m->gpa = run.mmio.phys_addr;
			m->len = (uint8_t)run.mmio.len;
			m->is_write = run.mmio.is_write;
			m->value = m->is_write ? mask_len(v, m->len) : 0;
		}
		s->ummio.n++;
		if (!run.mmio.is_write)
			memset(run.mmio.data, 0, sizeof(run.mmio.data));
	}
}

/* ---- set-up --------------------------------------------------------------- */

static int set_both(struct dd_scn *s, uint32_t slot, uint32_t flags, uint64_t gpa,
		    uint64_t size, uint64_t real_hva, uint64_t ukvm_hva)
{
	struct kvm_userspace_memory_region rm = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = real_hva,
	}, um = rm;
	char call[160];
	int rr, ur;

	um.userspace_addr = ukvm_hva;
	rr = realkvm_set_user_memory_region(&s->p.real, &rm);
	ur = ukvm_set_user_memory_region(s->p.ukvm, &um);
	diff_fmt_region(call, sizeof(call), &rm);
	if (!diff_results(s->c, s->st, DK_SET_REGION, call, rr, ur))
		s->diverged = true;
	return rr;
}

static int slot_set(struct dd_scn *s, struct dd_slot *d, uint32_t flags, uint64_t gpa,
		    bool delete)
{
	return set_both(s, d->id, flags, gpa, delete ? 0 : d->npages * PAGE,
			(uintptr_t)d->real_mem, d->ukvm_hva);
}

/* Fill both memories with the same bytes (the VMM's writes log nothing). */
static int prefill(struct dd_scn *s, struct dd_slot *d)
{
	size_t size = d->npages * PAGE;

	for (size_t off = 0; off < size; off += 8) {
		uint64_t v = diff_pct(&s->rng, 50) ? diff_rand(&s->rng) : 0;

		memcpy(d->real_mem + off, &v, 8);
	}
	return ukvm_host_write(d->ukvm_hva, d->real_mem, size);
}

static int create_slots(struct dd_scn *s)
{
	uint64_t gpa = DATA_GPA;

	s->nr_slots = 1 + (int)diff_below(&s->rng, MAX_DSLOTS);
	for (int i = 0; i < s->nr_slots; i++) {
		struct dd_slot *d = &s->slots[i];
		uint64_t k = diff_below(&s->rng, 100);
		unsigned int map = diff_pct(&s->rng, 30) ? UKVM_MAP_THP : 0;
		int r;

		d->id = 1 + (uint32_t)i;
		d->npages = k < 40 ? 1 + diff_below(&s->rng, 200) :
			    k < 70 ? 64 * (1 + diff_below(&s->rng, 8)) :
			    k < 85 ? 512 : 1 + diff_below(&s->rng, 1100);
		if (diff_pct(&s->rng, 30))
			gpa = (gpa + (2ULL << 20) - 1) & ~((2ULL << 20) - 1);
		gpa += diff_below(&s->rng, 4) * 16 * PAGE;	/* a hole, maybe */
		d->gpa = gpa;
		gpa += d->npages * PAGE;
		k = diff_below(&s->rng, 100);
		d->flags = k < 70 ? KVM_MEM_LOG_DIRTY_PAGES : k < 85 ? KVM_MEM_READONLY : 0;

		d->real_mem = realkvm_alloc(d->npages * PAGE);
		d->ukvm_hva = ukvm_host_mmap(d->npages * PAGE, map);
		if (!d->real_mem || d->ukvm_hva >= (unsigned long)-4095L) {
			d->ukvm_hva = d->ukvm_hva >= (unsigned long)-4095L ? 0 : d->ukvm_hva;
			return -ENOMEM;
		}
		if (diff_pct(&s->rng, 50)) {
			r = prefill(s, d);
			if (r)
				return r;
		}
		r = slot_set(s, d, d->flags, d->gpa, false);
		if (r)
			return r;
		d->present = true;
	}
	s->gpa_end = gpa + 64 * PAGE;
	return 0;
}

static void free_slots(struct dd_scn *s)
{
	for (int i = 0; i < s->nr_slots; i++) {
		struct dd_slot *d = &s->slots[i];

		realkvm_free(d->real_mem, d->npages * PAGE);
		if (d->ukvm_hva)
			ukvm_host_munmap(d->ukvm_hva, d->npages * PAGE);
		memset(d, 0, sizeof(*d));
	}
	s->nr_slots = 0;
}

/* ---- the accesses of one round -------------------------------------------- */

static uint64_t gen_gpa(struct dd_scn *s, unsigned int len)
{
	struct dd_slot *d = &s->slots[diff_below(&s->rng, (uint64_t)s->nr_slots)];
	uint64_t k = diff_below(&s->rng, 100), page, gpa;

	if (k < 88 && d->present) {
		/* Few hot pages: the same pages dirtied again in later rounds. */
		page = diff_pct(&s->rng, 60) ? diff_below(&s->rng, d->npages < 8 ? d->npages : 8)
					     : diff_below(&s->rng, d->npages);
		gpa = d->gpa + page * PAGE;
	} else if (k < 94) {
		/* Outside every slot: between them, or above. */
		gpa = s->gpa_end + diff_below(&s->rng, 256) * PAGE;
	} else {
		/* Where a slot is, or was before it moved: maybe a hole. */
		gpa = d->gpa - PAGE + diff_below(&s->rng, d->npages + 2) * PAGE;
	}
	return gpa + diff_below(&s->rng, PAGE / len) * len;
}

static void gen_accesses(struct dd_scn *s)
{
	static const uint8_t lens[] = { 1, 2, 4, 8, 8, 8 };

	/* Mostly short lists: more rounds, more logs compared per access. */
	s->nr_acc = 1 + (int)diff_below(&s->rng, diff_pct(&s->rng, 80) ? 48 : MAX_ACC);
	for (int i = 0; i < s->nr_acc; i++) {
		struct ukvm_guest_access *a = &s->acc[i];

		a->len = lens[diff_below(&s->rng, sizeof(lens))];
		a->type = diff_pct(&s->rng, 75) ? UKVM_ACCESS_WRITE : UKVM_ACCESS_READ;
		a->gpa = gen_gpa(s, a->len);
		a->value = a->type == UKVM_ACCESS_WRITE ? diff_rand(&s->rng) : 0;
	}
}

static void compare_mmio(struct dd_scn *s)
{
	char call[64];
	int n = s->rmmio.n;

	snprintf(call, sizeof(call), "guest run of %d accesses: MMIO exits", s->nr_acc);
	if (!diff_check(s->c, s->st, s->rmmio.n == s->ummio.n, call, "real %d, ukvm %d",
			s->rmmio.n, s->ummio.n)) {
		s->diverged = true;
		return;
	}
	for (int i = 0; i < n && i < MAX_MMIO; i++) {
		const struct realkvm_mmio *a = &s->rmmio.e[i], *b = &s->ummio.e[i];

		snprintf(call, sizeof(call), "MMIO exit %d of %d", i + 1, n);
		diff_count(s->st, DK_MMIO, 0);
		if (!diff_check(s->c, s->st, a->gpa == b->gpa && a->len == b->len &&
				a->is_write == b->is_write && a->value == b->value, call,
				"real gpa %#llx len %u %s %#llx, ukvm gpa %#llx len %u %s %#llx",
				(unsigned long long)a->gpa, a->len, a->is_write ? "write" : "read",
				(unsigned long long)a->value, (unsigned long long)b->gpa, b->len,
				b->is_write ? "write" : "read", (unsigned long long)b->value)) {
			s->diverged = true;
			return;
		}
	}
}

static int run_accesses(struct dd_scn *s)
{
	char call[96];
	int rr, ur;

	gen_accesses(s);
	memcpy(s->racc, s->acc, sizeof(s->acc[0]) * (size_t)s->nr_acc);
	rr = realkvm_guest_run(s->g, s->racc, s->nr_acc, s->rmmio.e, MAX_MMIO, &s->rmmio.n);
	if (rr) {
		fprintf(stderr, "diff-kvm: the tiny guest failed (%s): %s\n",
			realkvm_guest_last_exit(s->g), diff_err(rr));
		return rr;
	}
	ur = ukvm_side_run(s, s->acc, s->nr_acc);
	if (s->c->verbose > 2) {
		for (int i = 0; i < s->nr_acc; i++)
			printf("    %s %u at %#llx\n", s->acc[i].type == UKVM_ACCESS_WRITE ?
			       "write" : "read", s->acc[i].len,
			       (unsigned long long)s->acc[i].gpa);
	}
	if (s->c->verbose > 1)
		printf("  guest: %d accesses, %d MMIO exits\n", s->nr_acc, s->rmmio.n);
	snprintf(call, sizeof(call), "KVM_RUN (%d accesses)", s->nr_acc);
	if (!diff_check(s->c, s->st, ur == 0, call, "real 0, ukvm %s", diff_err(ur))) {
		s->diverged = true;
		return 0;
	}
	for (int i = 0; i < s->nr_acc; i++) {
		const struct ukvm_guest_access *a = &s->racc[i], *b = &s->acc[i];

		if (a->type != UKVM_ACCESS_READ)
			continue;
		snprintf(call, sizeof(call), "read of %u bytes at %#llx", a->len,
			 (unsigned long long)a->gpa);
		if (!diff_check(s->c, s->st, a->value == b->value, call,
				"real %#llx, ukvm %#llx", (unsigned long long)a->value,
				(unsigned long long)b->value)) {
			s->diverged = true;
			return 0;
		}
	}
	/* Writes are compared through memory, the logs and the MMIO exits. */
	s->st->calls += (uint64_t)s->nr_acc;
	s->st->by[DK_ACCESS][DR_OK] += (uint64_t)s->nr_acc;
	compare_mmio(s);
	return 0;
}

/* ---- dirty-log calls --------------------------------------------------------- */

static void get_log(struct dd_scn *s, struct dd_slot *d, uint32_t slot)
{
	uint64_t npages = d ? d->npages : 64;
	size_t len = (npages + 63) / 64 * 8 + GUARD;
	uint8_t *rb = malloc(len), *ub = malloc(len);
	struct kvm_dirty_log rl = { .slot = slot, .dirty_bitmap = rb };
	struct kvm_dirty_log ul = { .slot = slot, .dirty_bitmap = ub };
	char call[64];
	size_t i;
	int rr, ur;

	if (!rb || !ub)
		goto out;
	memset(rb, 0x5a, len);
	memset(ub, 0x5a, len);
	rr = realkvm_get_dirty_log(&s->p.real, &rl);
	ur = ukvm_get_dirty_log(s->p.ukvm, &ul);
	snprintf(call, sizeof(call), "GET_DIRTY_LOG(slot %u)", slot);
	if (!rr)
		diff_count_dirty(s->st, rb, len - GUARD);
	if (!diff_results(s->c, s->st, DK_GET_LOG, call, rr, ur)) {
		s->diverged = true;
		goto out;
	}
	for (i = 0; i < len && rb[i] == ub[i]; i++)
		;
	if (!rr && i < len) {
		uint64_t page = i * 8;

		while (page < i * 8 + 8 && !((rb[i] ^ ub[i]) & (1u << (page - i * 8))))
			page++;
		diff_check(s->c, s->st, false, call,
			   "bitmaps differ at page %llu (gpa %#llx): real %d, ukvm %d",
			   (unsigned long long)page,
			   (unsigned long long)(d ? d->gpa + page * PAGE : 0),
			   !!(rb[i] & (1u << (page - i * 8))), !!(ub[i] & (1u << (page - i * 8))));
		s->diverged = true;
	}
out:
	free(rb);
	free(ub);
}

static void clear_log(struct dd_scn *s, struct dd_slot *d)
{
	struct kvm_clear_dirty_log log = { .slot = d->id };
	uint64_t k = diff_below(&s->rng, 100), rest;
	uint8_t *bits;
	size_t len;
	char call[96];
	int rr, ur;

	log.first_page = k < 80 ? diff_below(&s->rng, d->npages / 64 + 1) * 64 :
			 diff_below(&s->rng, d->npages + 1);
	if (log.first_page > d->npages)
		log.first_page = d->npages;
	rest = d->npages - log.first_page;
	k = diff_below(&s->rng, 100);
	if (k < 50)
		log.num_pages = (uint32_t)rest;
	else if (k < 85)
		log.num_pages = (uint32_t)(diff_below(&s->rng, rest / 64 + 1) * 64);
	else
		log.num_pages = (uint32_t)diff_below(&s->rng, rest + 65);
	len = ((size_t)log.num_pages + 63) / 64 * 8 + 8;
	bits = malloc(len);
	if (!bits)
		return;
	for (size_t i = 0; i < len; i++)
		bits[i] = diff_pct(&s->rng, 60) ? 0xff : (uint8_t)diff_rand(&s->rng);
	log.dirty_bitmap = bits;
	rr = realkvm_clear_dirty_log(&s->p.real, &log);
	ur = ukvm_clear_dirty_log(s->p.ukvm, &log);
	snprintf(call, sizeof(call), "CLEAR_DIRTY_LOG(slot %u, first_page %llu, num_pages %u)",
		 d->id, (unsigned long long)log.first_page, log.num_pages);
	if (!diff_results(s->c, s->st, DK_CLEAR_LOG, call, rr, ur))
		s->diverged = true;
	free(bits);
}

static void compare_memory(struct dd_scn *s, struct dd_slot *d)
{
	size_t size = d->npages * PAGE;
	uint8_t *buf = malloc(size);
	char call[64];
	int r;

	if (!buf)
		return;
	snprintf(call, sizeof(call), "memory of slot %u", d->id);
	diff_count(s->st, DK_MEMORY, 0);
	r = ukvm_host_read(d->ukvm_hva, buf, size);
	if (!diff_check(s->c, s->st, r == 0, call, "ukvm_host_read: %s", diff_err(r))) {
		s->diverged = true;
	} else if (memcmp(buf, d->real_mem, size)) {
		size_t i = 0;

		while (buf[i] == d->real_mem[i])
			i++;
		diff_check(s->c, s->st, false, call, "differs at gpa %#llx: real %#x, ukvm %#x",
			   (unsigned long long)(d->gpa + i), d->real_mem[i], buf[i]);
		s->diverged = true;
	}
	free(buf);
}

/* Between two rounds: one to three log calls or slot changes. */
static void log_ops(struct dd_scn *s)
{
	int n = 1 + (int)diff_below(&s->rng, 4);

	for (int i = 0; i < n && !s->diverged; i++) {
		struct dd_slot *d = &s->slots[diff_below(&s->rng, (uint64_t)s->nr_slots)];
		uint64_t k = diff_below(&s->rng, 100);

		if (k < 40) {
			get_log(s, d, d->id);
		} else if (k < 70) {
			clear_log(s, d);
		} else if (k < 82 && d->present) {
			/* Logging off or on: a FLAGS_ONLY change (not on read-only). */
			if (!slot_set(s, d, d->flags ^ KVM_MEM_LOG_DIRTY_PAGES, d->gpa, false))
				d->flags ^= KVM_MEM_LOG_DIRTY_PAGES;
		} else if (k < 90 && d->present) {
			/* A move, up into the free space above every slot. */
			uint64_t gpa = s->gpa_end;

			if (!slot_set(s, d, d->flags, gpa, false)) {
				d->gpa = gpa;
				s->gpa_end += d->npages * PAGE + 64 * PAGE;
			}
		} else if (k < 95 && d->present) {
			if (!slot_set(s, d, d->flags, d->gpa, true))
				d->present = false;
		} else if (!d->present) {
			if (!slot_set(s, d, d->flags, d->gpa, false))
				d->present = true;
		} else {
			get_log(s, NULL, CODE_SLOT);	/* no logging: ENOENT */
		}
	}
}

/* ---- one scenario --------------------------------------------------------- */

static int guest_setup(struct dd_scn *s)
{
	int r;

	r = realkvm_guest_create(&s->p.real, CODE_SLOT, CODE_GPA, &s->g);
	if (r)
		return r;
	s->code_hva = ukvm_host_mmap(REALKVM_GUEST_CODE_SIZE, 0);
	if (s->code_hva >= (unsigned long)-4095L) {
		s->code_hva = 0;
		return -ENOMEM;
	}
	/* The same code slot in ukvm's VM (never accessed by its vCPU). */
	r = ukvm_set_user_memory_region(s->p.ukvm, &(struct kvm_userspace_memory_region){
		.slot = CODE_SLOT, .guest_phys_addr = CODE_GPA,
		.memory_size = REALKVM_GUEST_CODE_SIZE, .userspace_addr = s->code_hva });
	if (r)
		return r;
	return ukvm_create_vcpu(s->p.ukvm, 0, &s->vcpu);
}

static int run_scenario(struct dd_scn *s)
{
	static const uint64_t modes[] = { 0, 0, 1, 3, 3 };
	int rounds, r;

	s->g = NULL;
	s->vcpu = NULL;
	s->code_hva = 0;
	s->diverged = false;
	r = diff_pair_create(s->c, &s->p);
	if (r)
		return r;
	s->manual = modes[diff_below(&s->rng, 5)];
	if (s->c->verbose > 1)
		printf("# dirty-log scenario %llu: manual protect %llu\n",
		       (unsigned long long)s->c->seq, (unsigned long long)s->manual);
	if (s->manual)
		diff_pair_enable_manual(s->c, s->st, &s->p, s->manual);
	r = guest_setup(s);
	if (!r)
		r = create_slots(s);
	rounds = 2 + (int)diff_below(&s->rng, 12);
	for (int i = 0; i < rounds && !r && !s->diverged; i++) {
		r = run_accesses(s);
		for (int j = 0; j < s->nr_slots && !r && !s->diverged; j++) {
			if (s->slots[j].present)
				compare_memory(s, &s->slots[j]);
		}
		if (!r && !s->diverged)
			log_ops(s);
	}
	/* Last: every slot's log, on both sides. */
	for (int j = 0; j < s->nr_slots && !r && !s->diverged; j++)
		get_log(s, &s->slots[j], s->slots[j].id);

	if (s->g)
		realkvm_guest_destroy(s->g);
	diff_pair_destroy(&s->p);
	if (s->code_hva)
		ukvm_host_munmap(s->code_hva, REALKVM_GUEST_CODE_SIZE);
	free_slots(s);
	return r;
}

int diff_dirty_run(struct diff_ctx *c, struct diff_stats *st)
{
	struct dd_scn *s = calloc(1, sizeof(*s));
	int r = 0;

	if (!s)
		return -ENOMEM;
	s->c = c;
	s->st = st;
	for (c->seq = c->only_seq >= 0 ? (uint64_t)c->only_seq : 0;
	     st->calls < c->calls && !r; c->seq++) {
		diff_rng_seed(&s->rng, c->seed * 1000033 + c->seq);
		r = run_scenario(s);
		st->sequences++;
		if (c->only_seq >= 0)
			break;
	}
	free(s);
	return r;
}
