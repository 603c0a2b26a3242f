// SPDX-License-Identifier: MIT
/*
 * References on the real /dev/kvm, measured in the same command as the ukvm
 * figures (bench/realkvm.h):
 *   - memslot ioctl latency: perf-anchors.md Appendix B's probe (K
 *     pre-existing 2 MiB slots, then create -> enable dirty log -> delete,
 *     each ioctl timed), plus a MOVE loop;
 *   - a tiny real guest writing one word per page: first touch (demand
 *     paging), the same writes again after enabling dirty logging (the
 *     write-protection faults of dirty_log_perf_test), and GET_DIRTY_LOG.
 * Where /dev/kvm is absent or unusable (or realkvm.c is not in this build)
 * every figure is NAN and the caller prints "n/a" with the reason.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench/bench_vm.h"
#include "bench/realkvm.h"

/* realkvm.c may not be part of this build: test before calling. */
#pragma weak realkvm_available
#pragma weak realkvm_guest_available
#pragma weak realkvm_vm_create
#pragma weak realkvm_vm_destroy
#pragma weak realkvm_set_user_memory_region
#pragma weak realkvm_get_dirty_log
#pragma weak realkvm_guest_create
#pragma weak realkvm_guest_destroy
#pragma weak realkvm_guest_touch

#define KVMREF_SLOT_SIZE	(2UL << 20)
#define KVMREF_DATA_GPA		(1ULL << 30)	/* below 4 GiB, see realkvm.h */
#define KVMREF_CODE_GPA		(1ULL << 20)
#define KVMREF_CODE_SLOT	1
#define KVMREF_DATA_SLOT	2

static bool kvmref_linked(char *why, size_t len)
{
	if (realkvm_available && realkvm_vm_create && realkvm_guest_touch)
		return true;
	snprintf(why, len, "realkvm.c is not part of this build");
	return false;
}

static int set_region(struct realkvm_vm *vm, uint32_t slot, uint32_t flags,
		      uint64_t gpa, uint64_t size, void *hva)
{
	const struct kvm_userspace_memory_region mem = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = (uint64_t)(uintptr_t)hva,
	};

	return realkvm_set_user_memory_region(vm, &mem);
}

/* Time one ioctl; a failure makes the whole probe fail. */
#define TIMED(acc, call)                                                      \
	({ uint64_t _t = bench_now_ns(); int _r = (call);                     \
	   (acc) = (double)(bench_now_ns() - _t); _r; })

bool kvmref_memslot(const struct bench_opts *opts, int existing, int iters,
		    struct kvmref_memslot *out, char *why, size_t len)
{
	size_t bytes = (size_t)(existing + 2) * KVMREF_SLOT_SIZE;
	double *c, *f, *d, *m;
	struct realkvm_vm vm;
	uint8_t *mem;
	int r = 0;

	(void)opts;
	out->create_ns = out->flags_ns = out->delete_ns = out->move_ns = NAN;
	if (!kvmref_linked(why, len) || !realkvm_available(why, len))
		return false;
	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		snprintf(why, len, "mmap: %s", strerror(errno));
		return false;
	}
	r = realkvm_vm_create(&vm);
	if (r) {
		munmap(mem, bytes);
		snprintf(why, len, "KVM_CREATE_VM: %s", strerror(-r));
		return false;
	}
	for (int i = 0; i < existing && !r; i++)
		r = set_region(&vm, (uint32_t)i, 0, (uint64_t)i * KVMREF_SLOT_SIZE,
			       KVMREF_SLOT_SIZE, mem + (size_t)i * KVMREF_SLOT_SIZE);
	c = calloc((size_t)iters * 4, sizeof(double));
	f = c + iters;
	d = f + iters;
	m = d + iters;
	for (int i = 0; i < iters && !r; i++) {
		uint64_t gpa = (uint64_t)existing * KVMREF_SLOT_SIZE;
		void *hva = mem + (size_t)existing * KVMREF_SLOT_SIZE;
		uint32_t s = (uint32_t)existing;

		r = TIMED(c[i], set_region(&vm, s, 0, gpa, KVMREF_SLOT_SIZE, hva));
		if (!r)
			r = TIMED(f[i], set_region(&vm, s, KVM_MEM_LOG_DIRTY_PAGES,
						   gpa, KVMREF_SLOT_SIZE, hva));
		if (!r)
			r = TIMED(m[i], set_region(&vm, s, KVM_MEM_LOG_DIRTY_PAGES,
						   gpa + KVMREF_SLOT_SIZE,
						   KVMREF_SLOT_SIZE, hva));
		if (!r)
			r = TIMED(d[i], set_region(&vm, s, 0, 0, 0, hva));
	}
	if (r) {
		snprintf(why, len, "KVM_SET_USER_MEMORY_REGION: %s", strerror(-r));
	} else {
		out->create_ns = bench_median(c, iters);
		out->flags_ns = bench_median(f, iters);
		out->move_ns = bench_median(m, iters);
		out->delete_ns = bench_median(d, iters);
	}
	free(c);
	realkvm_vm_destroy(&vm);
	munmap(mem, bytes);
	return !r;
}

/* One run on a fresh VM: fills @v[0..3] (ns/page, ns/page, ns, ns). */
static int kvmref_touch_once(uint64_t npages, double v[4], char *why, size_t len)
{
	size_t bytes = (size_t)npages << 12;
	struct realkvm_guest *g = NULL;
	struct realkvm_vm vm;
	unsigned long *bitmap;
	uint8_t *mem;
	uint64_t t;
	int r;

	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	bitmap = calloc(npages / 64 + 1, sizeof(*bitmap));
	if (mem == MAP_FAILED || !bitmap) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	madvise(mem, bytes, MADV_NOHUGEPAGE);
	r = realkvm_vm_create(&vm);
	if (r) {
		snprintf(why, len, "KVM_CREATE_VM: %s", strerror(-r));
		goto out_mem;
	}
	r = realkvm_guest_create(&vm, KVMREF_CODE_SLOT, KVMREF_CODE_GPA, &g);
	if (r) {
		snprintf(why, len, "guest: %s", strerror(-r));
		goto out_vm;
	}
	r = set_region(&vm, KVMREF_DATA_SLOT, 0, KVMREF_DATA_GPA, bytes, mem);
	if (r)
		goto out_guest;
	t = bench_now_ns();
	r = realkvm_guest_touch(g, KVMREF_DATA_GPA, npages);
	v[0] = (double)(bench_now_ns() - t) / (double)npages;
	if (!r)
		r = set_region(&vm, KVMREF_DATA_SLOT, KVM_MEM_LOG_DIRTY_PAGES,
			       KVMREF_DATA_GPA, bytes, mem);
	if (!r) {
		t = bench_now_ns();
		r = realkvm_guest_touch(g, KVMREF_DATA_GPA, npages);
		v[1] = (double)(bench_now_ns() - t) / (double)npages;
	}
	if (!r) {
		struct kvm_dirty_log log = { .slot = KVMREF_DATA_SLOT,
					     .dirty_bitmap = bitmap };

		r = TIMED(v[2], realkvm_get_dirty_log(&vm, &log));
	}
	v[3] = NAN;
	if (r && !*why)
		snprintf(why, len, "guest run: %s", strerror(-r));
out_guest:
	realkvm_guest_destroy(g);
out_vm:
	realkvm_vm_destroy(&vm);
out_mem:
	munmap(mem, bytes);
	free(bitmap);
	return r;
}

bool kvmref_touch(const struct bench_opts *opts, uint64_t npages,
		  struct kvmref_touch *out, char *why, size_t len)
{
	double v[4][BENCH_MAX_RUNS];

	out->fault_ns = out->redirty_ns = out->get_log_ns = out->clear_log_ns = NAN;
	why[0] = 0;
	if (!kvmref_linked(why, len) || !realkvm_available(why, len) ||
	    !realkvm_guest_available(why, len))
		return false;
	for (int r = 0; r < opts->runs; r++) {
		double one[4];

		if (kvmref_touch_once(npages, one, why, len))
			return false;
		for (int k = 0; k < 4; k++)
			v[k][r] = one[k];
	}
	out->fault_ns = bench_median(v[0], opts->runs);
	out->redirty_ns = bench_median(v[1], opts->runs);
	out->get_log_ns = bench_median(v[2], opts->runs);
	return true;
}
