// SPDX-License-Identifier: MIT
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
#include <string.h>

#include "host/host_internal.h"

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
