// SPDX-License-Identifier: MIT
/*
 * `ukvm run --dirty-ring`: dirty logging through the per-vCPU dirty rings
 * (KVM_CAP_DIRTY_LOG_RING_ACQ_REL) instead of GET_DIRTY_LOG bitmaps.
 *
 * One collector thread, "dirty-ring" (QEMU's reaper), is the only thread
 * that touches the rings.  A pass harvests every vCPU's ring in order
 * (load-acquire of flags, then slot and offset, store-release of RESET),
 * calls KVM_RESET_DIRTY_RINGS, and only then records the pages in the
 * guest checker and publishes them in `dirty`, where the owner of dirty
 * logging (the migration thread, or the memslot-churn thread) takes them
 * and reads their contents: the header's rule, "reset before reading".
 * Passes run when a vCPU exited with KVM_EXIT_DIRTY_RING_FULL (it waits,
 * out of KVM_RUN, for the next one: no vCPU spins), when a ring is half
 * full, and on request:
 *
 *   BEGIN  guest_dirty_tracking_begin(), then a pass;
 *   ROUND  close the guests' round, wait until every vCPU has left the
 *          page fault it was in at the close, a pass, guest_dirty_check().
 *
 * Why the collector closes the rounds.  The checker wants every write
 * completed before round R closed in a log "taken after" the round the
 * write started in.  A pass is recorded as taken after the round it
 * closed itself before harvesting, which is true; and since only this
 * thread moves the round counter (tracking_begin included), no round
 * closes during a pass.  So a write W that used the writable SPTE of a
 * fault F had F's entry harvested by a pass that closed round h >= s - 1,
 * s the round W started in: a pass with h < s - 1 finished (its reset
 * re-protected the page and flushed the TLBs) before round h + 1 <= s - 1
 * closed, before W started, and W could not have used F's SPTE.  The wait
 * in ROUND is the handshake of tests/mmu/test_mmu_dirty_ring.c: the fast
 * page fault pushes its entry after its cmpxchg, so a write completed
 * before the close may have its entry pushed after it, by a vCPU still in
 * that fault.  A vCPU has left it once its guest made one more step, or
 * is halted (no access in flight), or is out of KVM_RUN.  Nothing here
 * depends on timing, and the check stays exact: no false positive, and no
 * pass recorded later than it was taken.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host/host.h"
#include "kvm/kvm_host.h"
#include "run.h"

#define RING_POLL_US	100	/* the collector's idle wait */

enum ring_cmd { RING_CMD_BEGIN = 1, RING_CMD_ROUND };

struct ring_vcpu {
	struct kvm_dirty_gfn *gfns;	/* the vCPU's "mmap"ed ring */
	uint32_t nr;			/* entries, a power of two */
	uint32_t fetch;			/* next entry to harvest */
	uint64_t seen;			/* guest steps at a round's close */
};

struct run_ring {
	struct ring_vcpu *v;
	uint64_t words;			/* bitmap words per slot */
	unsigned long *pending;		/* this pass's pages (collector only) */
	_Atomic unsigned long *dirty;	/* reset, recorded, not yet taken */
	/* one command at a time, from the owner of dirty logging */
	_Atomic int cmd;
	_Atomic unsigned long cmd_seq, cmd_ack;
	_Atomic bool full;		/* a vCPU waits for a pass */
	_Atomic unsigned long passes;	/* passes completed */
	_Atomic bool alive, stop;
};

int run_ring_create(struct run *r)
{
	struct run_ring *rg = calloc(1, sizeof(*rg));
	uint64_t n;

	if (!rg)
		return -ENOMEM;
	r->ring = rg;
	rg->words = (r->slots[0].npages + 63) / 64;
	n = rg->words * (uint64_t)r->nr_slots;
	rg->v = calloc((size_t)r->o.vcpus, sizeof(*rg->v));
	rg->pending = calloc((size_t)n, sizeof(*rg->pending));
	rg->dirty = calloc((size_t)n, sizeof(*rg->dirty));
	if (!rg->v || !rg->pending || !rg->dirty)
		return -ENOMEM;
	for (int i = 0; i < r->o.vcpus; i++) {
		int ret = ukvm_vcpu_dirty_ring(r->vcpus[i].vcpu, &rg->v[i].gfns, &rg->v[i].nr);

		if (ret)
			return ret;
	}
	return 0;
}

void run_ring_destroy(struct run *r)
{
	struct run_ring *rg = r->ring;

	if (!rg)
		return;
	free(rg->v);
	free(rg->pending);
	free(rg->dirty);
	free(rg);
	r->ring = NULL;
}

/* ---- the collector ---- */

/* Harvest one ring into rg->pending; returns the entries taken. */
static unsigned long harvest(struct run *r, struct ring_vcpu *rv)
{
	struct run_ring *rg = r->ring;
	uint64_t npages = r->slots[0].npages;
	unsigned long n = 0;

	for (;;) {
		struct kvm_dirty_gfn *e = &rv->gfns[rv->fetch & (rv->nr - 1)];
		uint32_t slot;
		uint64_t off;

		/* Acquire: slot and offset were written before DIRTY. */
		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY))
			break;
		slot = __atomic_load_n(&e->slot, __ATOMIC_RELAXED);
		off = __atomic_load_n(&e->offset, __ATOMIC_RELAXED);
		/* Release: our reads precede KVM's reuse of the entry. */
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		rv->fetch++;
		n++;
		/* Address space 0, a guest slot (the spare slot is never written). */
		if (slot >= (uint32_t)r->nr_slots || off >= npages) {
			run_unexpected(r, "dirty ring: an entry outside the guest memslots",
				       -EINVAL);
			continue;
		}
		rg->pending[slot * rg->words + off / 64] |= 1UL << (off % 64);
	}
	return n;
}

/*
 * After the reset: record this pass's pages in the checker as a log taken
 * after @round closed, and hand them to the owner of dirty logging.
 */
static void publish(struct run *r, uint32_t round)
{
	struct run_ring *rg = r->ring;

	for (int s = 0; s < r->nr_slots; s++) {
		const struct run_slot *sl = &r->slots[s];

		for (uint64_t i = 0; i < rg->words; i++) {
			unsigned long *p = &rg->pending[(uint64_t)s * rg->words + i];
			uint64_t n = sl->npages - i * 64 < 64 ? sl->npages - i * 64 : 64;

			if (!*p)
				continue;
			guest_dirty_log_record(r->w, (sl->gpa >> PAGE_SHIFT) + i * 64, p, n, round);
			atomic_fetch_or(&rg->dirty[(uint64_t)s * rg->words + i], *p);
			*p = 0;
		}
	}
}

/* A pass, as a log taken after @round closed; returns the entries harvested. */
static unsigned long ring_pass(struct run *r, uint32_t round)
{
	struct run_ring *rg = r->ring;
	unsigned long n = 0;

	for (int i = 0; i < r->o.vcpus; i++)
		n += harvest(r, &rg->v[i]);
	if (n) {
		int ret = ukvm_reset_dirty_rings(r->kvm);

		if (ret < 0) {
			run_unexpected(r, "KVM_RESET_DIRTY_RINGS", ret);
		} else {
			/* Exactly what we marked RESET, no more, no less. */
			if ((unsigned long)ret != n)
				run_unexpected(r, "KVM_RESET_DIRTY_RINGS freed other than "
					       "the entries harvested", -EIO);
			run_count(r, RC_RING_RESETS, 1);
			run_count(r, RC_RING_RESET_ENTRIES, (unsigned long)ret);
		}
	}
	publish(r, round);
	run_count(r, RC_RING_HARVESTED, n);
	run_count(r, RC_RING_PASSES, 1);
	atomic_fetch_add(&rg->passes, 1);
	return n;
}

/* A ring at least half full: harvest before the vCPU has to stop. */
static bool ring_filling(struct run *r)
{
	struct run_ring *rg = r->ring;

	for (int i = 0; i < r->o.vcpus; i++) {
		struct ring_vcpu *rv = &rg->v[i];
		/* Entries before fetch are reset (flags 0): only pushed ones are DIRTY. */
		struct kvm_dirty_gfn *e = &rv->gfns[(rv->fetch + rv->nr / 2) & (rv->nr - 1)];

		if (__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY)
			return true;
	}
	return false;
}

/*
 * The handshake after a round's close (see the top of this file): every
 * vCPU has made a step since, or is halted, or is out of KVM_RUN.  A
 * vCPU waiting for a pass (ring full) is out of KVM_RUN.
 */
static void wait_faults_in_flight(struct run *r)
{
	struct run_ring *rg = r->ring;

	for (int i = 0; i < r->o.vcpus; i++)
		rg->v[i].seen = guest_vcpu_steps(r->w, i);
	for (int i = 0; i < r->o.vcpus; i++)
		while (guest_vcpu_steps(r->w, i) == rg->v[i].seen &&
		       atomic_load(&r->vcpus[i].in_run) && !guest_vcpu_halted(r->w, i))
			run_sleep_us(10);
}

static void ring_command(struct run *r, int cmd)
{
	uint32_t round;

	if (cmd == RING_CMD_BEGIN) {
		guest_dirty_tracking_begin(r->w);
		ring_pass(r, guest_dirty_round_close(r->w));
		return;
	}
	round = guest_dirty_round_close(r->w);
	wait_faults_in_flight(r);
	ring_pass(r, round);
	/* The checker counts what it finds in its stats (missed_dirty). */
	guest_dirty_check(r->w, round);
}

void *run_ring_thread(void *arg)
{
	struct run *r = arg;
	struct run_ring *rg = r->ring;

	for (;;) {
		unsigned long seq = atomic_load(&rg->cmd_seq);

		if (seq != atomic_load(&rg->cmd_ack)) {
			ring_command(r, atomic_load(&rg->cmd));
			atomic_store(&rg->cmd_ack, seq);
			continue;
		}
		if (atomic_load(&rg->stop))
			break;
		if (atomic_exchange(&rg->full, false) || ring_filling(r)) {
			ring_pass(r, guest_dirty_round_close(r->w));
			continue;
		}
		run_sleep_us(RING_POLL_US);
	}
	/* Every vCPU is gone: whatever they pushed is harvested and reset. */
	ring_pass(r, guest_dirty_round_close(r->w));
	atomic_store(&rg->alive, false);
	return NULL;
}

int run_ring_start(struct run *r)
{
	int ret;

	atomic_store(&r->ring->alive, true);
	ret = run_start_thread(r, RT_RING, "dirty-ring", run_ring_thread);
	if (ret)
		atomic_store(&r->ring->alive, false);
	return ret;
}

/* After every other thread: the memslot-churn thread's last round needs us. */
void run_ring_stop(struct run *r)
{
	if (r->ring)
		atomic_store(&r->ring->stop, true);
}

/* ---- the owner of dirty logging, and the vCPUs ---- */

/* Have the collector run @cmd; 0, or -ESRCH if it is not running. */
static int ring_request(struct run *r, enum ring_cmd cmd)
{
	struct run_ring *rg = r->ring;
	unsigned long seq;

	atomic_store(&rg->cmd, cmd);
	seq = atomic_fetch_add(&rg->cmd_seq, 1) + 1;
	while (atomic_load(&rg->cmd_ack) != seq) {
		if (!atomic_load(&rg->alive)) {
			run_unexpected(r, "dirty ring: the collector is not running", -ESRCH);
			return -ESRCH;
		}
		run_sleep_us(20);
	}
	return 0;
}

void run_ring_tracking_begin(struct run *r)
{
	ring_request(r, RING_CMD_BEGIN);
}

long run_ring_round(struct run *r, unsigned long *bitmap, run_dirty_fn fn, void *arg)
{
	struct run_ring *rg = r->ring;
	unsigned long dirty = 0;

	if (ring_request(r, RING_CMD_ROUND))
		return -ESRCH;
	/* Every page published so far: reset, so its contents may be read. */
	for (int s = 0; s < r->nr_slots; s++) {
		for (uint64_t i = 0; i < rg->words; i++) {
			bitmap[i] = atomic_exchange(&rg->dirty[(uint64_t)s * rg->words + i], 0);
			dirty += (unsigned long)__builtin_popcountl(bitmap[i]);
		}
		if (fn)
			fn(r, s, bitmap, arg);
	}
	run_count(r, RC_LOG_ROUNDS, 1);
	run_count(r, RC_LOG_PAGES, dirty);
	return (long)dirty;
}

/*
 * KVM_EXIT_DIRTY_RING_FULL: the vCPU would only exit again until a reset
 * made room.  Ask for a pass and wait for one, out of KVM_RUN, unless the
 * vCPUs are being parked or stopped.
 */
void run_ring_full(struct run_vcpu *v)
{
	struct run *r = v->run;
	struct run_ring *rg = r->ring;
	unsigned long seen = atomic_load(&rg->passes);

	run_count(r, RC_RING_FULL_WAITS, 1);
	atomic_store(&rg->full, true);
	while (atomic_load(&rg->passes) == seen && !atomic_load(&r->pause_vcpus) &&
	       !atomic_load(&r->stop_vcpus))
		run_sleep_us(50);
}

/* At the end, the collector joined: every entry pushed was harvested. */
void run_ring_verify(struct run *r)
{
	unsigned long pushed, harvested = run_ctr(r, RC_RING_HARVESTED);

	if (!r->ring)
		return;
	pushed = atomic_load(&r->kvm->stat.dirty_ring_pushes);
	if (pushed != harvested) {
		fprintf(stderr, "verify: dirty ring: %lu entries pushed, %lu harvested\n",
			pushed, harvested);
		run_unexpected(r, "dirty ring: entries left unharvested", -EIO);
	}
	for (int i = 0; i < r->o.vcpus; i++) {
		struct kvm_dirty_ring *ring = &r->vcpus[i].vcpu->dirty_ring;

		if (atomic_load(&ring->dirty_index) != atomic_load(&ring->reset_index))
			run_unexpected(r, "dirty ring: entries left unreset", -EIO);
	}
}
