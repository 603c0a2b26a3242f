// SPDX-License-Identifier: MIT
/*
 * get_user_pages: hva_to_pfn() for KVM, host_mapping_level(), and the VMM's
 * own loads and stores (host_access()), which go through it.
 *
 * The fast path takes no lock, like get_user_pages_fast():
 *
 *   rcu_read_lock; vma = lookup; e = load(entry)      (acquire)
 *   present and permitted?  get_page_unless_zero(frame)
 *   full barrier; load(entry) again: changed?  put_page, slow path
 *
 * It pairs with every operation that takes a mapping away from a frame and
 * then checks the frame for extra references (migration, swap-out, KSM
 * write-protect, isolate_page() in migrate.c):
 *
 *   store(entry, migration entry); full barrier; load(refcount)
 *
 * Both sides store, fence, then load the other's location (a store-buffering
 * pair, all seq_cst): at least one sees the other.  Either the fast path
 * sees the new entry and backs off, or the migration sees the extra
 * reference and aborts.  A frame freed and reused under a stale entry is
 * harmless: get_page_unless_zero() fails on a free frame (refcount 0) and a
 * reused one no longer matches the re-read entry.  The VMA may be stale
 * (split, unmapped) but the entries it points at are the live ones
 * (host_internal.h), and the page table outlives the RCU section.
 */
#include <errno.h>
#include <string.h>

#include "host/host_internal.h"

/*
 * The "hardware" accessed/dirty assist of host_access(): add the bits to the
 * exact present entry we validated, or do nothing if it changed meanwhile.
 */
static void entry_mkyoung_lockless(_Atomic uint64_t *p, uint64_t e, bool write)
{
	uint64_t bits = write ? HPTE_AD : HPTE_YOUNG;

	if ((e & bits) != bits)
		atomic_compare_exchange_strong(p, &e, e | bits);
}

static int gup_fast(struct host_mm *mm, unsigned long hva, unsigned int foll,
		    unsigned long *pfn, bool *writable)
{
	struct page *page = NULL;
	struct host_vma *vma;
	_Atomic uint64_t *p;
	unsigned long f;
	uint64_t e, e2;
	int ret = -EAGAIN;

	ukvm_rcu_read_lock();
	vma = find_vma_rcu(mm, hva);
	if (!vma)
		goto out;
	p = lookup_entry(vma, hva, &e, &f);
	if (f == INVALID_PFN || ((foll & FOLL_WRITE) && !(e & HPTE_WRITE)))
		goto out;
	if (!get_page_unless_zero(pfn_to_page(f)))
		goto out;
	atomic_thread_fence(memory_order_seq_cst);
	e2 = atomic_load(p);
	if (!pte_same_page(e, e2)) {
		page = pfn_to_page(f);	/* put after the RCU section */
		goto out;
	}
	if (foll & FOLL_TOUCH)
		entry_mkyoung_lockless(p, e2, foll & FOLL_WRITE);
	*pfn = f;
	if (writable)
		*writable = e2 & HPTE_WRITE;
	ret = 0;
out:
	ukvm_rcu_read_unlock();
	if (page)
		put_page(page);
	return ret;
}

/*
 * Slow path, after a successful fault: take the reference under
 * page_table_lock, where the entry cannot change.  FAULT_AGAIN if the entry
 * is not (or no longer) what the access needs.
 */
static int follow_page_ref(struct host_mm *mm, struct host_vma *vma,
			   unsigned long hva, unsigned int foll,
			   unsigned long *pfn, bool *writable)
{
	unsigned long f;
	uint64_t e;
	int ret = FAULT_AGAIN;

	lockdep_assert_held(&mm->mmap_lock);
	spin_lock(&mm->page_table_lock);
	lookup_entry(vma, hva, &e, &f);
	if (f != INVALID_PFN && (!(foll & FOLL_WRITE) || (e & HPTE_WRITE))) {
		get_page(pfn_to_page(f));
		*pfn = f;
		if (writable)
			*writable = e & HPTE_WRITE;
		ret = 0;
	}
	spin_unlock(&mm->page_table_lock);
	return ret;
}

int hva_to_pfn(struct host_mm *mm, unsigned long hva, unsigned int foll,
	       unsigned long *pfn, bool *writable)
{
	struct host_vma *vma;
	int ret;

	if (!gup_fast(mm, hva, foll, pfn, writable))
		return 0;
	if (foll & FOLL_FAST_ONLY)
		return -EAGAIN;

	might_sleep();
	down_read(&mm->mmap_lock);
	for (;;) {
		vma = find_vma(mm, hva);
		if (!vma) {
			ret = -EFAULT;
			break;
		}
		ret = handle_mm_fault(mm, vma, hva, foll & ~FOLL_TOUCH);
		if (ret == FAULT_RETRY) {
			down_read(&mm->mmap_lock);
			continue;
		}
		if (ret)
			break;
		ret = follow_page_ref(mm, vma, hva, foll, pfn, writable);
		if (ret != FAULT_AGAIN)
			break;
	}
	up_read(&mm->mmap_lock);
	return ret;
}

int host_mapping_level(struct host_mm *mm, unsigned long hva)
{
	struct host_vma *vma;
	int level = 1;

	ukvm_rcu_read_lock();
	vma = find_vma_rcu(mm, hva);
	if (vma) {
		unsigned int flags = vma_flags(vma);

		/* Each entry is read exactly once. */
		if ((flags & VM_HUGE_1G) && pmd_huge(pte_get(vma_pud(vma, hva))))
			level = 3;
		else if ((flags & VM_THP) && pmd_huge(pte_get(vma_pmd(vma, hva))))
			level = 2;
	}
	ukvm_rcu_read_unlock();
	return level;
}

/* ---------------------------------------------------------------------- */
/* host_access()                                                          */
/* ---------------------------------------------------------------------- */

/*
 * host_access(): the VMM's own loads and stores to its memory, like a CPU
 * running the VMM: each page is looked up (faulted in, copied on write,
 * swapped in, waited for while it migrates) through get_user_pages, which
 * also sets the accessed/dirty bits, and the bytes are copied with the
 * frame's word-wise relaxed atomics while a reference is held, so migration,
 * swap-out and KSM of that page back off until the copy is done.
 *
 * Bytes that do not fill a whole aligned word are merged into it with a
 * compare-and-exchange: a concurrent writer of the word's other bytes (a vCPU)
 * keeps its bytes, as with byte stores on real hardware.
 */
static void copy_from_frame(uint8_t *dst, unsigned long pfn, unsigned int off,
			    unsigned int len)
{
	while (len) {
		unsigned int w = off & ~7u, b = off & 7u;
		unsigned int n = 8 - b < len ? 8 - b : len;
		uint64_t v = frame_read64(pfn, w);

		memcpy(dst, (uint8_t *)&v + b, n);
		dst += n;
		off += n;
		len -= n;
	}
}

static void copy_to_frame(unsigned long pfn, unsigned int off,
			  const uint8_t *src, unsigned int len)
{
	while (len) {
		unsigned int w = off & ~7u, b = off & 7u;
		unsigned int n = 8 - b < len ? 8 - b : len;
		uint64_t v;

		if (n == 8) {
			memcpy(&v, src, 8);
			frame_write64(pfn, w, v);
		} else {
			uint64_t old = frame_read64(pfn, w), new;

			do {
				new = old;
				memcpy((uint8_t *)&new + b, src, n);
			} while (!frame_cmpxchg64(pfn, w, &old, new));
		}
		src += n;
		off += n;
		len -= n;
	}
}

int host_access(struct host_mm *mm, unsigned long hva, void *buf, size_t len,
		bool write)
{
	uint8_t *p = buf;

	while (len) {
		unsigned int off = hva & ~PAGE_MASK;
		unsigned int n = PAGE_SIZE - off < len ? PAGE_SIZE - off : (unsigned int)len;
		unsigned long pfn;
		int ret;

		ret = hva_to_pfn(mm, hva, FOLL_TOUCH | (write ? FOLL_WRITE : 0),
				 &pfn, NULL);
		if (ret)
			return ret;
		if (write)
			copy_to_frame(pfn, off, p, n);
		else
			copy_from_frame(p, pfn, off, n);
		put_page(pfn_to_page(pfn));
		hva += n;
		p += n;
		len -= n;
	}
	return 0;
}
