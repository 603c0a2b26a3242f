// SPDX-License-Identifier: MIT
/*
 * Host physical memory: one anonymous mapping, populated at start and cut
 * into 4 KiB frames, a struct page per frame, and the free lists.
 *
 * Free lists (under zone->lock): a stack of free 4 KiB pfns and a stack of
 * free 2 MiB blocks (with each block's position, so that a 1 GiB run can be
 * taken out of the middle).  A 4 KiB request with an empty 4 KiB stack splits
 * a free block.  A frame freed while it carries PG_huge (it came from a THP
 * or 1 GiB allocation that was never split) is not put on the 4 KiB stack:
 * its block counts it, and when all 512 frames of the block are free the
 * block goes back to the block stack.  That is the only coalescing there is.
 *
 * The zero frame is one extra frame after the usable memory, so that every
 * 1 GiB of usable memory can back a VM_HUGE_1G mapping.
 *
 * Poisoning (debug): a freed frame is filled with a pattern; an allocation
 * checks it before zeroing.  A difference means that somebody wrote into the
 * frame while it was free -- typically through a stale translation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "host/host_internal.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define FRAMES_PER_BLOCK	PTRS_PER_PMD
#define BLOCKS_PER_GIGA		(PUD_SIZE / PMD_SIZE)
#define POISON_WORD		0x6b6b6b6bdeadf4eeULL

struct page *host_pages;
uint8_t *host_mem_base;
unsigned long host_nr_frames;
unsigned long zero_pfn;
_Atomic unsigned long host_warnings;

struct zone {
	spinlock_t lock;
	uint32_t *free4k;		/* stack of free 4 KiB pfns */
	unsigned long nr_free4k;
	uint32_t *free_blocks;		/* stack of free 2 MiB blocks */
	unsigned long nr_free_blocks;
	int32_t *block_pos;		/* index in free_blocks, or -1 */
	uint16_t *block_pending;	/* freed PG_huge frames of a block */
	unsigned long nr_pending;
	unsigned long nr_blocks;
};

static struct zone host_zone;

static struct {
	void *map;
	size_t map_len;
	bool poison;
	_Atomic unsigned long alloc_failures, huge_alloc_failures;
	_Atomic unsigned long poison_violations;
} phys;

/* ---------------------------------------------------------------------- */
/* Frame contents                                                         */
/* ---------------------------------------------------------------------- */

#define WORDS_PER_FRAME (PAGE_SIZE / sizeof(uint64_t))

/*
 * A frame being zeroed is ours alone (off the free lists, no reference):
 * only a bug — a write through a stale translation — can touch it now.
 * Plain memset (clear_page()) is several times cheaper than word-by-word
 * atomics, which only the TSan build keeps, so that such a bug shows as
 * the lost write it is rather than as a data-race report.
 */
void frame_zero(unsigned long pfn)
{
#if UKVM_TSAN
	_Atomic uint64_t *w = pfn_to_virt(pfn);

	for (unsigned int i = 0; i < WORDS_PER_FRAME; i++)
		atomic_store_explicit(&w[i], 0, memory_order_relaxed);
#else
	memset((void *)pfn_to_virt(pfn), 0, PAGE_SIZE);
#endif
}

void frame_copy(unsigned long dst_pfn, unsigned long src_pfn)
{
	_Atomic uint64_t *d = pfn_to_virt(dst_pfn), *s = pfn_to_virt(src_pfn);

	for (unsigned int i = 0; i < WORDS_PER_FRAME; i++)
		atomic_store_explicit(&d[i], atomic_load_explicit(&s[i],
				memory_order_relaxed), memory_order_relaxed);
}

bool frame_equal(unsigned long a_pfn, unsigned long b_pfn)
{
	_Atomic uint64_t *a = pfn_to_virt(a_pfn), *b = pfn_to_virt(b_pfn);

	for (unsigned int i = 0; i < WORDS_PER_FRAME; i++)
		if (atomic_load_explicit(&a[i], memory_order_relaxed) !=
		    atomic_load_explicit(&b[i], memory_order_relaxed))
			return false;
	return true;
}

static void frame_poison(unsigned long pfn)
{
	_Atomic uint64_t *w = pfn_to_virt(pfn);

	for (unsigned int i = 0; i < WORDS_PER_FRAME; i++)
		atomic_store_explicit(&w[i], POISON_WORD, memory_order_relaxed);
}

static void frame_check_poison(unsigned long pfn)
{
	_Atomic uint64_t *w = pfn_to_virt(pfn);

	for (unsigned int i = 0; i < WORDS_PER_FRAME; i++) {
		uint64_t v = atomic_load_explicit(&w[i], memory_order_relaxed);

		if (v == POISON_WORD)
			continue;
		atomic_fetch_add(&phys.poison_violations, 1);
		fprintf(stderr, "ukvm: host: pfn %#lx was written while free "
			"(offset %#x: %#llx)\n", pfn, i * 8u,
			(unsigned long long)v);
		return;
	}
}

/* ---------------------------------------------------------------------- */
/* The free lists                                                         */
/* ---------------------------------------------------------------------- */

static void block_push(struct zone *zone, unsigned long blk)
{
	lockdep_assert_held(&zone->lock);
	zone->block_pos[blk] = (int32_t)zone->nr_free_blocks;
	zone->free_blocks[zone->nr_free_blocks++] = (uint32_t)blk;
}

static void block_remove(struct zone *zone, unsigned long blk)
{
	int32_t pos = zone->block_pos[blk];
	uint32_t last;

	lockdep_assert_held(&zone->lock);
	last = zone->free_blocks[--zone->nr_free_blocks];
	zone->free_blocks[pos] = last;
	zone->block_pos[last] = pos;
	zone->block_pos[blk] = -1;
}

static long block_pop(struct zone *zone)
{
	long blk;

	lockdep_assert_held(&zone->lock);
	if (!zone->nr_free_blocks)
		return -1;
	blk = zone->free_blocks[zone->nr_free_blocks - 1];
	block_remove(zone, (unsigned long)blk);
	return blk;
}

/* Up to @n free 4 KiB frames into @out (the per-CPU caches' refill). */
unsigned int zone_take_frames(uint32_t *out, unsigned int n)
{
	struct zone *zone = &host_zone;
	unsigned int got = 0;
	long blk;

	spin_lock(&zone->lock);
	while (got < n) {
		if (zone->nr_free4k) {
			out[got++] = zone->free4k[--zone->nr_free4k];
		} else if ((blk = block_pop(zone)) >= 0) {
			unsigned long pfn = (unsigned long)blk * FRAMES_PER_BLOCK;

			for (unsigned int i = FRAMES_PER_BLOCK; i-- > 0;)
				zone->free4k[zone->nr_free4k++] = (uint32_t)(pfn + i);
		} else {
			break;
		}
	}
	spin_unlock(&zone->lock);
	return got;
}

/* Give back 4 KiB frames that never were part of a huge allocation. */
void zone_give_frames(const uint32_t *pfns, unsigned int n)
{
	struct zone *zone = &host_zone;

	spin_lock(&zone->lock);
	for (unsigned int i = 0; i < n; i++)
		zone->free4k[zone->nr_free4k++] = pfns[i];
	spin_unlock(&zone->lock);
}

/* A frame of a THP or 1 GiB allocation: its block counts it. */
static void zone_give_huge_frame(struct zone *zone, unsigned long pfn)
{
	unsigned long blk = pfn / FRAMES_PER_BLOCK;

	spin_lock(&zone->lock);
	zone->nr_pending++;
	if (++zone->block_pending[blk] == FRAMES_PER_BLOCK) {
		zone->block_pending[blk] = 0;
		zone->nr_pending -= FRAMES_PER_BLOCK;
		block_push(zone, blk);
	}
	spin_unlock(&zone->lock);
}

/* ---------------------------------------------------------------------- */
/* Allocation and freeing                                                 */
/* ---------------------------------------------------------------------- */

static void account(uint32_t flags, long delta)
{
	pcp_account(flags & PG_kernel, flags & PG_anon, delta);
}

/* The frame is ours alone (refcount 0, off the free lists). */
static void prep_new_frame(unsigned long pfn, uint32_t flags)
{
	struct page *p = pfn_to_page(pfn);

	if (atomic_load_explicit(&p->flags, memory_order_relaxed) & PG_poisoned)
		frame_check_poison(pfn);
	frame_zero(pfn);
	atomic_store_explicit(&p->mapcount, 0, memory_order_relaxed);
	atomic_store_explicit(&p->private, NULL, memory_order_relaxed);
	atomic_store_explicit(&p->flags, flags, memory_order_relaxed);
	account(flags, 1);
	/* Publishes all of the above to a get_page_unless_zero() that wins. */
	atomic_store_explicit(&p->refcount, 1, memory_order_release);
}

static struct page *alloc_frame(uint32_t flags)
{
	unsigned long pfn = pcp_take_frame();

	if (pfn == INVALID_PFN) {
		atomic_fetch_add(&phys.alloc_failures, 1);
		return NULL;
	}
	prep_new_frame(pfn, flags);
	return pfn_to_page(pfn);
}

struct page *alloc_page(void)
{
	return alloc_frame(PG_kernel);
}

struct page *alloc_anon_page(void)
{
	return alloc_frame(PG_anon);
}

static struct page *alloc_block(uint32_t flags)
{
	struct zone *zone = &host_zone;
	unsigned long pfn;
	long blk;

	spin_lock(&zone->lock);
	blk = block_pop(zone);
	spin_unlock(&zone->lock);
	if (blk < 0) {
		atomic_fetch_add(&phys.huge_alloc_failures, 1);
		return NULL;
	}
	pfn = (unsigned long)blk * FRAMES_PER_BLOCK;
	for (unsigned int i = 0; i < FRAMES_PER_BLOCK; i++)
		prep_new_frame(pfn + i, flags | PG_huge);
	return pfn_to_page(pfn);
}

struct page *alloc_huge_block(void)
{
	return alloc_block(PG_kernel);
}

struct page *alloc_thp_block(void)
{
	return alloc_block(PG_anon);
}

struct page *alloc_gigantic(void)
{
	struct zone *zone = &host_zone;
	unsigned long first = INVALID_PFN;

	spin_lock(&zone->lock);
	for (unsigned long g = 0; g + BLOCKS_PER_GIGA <= zone->nr_blocks;
	     g += BLOCKS_PER_GIGA) {
		unsigned long b;

		for (b = g; b < g + BLOCKS_PER_GIGA; b++)
			if (zone->block_pos[b] < 0)
				break;
		if (b < g + BLOCKS_PER_GIGA)
			continue;
		for (b = g; b < g + BLOCKS_PER_GIGA; b++)
			block_remove(zone, b);
		first = g * FRAMES_PER_BLOCK;
		break;
	}
	spin_unlock(&zone->lock);
	if (first == INVALID_PFN) {
		atomic_fetch_add(&phys.alloc_failures, 1);
		return NULL;
	}
	for (unsigned long i = 0; i < PAGES_PER_PUD; i++)
		prep_new_frame(first + i, PG_anon | PG_huge);
	return pfn_to_page(first);
}

static void free_frame(struct page *p)
{
	unsigned long pfn = page_to_pfn(p);
	uint32_t flags = atomic_load_explicit(&p->flags, memory_order_relaxed);

	if (HOST_WARN_ON(flags & PG_reserved)) {
		atomic_store(&p->refcount, 1);
		return;
	}
	HOST_WARN_ON(atomic_load_explicit(&p->mapcount, memory_order_relaxed));
	account(flags, -1);
	if (phys.poison)
		frame_poison(pfn);
	atomic_store_explicit(&p->flags, phys.poison ? PG_poisoned : 0,
			      memory_order_relaxed);
	if (flags & PG_huge)
		zone_give_huge_frame(&host_zone, pfn);
	else
		pcp_give_frame(pfn);
}

bool get_page_unless_zero(struct page *p)
{
	int v = atomic_load_explicit(&p->refcount, memory_order_relaxed);

	while (v > 0)
		if (atomic_compare_exchange_weak_explicit(&p->refcount, &v, v + 1,
				memory_order_seq_cst, memory_order_relaxed))
			return true;
	return false;
}

void put_page(struct page *p)
{
	int old = atomic_fetch_sub_explicit(&p->refcount, 1, memory_order_acq_rel);

	if (old == 1)
		free_frame(p);
	else
		HOST_WARN_ON(old <= 0);
}

void unmap_put_frames(unsigned long pfn, unsigned long nr)
{
	for (unsigned long i = 0; i < nr; i++) {
		struct page *p = pfn_to_page(pfn + i);

		atomic_fetch_sub_explicit(&p->mapcount, 1, memory_order_relaxed);
		put_page(p);
	}
}

/* ---------------------------------------------------------------------- */
/* Setup                                                                  */
/* ---------------------------------------------------------------------- */

/* Reserve, align (1 GiB if the address space allows, else 2 MiB), populate. */
static void *map_memory(size_t len)
{
	size_t aligns[] = { PUD_SIZE, PMD_SIZE };

	for (unsigned int a = 0; a < 2; a++) {
		size_t rsv = len + aligns[a];
		uint8_t *r = mmap(NULL, rsv, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		uint8_t *base, *m;

		if (r == MAP_FAILED)
			continue;
		base = (uint8_t *)ALIGN_UP((uintptr_t)r, aligns[a]);
		m = mmap(base, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (m == MAP_FAILED) {
			munmap(r, rsv);
			continue;
		}
		if (base > r)
			munmap(r, (size_t)(base - r));
		if (r + rsv > base + len)
			munmap(base + len, (size_t)(r + rsv - (base + len)));
		madvise(base, len, MADV_HUGEPAGE);
		if (madvise(base, len, MADV_POPULATE_WRITE))
			for (size_t off = 0; off < len; off += PAGE_SIZE)
				((volatile uint8_t *)base)[off] = 0;
		return base;
	}
	return NULL;
}

int physmem_init(size_t mem_bytes, bool poison)
{
	struct zone *zone = &host_zone;
	unsigned long nr_usable, nr_blocks;

	mem_bytes = ALIGN_DOWN(mem_bytes, PMD_SIZE);
	if (mem_bytes < 2 * PMD_SIZE || mem_bytes / PAGE_SIZE > UINT32_MAX)
		return -EINVAL;
	nr_usable = mem_bytes / PAGE_SIZE;
	nr_blocks = nr_usable / FRAMES_PER_BLOCK;

	memset(&phys, 0, sizeof(phys));
	phys.poison = poison;
	phys.map_len = mem_bytes + PAGE_SIZE;	/* + the zero frame */
	phys.map = map_memory(phys.map_len);
	host_pages = calloc(nr_usable + 1, sizeof(*host_pages));
	zone->free4k = calloc(nr_usable, sizeof(*zone->free4k));
	zone->free_blocks = calloc(nr_blocks, sizeof(*zone->free_blocks));
	zone->block_pos = calloc(nr_blocks, sizeof(*zone->block_pos));
	zone->block_pending = calloc(nr_blocks, sizeof(*zone->block_pending));
	if (!phys.map || !host_pages || !zone->free4k || !zone->free_blocks ||
	    !zone->block_pos || !zone->block_pending) {
		physmem_exit();
		return -ENOMEM;
	}
	spin_lock_init(&zone->lock);
	pcp_init();
	zone->nr_free4k = 0;
	zone->nr_free_blocks = 0;
	zone->nr_pending = 0;
	zone->nr_blocks = nr_blocks;

	host_mem_base = phys.map;
	host_nr_frames = nr_usable + 1;
	zero_pfn = nr_usable;
	atomic_store(&host_pages[zero_pfn].flags, PG_reserved);
	atomic_store(&host_pages[zero_pfn].refcount, 1);

	/* Lowest blocks on top of the stack: allocations start at pfn 0. */
	spin_lock(&zone->lock);
	for (unsigned long b = nr_blocks; b-- > 0;)
		block_push(zone, b);
	spin_unlock(&zone->lock);
	return 0;
}

void physmem_exit(void)
{
	struct zone *zone = &host_zone;

	if (phys.map)
		munmap(phys.map, phys.map_len);
	free(host_pages);
	free(zone->free4k);
	free(zone->free_blocks);
	free(zone->block_pos);
	free(zone->block_pending);
	memset(zone, 0, sizeof(*zone));
	phys.map = NULL;
	host_pages = NULL;
	host_mem_base = NULL;
	host_nr_frames = 0;
	zero_pfn = 0;
}

void host_mem_get_stats(struct host_mem_stats *st)
{
	struct zone *zone = &host_zone;
	unsigned long cached;
	long kernel, anon;

	memset(st, 0, sizeof(*st));
	if (!host_pages)
		return;
	pcp_get_stats(&cached, &kernel, &anon);
	spin_lock(&zone->lock);
	st->frames_free = cached + zone->nr_free4k + zone->nr_pending +
			  zone->nr_free_blocks * FRAMES_PER_BLOCK;
	st->huge_blocks_free = zone->nr_free_blocks;
	spin_unlock(&zone->lock);
	st->frames_total = host_nr_frames - 1;
	st->frames_kernel = (unsigned long)kernel;
	st->frames_anon = (unsigned long)anon;
	st->alloc_failures = atomic_load(&phys.alloc_failures);
	st->huge_alloc_failures = atomic_load(&phys.huge_alloc_failures);
	st->poison_violations = atomic_load(&phys.poison_violations);
	swap_get_stats(&st->swap_slots_used, &st->swap_slots_total);
}
