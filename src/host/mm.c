// SPDX-License-Identifier: MIT
/*
 * The VMM address space: struct host_mm, its VMAs, mmap and munmap.
 *
 * VMAs live in a sorted array published with RCU: every change builds a new
 * array under mmap_lock (write) and frees the old one (and removed VMAs)
 * after a grace period, so lockless lookups (get_user_pages_fast,
 * host_mapping_level) only need ukvm_rcu_read_lock().  A split VMA is
 * replaced by new VMA objects that share its page table (host_internal.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host/host_internal.h"

/* ---------------------------------------------------------------------- */
/* Page-table storage and VMA objects                                     */
/* ---------------------------------------------------------------------- */

static struct host_pgtable *pgtable_alloc(unsigned long size, unsigned int flags)
{
	struct host_pgtable *pt = calloc(1, sizeof(*pt));

	if (!pt)
		return NULL;
	pt->size = size;
	atomic_init(&pt->users, 1);
	if (flags & VM_HUGE_1G) {
		pt->puds = calloc(size >> PUD_SHIFT, sizeof(*pt->puds));
	} else {
		pt->ptes = calloc(size >> PAGE_SHIFT, sizeof(*pt->ptes));
		if (flags & VM_THP)	/* a last partial 2 MiB has a pmd too */
			pt->pmds = calloc(ALIGN_UP(size, PMD_SIZE) >> PMD_SHIFT,
					  sizeof(*pt->pmds));
	}
	if (((flags & VM_HUGE_1G) && !pt->puds) ||
	    (!(flags & VM_HUGE_1G) && !pt->ptes) ||
	    ((flags & VM_THP) && !pt->pmds)) {
		free(pt->ptes);
		free(pt->pmds);
		free(pt->puds);
		free(pt);
		return NULL;
	}
	return pt;
}

static void pgtable_put(struct host_pgtable *pt)
{
	if (atomic_fetch_sub(&pt->users, 1) != 1)
		return;
	free(pt->ptes);
	free(pt->pmds);
	free(pt->puds);
	free(pt);
}

static struct host_vma *vma_alloc(unsigned long start, unsigned long end,
				  unsigned int flags, struct host_pgtable *pt)
{
	struct host_vma *vma = calloc(1, sizeof(*vma));

	if (!vma)
		return NULL;
	vma->start = start;
	vma->end = end;
	atomic_init(&vma->vm_flags, flags);
	vma->pt = pt;
	return vma;
}

static void vma_free_rcu(struct rcu_head *head)
{
	struct host_vma *vma = container_of(head, struct host_vma, rcu);

	pgtable_put(vma->pt);
	free(vma);
}

static void vma_array_free_rcu(struct rcu_head *head)
{
	free(container_of(head, struct host_vma_array, rcu));
}

struct host_vma_array *vma_array_alloc(unsigned int nr)
{
	struct host_vma_array *a = calloc(1, sizeof(*a) + nr * sizeof(a->vma[0]));

	if (a)
		a->nr = nr;
	return a;
}

/* ---------------------------------------------------------------------- */
/* Lookups                                                                */
/* ---------------------------------------------------------------------- */

struct host_vma_array *mm_vmas(struct host_mm *mm)
{
	return atomic_load_explicit(&mm->vmas, memory_order_acquire);
}

/* Index of the first VMA whose end is above @hva. */
static unsigned int vma_index(struct host_vma_array *a, unsigned long hva)
{
	unsigned int lo = 0, hi = a->nr;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (a->vma[mid]->end <= hva)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct host_vma *__find_vma(struct host_vma_array *a, unsigned long hva)
{
	unsigned int i = vma_index(a, hva);

	if (i < a->nr && a->vma[i]->start <= hva)
		return a->vma[i];
	return NULL;
}

struct host_vma *find_vma(struct host_mm *mm, unsigned long hva)
{
	lockdep_assert_held(&mm->mmap_lock);
	return __find_vma(mm_vmas(mm), hva);
}

struct host_vma *find_vma_rcu(struct host_mm *mm, unsigned long hva)
{
	if (!ukvm_rcu_read_lock_held())
		lockdep_rcu_suspicious("find_vma_rcu() outside an RCU read-side section",
				       LOCKDEP_SITE);
	return __find_vma(mm_vmas(mm), hva);
}

/* The first VMA that intersects [start, end). */
struct host_vma *find_vma_intersection(struct host_mm *mm, unsigned long start,
				       unsigned long end)
{
	struct host_vma_array *a;
	unsigned int i;

	lockdep_assert_held(&mm->mmap_lock);
	a = mm_vmas(mm);
	i = vma_index(a, start);
	if (i < a->nr && a->vma[i]->start < end)
		return a->vma[i];
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Changing the VMA set (mmap_lock held for write)                        */
/* ---------------------------------------------------------------------- */

/* Publish @new; the old array is the caller's to free with vmas_retire(). */
static struct host_vma_array *vmas_publish(struct host_mm *mm,
					   struct host_vma_array *new)
{
	struct host_vma_array *old = mm_vmas(mm);

	lockdep_assert_held_write(&mm->mmap_lock);
	atomic_store_explicit(&mm->vmas, new, memory_order_release);
	return old;
}

static void vmas_retire(struct host_vma_array *old)
{
	ukvm_call_rcu(&old->rcu, vma_array_free_rcu);
}

/*
 * Make @addr a VMA boundary if it falls strictly inside a VMA.  A THP that
 * straddles @addr is split first.  0 or -ENOMEM; -EINVAL inside a 1 GiB
 * mapping that is not cut at a 1 GiB boundary.
 */
int vma_split(struct host_mm *mm, unsigned long addr)
{
	struct host_vma_array *a, *n;
	struct host_vma *vma, *lo, *hi;
	unsigned int i, flags;

	lockdep_assert_held_write(&mm->mmap_lock);
	a = mm_vmas(mm);
	i = vma_index(a, addr);
	if (i >= a->nr || a->vma[i]->start >= addr)
		return 0;
	vma = a->vma[i];
	flags = vma_flags(vma);
	if ((flags & VM_HUGE_1G) && (addr & (PUD_SIZE - 1)))
		return -EINVAL;
	if ((flags & VM_THP) && (addr & (PMD_SIZE - 1)))
		thp_split_pmd(mm, vma, addr);

	n = vma_array_alloc(a->nr + 1);
	lo = vma_alloc(vma->start, addr, flags, vma->pt);
	hi = vma_alloc(addr, vma->end, flags, vma->pt);
	if (!n || !lo || !hi) {
		free(n);
		free(lo);
		free(hi);
		return -ENOMEM;
	}
	atomic_fetch_add(&vma->pt->users, 2);
	memcpy(n->vma, a->vma, i * sizeof(a->vma[0]));
	n->vma[i] = lo;
	n->vma[i + 1] = hi;
	memcpy(&n->vma[i + 2], &a->vma[i + 1], (a->nr - i - 1) * sizeof(a->vma[0]));
	vmas_retire(vmas_publish(mm, n));
	ukvm_call_rcu(&vma->rcu, vma_free_rcu);
	return 0;
}

/*
 * The lowest free range of @len bytes aligned to @align (mmap_lock held):
 * get_unmapped_area()'s answer once the bump pointer has reached the top.
 * 0 if there is none.
 */
static unsigned long find_unmapped_area(struct host_vma_array *a, unsigned long len,
					unsigned long align)
{
	unsigned long start = HOST_MMAP_BASE;

	for (unsigned int i = 0; i <= a->nr; i++) {
		unsigned long end = i < a->nr ? a->vma[i]->start : HOST_MMAP_LIMIT;
		unsigned long hva = ALIGN_UP(start, align);

		if (hva >= start && hva <= end && end - hva >= len)
			return hva;
		if (i < a->nr)
			start = a->vma[i]->end;
	}
	return 0;
}

unsigned long host_mmap(struct host_mm *mm, size_t size, unsigned int flags)
{
	unsigned long align = (flags & VM_HUGE_1G) ? PUD_SIZE : PMD_SIZE;
	struct host_vma_array *a, *n = NULL;
	struct host_pgtable *pt;
	struct host_vma *vma = NULL;
	unsigned long hva, len;
	unsigned int i;
	int ret = -ENOMEM;
	bool bumped;

	if (!size || !(flags & VM_READ) ||
	    (flags & ~(VM_READ | VM_WRITE | VM_THP | VM_HUGE_1G)) ||
	    ((flags & VM_THP) && (flags & VM_HUGE_1G)))
		return (unsigned long)-EINVAL;
	if (size > HOST_MMAP_LIMIT - HOST_MMAP_BASE)
		return (unsigned long)-ENOMEM;
	len = ALIGN_UP(size, (flags & VM_HUGE_1G) ? PUD_SIZE : PAGE_SIZE);
	pt = pgtable_alloc(len, flags);
	if (!pt)
		return (unsigned long)-ENOMEM;
	/* Like hugetlbfs: the 1 GiB pages are reserved (and mapped) now. */
	for (unsigned long g = 0; (flags & VM_HUGE_1G) && g < len >> PUD_SHIFT; g++) {
		struct page *p = alloc_gigantic();

		if (!p) {
			for (unsigned long k = 0; k < g; k++)
				unmap_put_frames(HPTE_PFN(atomic_load(&pt->puds[k])),
						 PAGES_PER_PUD);
			pgtable_put(pt);
			return (unsigned long)-ENOMEM;
		}
		for (unsigned long k = 0; k < PAGES_PER_PUD; k++)
			atomic_store_explicit(&p[k].mapcount, 1, memory_order_relaxed);
		atomic_store(&pt->puds[g], mk_pte(page_to_pfn(p), HPTE_PRESENT |
			     HPTE_HUGE | HPTE_AD | ((flags & VM_WRITE) ? HPTE_WRITE : 0)));
	}

	down_write(&mm->mmap_lock);
	a = mm_vmas(mm);
	hva = ALIGN_UP(mm->next_hva, align);
	bumped = hva + len <= HOST_MMAP_LIMIT && hva + len > hva;
	/* Above the last mapping until the top, then what munmap() freed. */
	if (!bumped)
		hva = find_unmapped_area(a, len, align);
	if (!hva)
		goto fail;
	n = vma_array_alloc(a->nr + 1);
	vma = vma_alloc(hva, hva + len, flags, pt);
	if (!n || !vma)
		goto fail;
	pt->base = hva;
	if (bumped)
		mm->next_hva = hva + len;
	i = vma_index(a, hva);
	memcpy(n->vma, a->vma, i * sizeof(a->vma[0]));
	n->vma[i] = vma;
	memcpy(&n->vma[i + 1], &a->vma[i], (a->nr - i) * sizeof(a->vma[0]));
	vmas_retire(vmas_publish(mm, n));
	up_write(&mm->mmap_lock);
	return hva;
fail:
	up_write(&mm->mmap_lock);
	free(n);
	free(vma);
	if (flags & VM_HUGE_1G)
		for (unsigned long g = 0; g < len >> PUD_SHIFT; g++)
			unmap_put_frames(HPTE_PFN(atomic_load(&pt->puds[g])),
					 PAGES_PER_PUD);
	pgtable_put(pt);
	return (unsigned long)ret;
}

/* Remove the VMAs inside [start, end) (boundaries already split). */
static void vmas_remove(struct host_mm *mm, unsigned long start, unsigned long end)
{
	struct host_vma_array *a = mm_vmas(mm), *n;
	unsigned int i, j, nr = 0;

	lockdep_assert_held_write(&mm->mmap_lock);
	for (i = 0; i < a->nr; i++)
		if (a->vma[i]->start >= start && a->vma[i]->end <= end)
			nr++;
	if (!nr)
		return;
	n = vma_array_alloc(a->nr - nr);
	/* Out of memory: the VMAs stay, empty (their ptes are zapped). */
	if (HOST_WARN_ON(!n))
		return;
	for (i = 0, j = 0; i < a->nr; i++)
		if (a->vma[i]->start < start || a->vma[i]->end > end)
			n->vma[j++] = a->vma[i];
	vmas_publish(mm, n);
	/* Readers may still see them: free after a grace period. */
	for (i = 0; i < a->nr; i++)
		if (a->vma[i]->start >= start && a->vma[i]->end <= end)
			ukvm_call_rcu(&a->vma[i]->rcu, vma_free_rcu);
	vmas_retire(a);
}

int munmap_locked(struct host_mm *mm, unsigned long start, unsigned long end)
{
	struct mmu_notifier_range range;
	struct host_vma *vma;
	int ret;

	lockdep_assert_held_write(&mm->mmap_lock);
	/* A 1 GiB mapping goes only as a whole. */
	for (unsigned long a = start; (vma = find_vma_intersection(mm, a, end));
	     a = vma->end)
		if ((vma_flags(vma) & VM_HUGE_1G) &&
		    (vma->start < start || vma->end > end))
			return -EINVAL;
	if (!find_vma_intersection(mm, start, end))
		return 0;
	ret = vma_split(mm, start);
	if (!ret)
		ret = vma_split(mm, end);
	if (ret)
		return ret;

	mmu_notifier_range_init(&range, MMU_NOTIFY_UNMAP, mm, start, end);
	mmu_notifier_invalidate_range_start(&range);
	for (unsigned long a = start; (vma = find_vma_intersection(mm, a, end));
	     a = vma->end)
		zap_vma_range(mm, vma, vma->start, vma->end);
	mmu_notifier_invalidate_range_end(&range);
	vmas_remove(mm, start, end);
	mm_stat_inc(mm, MM_UNMAPS);
	return 0;
}

int host_munmap(struct host_mm *mm, unsigned long hva, size_t size)
{
	unsigned long end = hva + ALIGN_UP(size, PAGE_SIZE);
	int ret;

	if ((hva & ~PAGE_MASK) || !size || end < hva)
		return -EINVAL;
	down_write(&mm->mmap_lock);
	ret = munmap_locked(mm, hva, end);
	up_write(&mm->mmap_lock);
	return ret;
}

/*
 * madvise(MADV_DONTNEED): drop the pages of [hva, hva + len); the next touch
 * faults in zeroes.  Under mmap_lock (read), concurrently with faults and
 * the other mm operations; a migration entry in the range is simply
 * cleared (the migration finds out when it completes).
 */
int host_madvise_dontneed(struct host_mm *mm, unsigned long hva, size_t len)
{
	unsigned long end = hva + ALIGN_UP(len, PAGE_SIZE);
	struct mmu_notifier_range range;
	struct host_vma *vma;
	unsigned long a;
	int ret = 0;

	if ((hva & ~PAGE_MASK) || end < hva)
		return -EINVAL;
	if (!len)
		return 0;
	down_read(&mm->mmap_lock);
	for (a = hva; (vma = find_vma_intersection(mm, a, end)); a = vma->end) {
		if (vma_flags(vma) & VM_HUGE_1G) {
			ret = -EINVAL;
			goto out;
		}
	}
	for (a = hva; (vma = find_vma_intersection(mm, a, end)); a = vma->end)
		thp_split_edges(mm, vma, a > vma->start ? a : vma->start,
				end < vma->end ? end : vma->end);
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, mm, hva, end);
	mmu_notifier_invalidate_range_start(&range);
	for (a = hva; (vma = find_vma_intersection(mm, a, end)); a = vma->end)
		zap_vma_range(mm, vma, a > vma->start ? a : vma->start,
			      end < vma->end ? end : vma->end);
	mmu_notifier_invalidate_range_end(&range);
out:
	up_read(&mm->mmap_lock);
	return ret;
}
