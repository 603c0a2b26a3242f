// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the memslot and dirty-log API of one ukvm VM.  The input
 * is decoded into a VM configuration and a sequence of
 * KVM_SET_USER_MEMORY_REGION, KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2),
 * KVM_GET_DIRTY_LOG and KVM_CLEAR_DIRTY_LOG calls and guest accesses on a
 * vCPU (docs/diff-kvm.md).  After every call:
 *   - no invariant failure (ukvm_invariant_failures()), no validator report;
 *   - a failing call changed nothing: every memslot (as, id, base, npages,
 *     flags, hva), every generation, every dirty bitmap (KVM's one
 *     exception: GET_DIRTY_LOG without manual protect harvests before its
 *     copy-out can fail with -EFAULT);
 *   - a successful one did exactly what KVM documents: the slot as asked
 *     (or gone), GET's bitmap is the log as it was (and, without manual
 *     protect, the log is then empty), CLEAR cleared exactly the bits asked
 *     for in its range, ENABLE_CAP set the mode;
 *   - both memslot sets of each address space index the same slots.
 * Any failure aborts, so libFuzzer keeps the input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/host.h"
#include "kvm/kvm_internal.h"
#include "lockdep/lockdep.h"
#include "sync/bug.h"
#include "sync/thread.h"
#include "ukvm/ukvm.h"

#define PG		4096ULL
#define HOST_MEM	(8UL << 20)	/* host memory behind most slots */
#define MAX_SNAP	64
#define MAX_PAGES	(1ULL << 20)	/* valid slots stay below this */
#define MAX_NR_PAGES	((1ULL << 31) - 1)

/* UKVM_FUZZ_TRACE=1: print every call and its result (to read an input). */
static bool trace;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the input ---------------------------------------------------------- */

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static uint64_t get(struct fz_in *in, unsigned int bytes)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < bytes && in->n; i++, in->p++, in->n--)
		v |= (uint64_t)*in->p << (8 * i);
	return v;
}

/* ---- snapshots ------------------------------------------------------------ */

struct fz_slot {
	int as, id;
	uint64_t base, npages, hva;
	uint32_t flags;
	unsigned long *bitmap;		/* a copy of the live log, or NULL */
};

struct fz_snap {
	int n;
	uint64_t gen[KVM_ADDRESS_SPACE_NUM];
	uint64_t manual;
	struct fz_slot s[MAX_SNAP];
};

static void snap_free(struct fz_snap *sn)
{
	for (int i = 0; i < sn->n; i++)
		free(sn->s[i].bitmap);
	sn->n = 0;
}

static void snapshot(struct kvm *kvm, struct fz_snap *sn)
{
	sn->n = 0;
	mutex_lock(&kvm->slots_lock);
	sn->manual = kvm->manual_dirty_log_protect;
	for (int as = 0; as < KVM_ADDRESS_SPACE_NUM; as++) {
		struct kvm_memslots *slots = __kvm_memslots(kvm, as);
		struct kvm_memory_slot *m;

		sn->gen[as] = kvm_memslots_gen(slots);
		kvm_for_each_memslot(m, slots) {
			struct fz_slot *f;

			if (sn->n == MAX_SNAP)
				abort();
			f = &sn->s[sn->n++];
			*f = (struct fz_slot){ as, m->id, m->base_gfn, m->npages,
					       m->userspace_addr, m->flags, NULL };
			if (m->dirty_bitmap) {
				size_t bytes = kvm_dirty_bitmap_bytes(m);

				/* Dirty-bit mode: the log includes the SPTEs' D bits. */
				kvm_arch_call(kvm, sync_dirty_log, kvm, m);

				f->bitmap = malloc(bytes);
				if (!f->bitmap)
					abort();
				memcpy(f->bitmap, m->dirty_bitmap, bytes);
			}
		}
	}
	mutex_unlock(&kvm->slots_lock);
}

static struct fz_slot *snap_find(struct fz_snap *sn, uint32_t slot)
{
	for (int i = 0; i < sn->n; i++)
		if (sn->s[i].as == (int)(slot >> 16) && sn->s[i].id == (int)(slot & 0xffff))
			return &sn->s[i];
	return NULL;
}

static size_t bitmap_bytes(uint64_t npages)
{
	return (npages + 63) / 64 * 8;
}

#define FZ_FAIL(...)							\
	do {								\
		fprintf(stderr, "fuzz_memslot: " __VA_ARGS__);		\
		fputc('\n', stderr);					\
		abort();						\
	} while (0)

/*
 * @a and @b describe the same slots; bitmaps too unless @skip_slot; the same
 * generations, but for address space @moved_as (or -1), where a MOVE that
 * failed after publishing the invalid slot had to swap twice.
 */
static void snap_compare(struct fz_snap *a, struct fz_snap *b, const char *call,
			 const struct fz_slot *skip_slot, int moved_as)
{
	if (a->n != b->n || a->manual != b->manual)
		FZ_FAIL("%s failed but changed the slots (%d -> %d) or the mode", call,
			a->n, b->n);
	for (int as = 0; as < KVM_ADDRESS_SPACE_NUM; as++)
		if (a->gen[as] != b->gen[as] &&
		    (as != moved_as || b->gen[as] != a->gen[as] + 2 * KVM_ADDRESS_SPACE_NUM))
			FZ_FAIL("%s failed but changed generation %d (%#llx -> %#llx)", call,
				as, (unsigned long long)a->gen[as],
				(unsigned long long)b->gen[as]);
	for (int i = 0; i < a->n; i++) {
		struct fz_slot *x = &a->s[i], *y = &b->s[i];

		if (x->as != y->as || x->id != y->id || x->base != y->base ||
		    x->npages != y->npages || x->hva != y->hva || x->flags != y->flags ||
		    !x->bitmap != !y->bitmap)
			FZ_FAIL("%s failed but changed slot %d:%d", call, x->as, x->id);
		if (x->bitmap && x != skip_slot &&
		    memcmp(x->bitmap, y->bitmap, bitmap_bytes(x->npages)))
			FZ_FAIL("%s failed but changed the log of slot %d:%d", call, x->as, x->id);
	}
}

/* Both sets of every address space index the same slots; trees sound. */
static void check_sets(struct kvm *kvm)
{
	mutex_lock(&kvm->slots_lock);
	for (int as = 0; as < KVM_ADDRESS_SPACE_NUM; as++) {
		struct kvm_memslots *active = __kvm_memslots(kvm, as);
		struct kvm_memslots *inactive = kvm_get_inactive_memslots(kvm, as);
		struct kvm_memory_slot *m;
		gfn_t next = 0;

		if (kvm_memslots_count(active) != kvm_memslots_count(inactive) ||
		    (kvm_memslots_gen(active) & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS) ||
		    !memslot_hva_check(&active->hva_tree, active->node_idx) ||
		    !memslot_hva_check(&inactive->hva_tree, inactive->node_idx))
			FZ_FAIL("memslot sets of address space %d differ", as);
		kvm_for_each_memslot(m, active) {
			if (id_to_memslot(inactive, m->id) != m ||
			    search_memslots(active, m->base_gfn + m->npages - 1, false) != m ||
			    (m->flags & KVM_MEMSLOT_INVALID) || m->base_gfn < next)
				FZ_FAIL("slot %d:%d badly indexed", as, m->id);
			next = m->base_gfn + m->npages;
		}
	}
	mutex_unlock(&kvm->slots_lock);
}

static void check_clean(const char *call)
{
	if (ukvm_invariant_failures() || lockdep_report_count() || lockdep_warning_count())
		FZ_FAIL("after %s: %lu invariant failures, %lu validator reports, "
			"%lu warnings", call, ukvm_invariant_failures(),
			lockdep_report_count(), lockdep_warning_count());
}

/* ---- one input ------------------------------------------------------------ */

struct fz {
	struct fz_in in;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	unsigned long hva;		/* HOST_MEM of host memory */
	unsigned int gpa_bits;
	uint64_t hva_limit;
	struct fz_snap before, after;
};

static uint32_t gen_slot(struct fz *f)
{
	static const uint32_t ids[] = {
		0, 1, 2, 3, 4, 5, 1u << 16, 1u << 16 | 1, 32763, 32764, 32766,
		32767, 0xffff, 2u << 16,
	};
	uint8_t k = (uint8_t)get(&f->in, 1);

	if (k & 0x80)
		return (uint32_t)get(&f->in, 4);
	return ids[k % (sizeof(ids) / sizeof(ids[0]))];
}

static void do_set(struct fz *f)
{
	struct kvm_userspace_memory_region m = { .slot = gen_slot(f) };
	uint8_t fl = (uint8_t)get(&f->in, 1), gk = (uint8_t)get(&f->in, 1);
	uint8_t sk = (uint8_t)get(&f->in, 1), hk = (uint8_t)get(&f->in, 1);
	struct fz_slot *old, *now;
	uint64_t npages;
	int r;

	m.flags = fl & 0x80 ? 1u << (fl & 31) : fl & 3;
	switch (sk % 8) {
	case 0: npages = 0; break;
	case 1: npages = MAX_NR_PAGES + 1 + get(&f->in, 1); break;
	case 2:
		/* Huge sizes only past the limit: valid ones cost npages. */
		npages = get(&f->in, 8) >> 12;
		if (npages > MAX_PAGES && npages <= MAX_NR_PAGES)
			npages |= 1ULL << 31;
		break;
	case 3: npages = 1 + get(&f->in, 3) % MAX_PAGES; break;
	default: npages = 1 + get(&f->in, 2) % 1024; break;
	}
	m.memory_size = npages * PG + (sk & 0x80 ? 1 + get(&f->in, 1) : 0);
	switch (gk % 6) {
	case 0:
		m.guest_phys_addr = (1ULL << f->gpa_bits) - npages * PG - get(&f->in, 1) * PG;
		break;
	case 1: m.guest_phys_addr = get(&f->in, 8); break;
	case 2: m.guest_phys_addr = ~0ULL << 12; break;
	default: m.guest_phys_addr = get(&f->in, 2) * PG; break;
	}
	switch (hk % 6) {
	case 0: m.userspace_addr = f->hva_limit - npages * PG + (get(&f->in, 1) & 1) * PG; break;
	case 1: m.userspace_addr = get(&f->in, 8); break;
	case 2: m.userspace_addr = 0; break;
	default: m.userspace_addr = f->hva + (get(&f->in, 2) % 4096) * PG; break;
	}
	if (hk & 0x80)
		m.userspace_addr |= 1 + get(&f->in, 1) % (PG - 1);

	snapshot(f->kvm, &f->before);
	old = snap_find(&f->before, m.slot);
	r = ukvm_set_user_memory_region(f->kvm, &m);
	if (trace)
		fprintf(stderr, "SET_USER_MEMORY_REGION(slot=%#x flags=%#x gpa=%#llx size=%#llx "
			"hva=%#llx) = %d\n", m.slot, m.flags,
			(unsigned long long)m.guest_phys_addr,
			(unsigned long long)m.memory_size,
			(unsigned long long)m.userspace_addr, r);
	check_clean("SET_USER_MEMORY_REGION");
	snapshot(f->kvm, &f->after);
	if (r) {
		/*
		 * KVM (kvm-brief.md 2.4): a MOVE invalidates the old slot (a
		 * swap), then the arch may refuse the new place (beyond the
		 * highest gfn): the old slot is re-published (a second swap).
		 * Nothing else may change.
		 */
		bool move = old && m.memory_size && m.memory_size == old->npages * PG &&
			    m.userspace_addr == old->hva && m.guest_phys_addr / PG != old->base;

		snap_compare(&f->before, &f->after, "SET_USER_MEMORY_REGION", NULL,
			     move ? old->as : -1);
		return;
	}
	now = snap_find(&f->after, m.slot);
	if (!m.memory_size) {
		if (!old || now)
			FZ_FAIL("a DELETE of slot %#x succeeded but did not delete it", m.slot);
	} else if (!now || now->base != m.guest_phys_addr >> 12 ||
		   now->npages != m.memory_size >> 12 || now->hva != m.userspace_addr ||
		   now->flags != m.flags || !now->bitmap != !(m.flags & KVM_MEM_LOG_DIRTY_PAGES)) {
		FZ_FAIL("slot %#x is not what SET_USER_MEMORY_REGION asked for", m.slot);
	}
	if (old && now && old->base == now->base && old->flags == now->flags &&
	    f->before.gen[old->as] != f->after.gen[old->as])
		FZ_FAIL("an identical SET_USER_MEMORY_REGION changed the generation");
	check_sets(f->kvm);
}

static void do_enable_cap(struct fz *f)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };
	uint8_t k = (uint8_t)get(&f->in, 1);
	int r;

	if (k & 0x40)
		cap.cap = k & 0x20 ? KVM_CAP_MANUAL_DIRTY_LOG_PROTECT : (uint32_t)get(&f->in, 1);
	if (k & 0x80)
		cap.flags = (uint32_t)get(&f->in, 1);
	cap.args[0] = k & 0x10 ? get(&f->in, 8) : k & 7;
	snapshot(f->kvm, &f->before);
	r = ukvm_enable_cap(f->kvm, &cap);
	if (trace)
		fprintf(stderr, "ENABLE_CAP(cap=%u flags=%#x args[0]=%#llx) = %d\n", cap.cap,
			cap.flags, (unsigned long long)cap.args[0], r);
	check_clean("ENABLE_CAP");
	snapshot(f->kvm, &f->after);
	if (r)
		snap_compare(&f->before, &f->after, "ENABLE_CAP", NULL, -1);
	else if (f->after.manual != cap.args[0])
		FZ_FAIL("ENABLE_CAP succeeded but the mode is %#llx",
			(unsigned long long)f->after.manual);
}

static void do_get_log(struct fz *f)
{
	struct kvm_dirty_log log = { .slot = gen_slot(f) };
	bool null = (get(&f->in, 1) & 15) == 0;
	struct fz_slot *b, *a;
	size_t bytes;
	int r;

	snapshot(f->kvm, &f->before);
	b = snap_find(&f->before, log.slot);
	bytes = b ? bitmap_bytes(b->npages) : 8;
	/* Exactly the size KVM copies: ASan sees a byte more. */
	log.dirty_bitmap = null ? NULL : malloc(bytes);
	r = ukvm_get_dirty_log(f->kvm, &log);
	if (trace)
		fprintf(stderr, "GET_DIRTY_LOG(slot=%#x%s) = %d, word 0 %#llx\n", log.slot,
			null ? " NULL" : "", r,
			r ? 0ULL : (unsigned long long)*(uint64_t *)log.dirty_bitmap);
	check_clean("GET_DIRTY_LOG");
	snapshot(f->kvm, &f->after);
	if (r) {
		/* KVM harvests, then fails to copy out: the log is consumed. */
		bool consumed = r == -EFAULT && !f->before.manual;

		snap_compare(&f->before, &f->after, "GET_DIRTY_LOG", consumed ? b : NULL, -1);
	} else {
		a = snap_find(&f->after, log.slot);
		if (!b || !b->bitmap || !a)
			FZ_FAIL("GET_DIRTY_LOG succeeded on a slot without a log");
		if (memcmp(log.dirty_bitmap, b->bitmap, bytes))
			FZ_FAIL("GET_DIRTY_LOG returned something else than the log");
		for (size_t i = 0; !f->before.manual && i < bytes / 8; i++)
			if (a->bitmap[i])
				FZ_FAIL("GET_DIRTY_LOG left bits without manual protect");
		if (f->before.manual && memcmp(a->bitmap, b->bitmap, bytes))
			FZ_FAIL("GET_DIRTY_LOG changed the log with manual protect");
	}
	free(log.dirty_bitmap);
}

static void do_clear_log(struct fz *f)
{
	struct kvm_clear_dirty_log log = { .slot = gen_slot(f) };
	uint8_t k = (uint8_t)get(&f->in, 1), pattern = (uint8_t)get(&f->in, 1);
	struct fz_slot *b, *a;
	uint64_t *bits = NULL;
	size_t bytes;
	int r;

	snapshot(f->kvm, &f->before);
	b = snap_find(&f->before, log.slot);
	log.first_page = k & 0x80 ? get(&f->in, 8) : get(&f->in, 1) * (k & 0x40 ? 1 : 64);
	log.num_pages = k & 0x20 ? (uint32_t)get(&f->in, 4) :
			k & 0x10 && b && log.first_page <= b->npages ?
			(uint32_t)(b->npages - log.first_page) : (uint32_t)get(&f->in, 1) * 64;
	bytes = log.num_pages <= MAX_PAGES ? bitmap_bytes(log.num_pages) : 8;
	if ((k & 15) != 15) {
		bits = malloc(bytes ? bytes : 1);
		if (!bits)
			abort();
		for (size_t i = 0; i < bytes; i++)
			((uint8_t *)bits)[i] = (uint8_t)(pattern * (i + 1) ^ (k & 8 ? 0xff : 0));
	}
	log.dirty_bitmap = bits;
	r = ukvm_clear_dirty_log(f->kvm, &log);
	if (trace)
		fprintf(stderr, "CLEAR_DIRTY_LOG(slot=%#x first_page=%llu num_pages=%u%s) = %d\n",
			log.slot, (unsigned long long)log.first_page, log.num_pages,
			bits ? "" : " NULL", r);
	check_clean("CLEAR_DIRTY_LOG");
	snapshot(f->kvm, &f->after);
	if (r) {
		snap_compare(&f->before, &f->after, "CLEAR_DIRTY_LOG", NULL, -1);
	} else {
		a = snap_find(&f->after, log.slot);
		if (!b || !b->bitmap || !a)
			FZ_FAIL("CLEAR_DIRTY_LOG succeeded on a slot without a log");
		/* after == before & ~(asked for, within the slot) */
		for (uint64_t p = 0; p < b->npages; p++) {
			bool was = b->bitmap[p / 64] >> (p % 64) & 1;
			bool is = a->bitmap[p / 64] >> (p % 64) & 1;
			uint64_t rel = p - log.first_page;
			bool asked = p >= log.first_page && rel < log.num_pages &&
				     (bits[rel / 64] >> (rel % 64) & 1);

			if (is != (was && !asked))
				FZ_FAIL("CLEAR_DIRTY_LOG: page %llu was %d, asked %d, is %d",
					(unsigned long long)p, was, asked, is);
		}
	}
	free(bits);
}

/* ---- the guest ------------------------------------------------------------- */

struct fz_script {
	struct ukvm_guest_access acc[16];
	int n, next;
};

static enum ukvm_guest_step fz_next(void *ctx, struct ukvm_guest_access *a)
{
	struct fz_script *s = ctx;

	if (s->next >= s->n)
		return UKVM_GUEST_EXIT;
	*a = s->acc[s->next];
	return UKVM_GUEST_ACCESS;
}

static void fz_complete(void *ctx, const struct ukvm_guest_access *a)
{
	struct fz_script *s = ctx;

	(void)a;
	s->next++;
}

static const struct ukvm_guest_ops fz_ops = { .next = fz_next, .complete = fz_complete };

static void do_guest(struct fz *f)
{
	static const uint8_t lens[] = { 1, 2, 4, 8 };
	struct fz_script s = { .n = 1 + (int)(get(&f->in, 1) % 16) };
	struct kvm_run run;
	int r;

	if (!f->vcpu && ukvm_create_vcpu(f->kvm, 0, &f->vcpu))
		abort();
	snapshot(f->kvm, &f->before);
	for (int i = 0; i < s.n; i++) {
		struct ukvm_guest_access *a = &s.acc[i];
		uint8_t k = (uint8_t)get(&f->in, 1);
		struct fz_slot *sl = NULL;

		if (f->before.n)
			sl = &f->before.s[get(&f->in, 1) % (uint64_t)f->before.n];

		a->len = lens[k & 3];
		a->type = k & 4 ? UKVM_ACCESS_READ : UKVM_ACCESS_WRITE;
		a->value = get(&f->in, 1) * 0x0101010101010101ULL;
		if (sl && !(k & 0x80))
			a->gpa = (sl->base + get(&f->in, 2) % sl->npages) * PG;
		else
			a->gpa = get(&f->in, 2) * PG;
		a->gpa += (get(&f->in, 2) % (PG / a->len)) * a->len;
	}
	snap_free(&f->before);
	if (ukvm_vcpu_set_guest(f->vcpu, &fz_ops, &s))
		abort();
	for (int exits = 0; exits < 64; exits++) {
		memset(&run, 0, sizeof(run));
		r = ukvm_vcpu_run(f->vcpu, &run);
		if (trace)
			fprintf(stderr, "KVM_RUN (%d/%d accesses done) = %d, exit %u\n",
				s.next, s.n, r, run.exit_reason);
		check_clean("KVM_RUN");
		/* -EFAULT: a slot whose hva has no host memory.  Stop there. */
		if (r || run.exit_reason != KVM_EXIT_MMIO)
			break;
	}
	check_sets(f->kvm);

	/* No lost dirty bit: every write done in a logged, writable slot. */
	snapshot(f->kvm, &f->after);
	for (int i = 0; i < s.next; i++) {
		const struct ukvm_guest_access *a = &s.acc[i];
		uint64_t gfn = a->gpa / PG;

		if (a->type != UKVM_ACCESS_WRITE)
			continue;
		for (int j = 0; j < f->after.n; j++) {
			struct fz_slot *sl = &f->after.s[j];

			if (sl->as || gfn < sl->base || gfn - sl->base >= sl->npages ||
			    !sl->bitmap || (sl->flags & KVM_MEM_READONLY))
				continue;
			if (!(sl->bitmap[(gfn - sl->base) / 64] >> ((gfn - sl->base) % 64) & 1))
				FZ_FAIL("a write to gpa %#llx is missing from the log of slot %d",
					(unsigned long long)a->gpa, sl->id);
		}
	}
}

/* ---- libFuzzer ------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const struct host_config cfg = {
		.mem_bytes = 128UL << 20, .nr_cpus = 2, .poison_frames = true,
	};

	(void)argc;
	(void)argv;
	trace = getenv("UKVM_FUZZ_TRACE") != NULL;
	ukvm_thread_register_current("fuzz");
	if (host_init(&cfg) || ukvm_init())
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned int bits[] = { 0, 36, 40, 52 };
	struct fz *f = calloc(1, sizeof(*f));
	struct ukvm_vm_config cfg;
	uint8_t c;

	if (!f)
		abort();
	f->in = (struct fz_in){ data, size };
	c = (uint8_t)get(&f->in, 1);
	cfg = (struct ukvm_vm_config){
		.nr_address_spaces = c & 1 ? 1 : 0,
		.dirty_log_ro_reads = c & 2,
		.dirty_mode = c & 4 ? UKVM_DIRTY_DBIT : UKVM_DIRTY_WRPROT,
		.max_gpa_bits = bits[(c >> 3) & 3],
		.ad_disabled = c & 0x20,
		.big_mmu_lock = c & 0x40,
	};
	f->gpa_bits = cfg.max_gpa_bits ? cfg.max_gpa_bits : 48;
	f->hva_limit = (1ULL << 47) - PG;
	if (ukvm_create_vm(&cfg, &f->kvm))
		abort();
	if (trace)
		fprintf(stderr, "VM: config %#x\n", c);
	f->hva = ukvm_host_mmap(HOST_MEM, c & 0x80 ? UKVM_MAP_THP : 0);
	if (f->hva >= (unsigned long)-4095L)
		abort();

	for (int ops = 0; f->in.n && ops < 256; ops++) {
		switch (get(&f->in, 1) % 8) {
		case 0: case 1: case 2: do_set(f); break;
		case 3: do_enable_cap(f); break;
		case 4: do_get_log(f); break;
		case 5: do_clear_log(f); break;
		default: do_guest(f); break;
		}
		snap_free(&f->before);
		snap_free(&f->after);
	}
	ukvm_destroy_vm(f->kvm);
	ukvm_host_munmap(f->hva, HOST_MEM);
	check_clean("destroying the VM");
	free(f);
	return 0;
}
