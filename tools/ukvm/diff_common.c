// SPDX-License-Identifier: MIT
/*
 * What both parts of `ukvm diff-kvm` share: the random numbers, the host
 * parameters measured on the real KVM (and handed to ukvm's VMs), a pair of
 * VMs, and the reporting of disagreements.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "diff_kvm.h"

#define PAGE		4096ULL

/* ---- random numbers ---------------------------------------------------- */

void diff_rng_seed(struct diff_rng *r, uint64_t seed)
{
	/* splitmix64 of the seed: never the all-zero state. */
	uint64_t z = seed + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	r->s = (z ^ (z >> 31)) | 1;
}

uint64_t diff_rand(struct diff_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dULL;
}

uint64_t diff_below(struct diff_rng *r, uint64_t n)
{
	return n ? diff_rand(r) % n : 0;
}

bool diff_pct(struct diff_rng *r, unsigned int pct)
{
	return diff_below(r, 100) < pct;
}

/* ---- the host's parameters -------------------------------------------- */

static int probe_region(struct realkvm_vm *vm, uint64_t gpa, uint64_t size, uint64_t hva)
{
	struct kvm_userspace_memory_region m = {
		.slot = 0, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = hva,
	};
	int r = realkvm_set_user_memory_region(vm, &m);

	if (!r) {
		m.memory_size = 0;
		realkvm_set_user_memory_region(vm, &m);
	}
	return r;
}

/*
 * Does a read fault in a dirty-logged slot, on a page the host maps
 * writable, log the page?  The tiny guest reads one such page.
 */
static int probe_ro_reads(void)
{
	const uint64_t gpa = 4ULL << 20, size = 2 * PAGE;
	struct kvm_userspace_memory_region m = {
		.slot = 1, .flags = KVM_MEM_LOG_DIRTY_PAGES, .guest_phys_addr = gpa,
		.memory_size = size,
	};
	struct ukvm_guest_access a = { .gpa = gpa + 64, .len = 8, .type = UKVM_ACCESS_READ };
	uint64_t bitmap = 0;
	struct kvm_dirty_log log = { .slot = 1, .dirty_bitmap = &bitmap };
	struct realkvm_guest *g = NULL;
	struct realkvm_vm vm;
	uint8_t *mem;
	int r = -1;

	if (!realkvm_guest_available(NULL, 0))
		return -1;
	mem = realkvm_alloc(size);
	if (!mem)
		return -1;
	memset(mem, 0x5a, size);	/* present and writable in our page tables */
	m.userspace_addr = (uintptr_t)mem;
	if (realkvm_vm_create(&vm))
		goto out;
	if (!realkvm_guest_create(&vm, 0, 1ULL << 20, &g) &&
	    !realkvm_set_user_memory_region(&vm, &m) &&
	    !realkvm_guest_run(g, &a, 1, NULL, 0, NULL) &&
	    !realkvm_get_dirty_log(&vm, &log))
		r = !(bitmap & 1);
	if (g)
		realkvm_guest_destroy(g);
	realkvm_vm_destroy(&vm);
out:
	realkvm_free(mem, size);
	return r;
}

int diff_host_probe(struct diff_host *h, char *why, size_t len)
{
	struct realkvm_vm vm;
	uint64_t lo, hi;
	int r;

	r = realkvm_vm_create(&vm);
	if (r) {
		snprintf(why, len, "KVM_CREATE_VM: %s", strerror(-r));
		return r;
	}
	h->nr_memslots = realkvm_check_extension(&vm, KVM_CAP_NR_MEMSLOTS);
	r = realkvm_check_extension(&vm, KVM_CAP_MULTI_ADDRESS_SPACE);
	h->nr_as = r > 1 ? (unsigned int)r : 1;
	h->manual_caps = realkvm_check_extension(&vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);

	/* The highest gpa: a one-page slot ending at 2^bits. */
	h->max_gpa_bits = 0;
	for (unsigned int bits = 52; bits >= 32 && !h->max_gpa_bits; bits--)
		if (!probe_region(&vm, (1ULL << bits) - PAGE, PAGE, 1ULL << 30))
			h->max_gpa_bits = bits;

	/* The highest end of a userspace range (access_ok()), by bisection. */
	lo = 1ULL << 20;		/* pages: 4 GiB is surely valid */
	hi = 1ULL << 52;
	if (probe_region(&vm, 0, PAGE, (lo - 1) * PAGE))
		lo = 0;
	while (lo && lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;

		if (!probe_region(&vm, 0, PAGE, (mid - 1) * PAGE))
			lo = mid;
		else
			hi = mid - 1;
	}
	h->hva_limit = lo * PAGE;
	realkvm_vm_destroy(&vm);
	h->ro_reads = probe_ro_reads();

	if (h->nr_memslots <= 0 || !h->max_gpa_bits || !h->hva_limit) {
		snprintf(why, len, "cannot measure the host KVM (slots %d, gpa bits %u, "
			 "hva limit %#" PRIx64 ")", h->nr_memslots, h->max_gpa_bits,
			 h->hva_limit);
		return -ENOTSUP;
	}
	return 0;
}

void diff_host_print(const struct diff_host *h)
{
	printf("# host KVM: %d memslots, %u address space%s, gpa bits %u, "
	       "hva limit %#" PRIx64 ", manual-protect caps %#x, read faults in "
	       "logged slots %s\n",
	       h->nr_memslots, h->nr_as, h->nr_as > 1 ? "s" : "", h->max_gpa_bits,
	       h->hva_limit, (unsigned int)h->manual_caps,
	       h->ro_reads < 0 ? "not measured" :
	       h->ro_reads ? "map read-only" : "map writable and log");
}

/* ---- a pair of VMs ------------------------------------------------------ */

int diff_pair_create(struct diff_ctx *c, struct diff_pair *p)
{
	int r = realkvm_vm_create(&p->real);

	if (r)
		return r;
	r = ukvm_create_vm(&c->vm_cfg, &p->ukvm);
	if (r) {
		realkvm_vm_destroy(&p->real);
		return r;
	}
	return 0;
}

void diff_pair_destroy(struct diff_pair *p)
{
	realkvm_vm_destroy(&p->real);
	ukvm_destroy_vm(p->ukvm);
	p->ukvm = NULL;
}

bool diff_pair_enable_manual(struct diff_ctx *c, struct diff_stats *st,
			     struct diff_pair *p, uint64_t args0)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, .args = { args0 } };
	int rr = realkvm_enable_cap(&p->real, &cap);
	int ur = ukvm_enable_cap(p->ukvm, &cap);

	diff_count(st, DK_ENABLE_CAP, rr);
	return diff_check(c, st, rr == ur, "ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2)",
			  "real %s, ukvm %s", diff_err(rr), diff_err(ur));
}

/* ---- reporting ------------------------------------------------------------ */

const char *diff_err(int r)
{
	static const struct { int e; const char *s; } names[] = {
		{ EINVAL, "EINVAL" }, { EEXIST, "EEXIST" }, { ENOENT, "ENOENT" },
		{ EFAULT, "EFAULT" }, { ENOMEM, "ENOMEM" }, { EIO, "EIO" },
		{ ENXIO, "ENXIO" }, { EBUSY, "EBUSY" }, { E2BIG, "E2BIG" },
		{ ENOTTY, "ENOTTY" }, { EPERM, "EPERM" }, { ENOSPC, "ENOSPC" },
	};
	/* A few buffers: a report prints both results in one call. */
	static __thread char bufs[4][24];
	static __thread unsigned int next;
	char *buf = bufs[next++ % 4];

	if (r == 0)
		return "0";
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (r == -names[i].e) {
			snprintf(buf, sizeof(bufs[0]), "-%s", names[i].s);
			return buf;
		}
	}
	snprintf(buf, sizeof(bufs[0]), "%d", r);
	return buf;
}

void diff_fmt_region(char *buf, size_t len, const struct kvm_userspace_memory_region *m)
{
	snprintf(buf, len, "SET_USER_MEMORY_REGION(slot=%u:%u flags=%#x gpa=%#llx "
		 "size=%#llx hva=%#llx)", m->slot >> 16, m->slot & 0xffff, m->flags,
		 (unsigned long long)m->guest_phys_addr,
		 (unsigned long long)m->memory_size,
		 (unsigned long long)m->userspace_addr);
}

void diff_count(struct diff_stats *st, enum diff_kind kind, int r)
{
	enum diff_res res = r == 0 ? DR_OK : r == -EINVAL ? DR_EINVAL :
			    r == -EEXIST ? DR_EEXIST : r == -ENOENT ? DR_ENOENT :
			    r == -EFAULT ? DR_EFAULT : DR_OTHER;

	st->by[kind][res]++;
}

void diff_stats_print(const struct diff_stats *st, const char *prefix)
{
	static const char *const kinds[DK_NR] = {
		"SET_USER_MEMORY_REGION", "ENABLE_CAP", "GET_DIRTY_LOG",
		"CLEAR_DIRTY_LOG", "CHECK_EXTENSION", "guest accesses",
		"MMIO exits", "slot memory",
	};
	static const char *const res[DR_NR] = {
		"ok", "EINVAL", "EEXIST", "ENOENT", "EFAULT", "other",
	};

	for (int k = 0; k < DK_NR; k++) {
		uint64_t total = 0;

		for (int r = 0; r < DR_NR; r++)
			total += st->by[k][r];
		if (!total)
			continue;
		printf("%s  %-22s %8" PRIu64, prefix, kinds[k], total);
		for (int r = 0; r < DR_NR; r++)
			if (st->by[k][r])
				printf("  %s %" PRIu64, res[r], st->by[k][r]);
		putchar('\n');
	}
	if (st->dirty_bits)
		printf("%s  dirty bits compared    %8" PRIu64 "\n", prefix, st->dirty_bits);
}

bool diff_check(struct diff_ctx *c, struct diff_stats *st, bool agree,
		const char *call, const char *fmt, ...)
{
	va_list ap;

	st->calls++;
	if (agree)
		return true;
	st->disagreements++;
	if (!c->verbose && c->printed >= c->max_printed)
		return false;
	c->printed++;
	printf("DISAGREE [seed %" PRIu64 " sequence %" PRIu64 "] %s: ", c->seed, c->seq, call);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!c->verbose && c->printed == c->max_printed)
		printf("# (further disagreements are counted, not printed: --verbose)\n");
	return false;
}

void diff_call(struct diff_ctx *c, struct diff_stats *st, enum diff_kind kind,
	       const char *call, int rr)
{
	diff_count(st, kind, rr);
	if (c->verbose > 1)
		printf("  %s = %s\n", call, diff_err(rr));
}

bool diff_results(struct diff_ctx *c, struct diff_stats *st, enum diff_kind kind,
		  const char *call, int rr, int ur)
{
	diff_call(c, st, kind, call, rr);
	return diff_check(c, st, rr == ur, call, "real %s, ukvm %s", diff_err(rr),
			  diff_err(ur));
}

void diff_count_dirty(struct diff_stats *st, const uint8_t *bitmap, size_t len)
{
	for (size_t i = 0; i < len; i++)
		st->dirty_bits += (uint64_t)__builtin_popcount(bitmap[i]);
}
