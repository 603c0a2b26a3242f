/* SPDX-License-Identifier: MIT */
/*
 * realkvm: the real /dev/kvm as a reference (ukvm bench) and as an oracle
 * (ukvm diff-kvm).  Thin wrappers over the ioctls that return 0 or -errno
 * (so results compare directly with ukvm's), and a tiny guest: a few bytes of
 * hand-assembled code that executes a list of memory accesses read from a
 * table in guest memory and then stops, so that the very same accesses can
 * run on ukvm's simulated CPU and on the real KVM.
 *
 * Everything here must skip cleanly where /dev/kvm is absent or unusable:
 * realkvm_available() says why.
 */
#ifndef UKVM_BENCH_REALKVM_H
#define UKVM_BENCH_REALKVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ukvm/ukvm.h"

/* /dev/kvm can create a VM (and, for the guest, a vCPU that runs). */
bool realkvm_available(char *why, size_t len);
bool realkvm_guest_available(char *why, size_t len);

struct realkvm_vm {
	int kvm_fd;
	int vm_fd;
};

int realkvm_vm_create(struct realkvm_vm *vm);
void realkvm_vm_destroy(struct realkvm_vm *vm);
int realkvm_check_extension(struct realkvm_vm *vm, long ext);
int realkvm_set_user_memory_region(struct realkvm_vm *vm,
				   const struct kvm_userspace_memory_region *mem);
int realkvm_enable_cap(struct realkvm_vm *vm, const struct kvm_enable_cap *cap);
int realkvm_get_dirty_log(struct realkvm_vm *vm, struct kvm_dirty_log *log);
int realkvm_clear_dirty_log(struct realkvm_vm *vm, struct kvm_clear_dirty_log *log);
/* Any other ioctl on a KVM fd: its result or -errno (EINTR restarted). */
int realkvm_ioctl(int fd, unsigned long req, void *arg);

/* Anonymous memory to back a real memslot (NULL on failure). */
void *realkvm_alloc(size_t size);
void realkvm_free(void *p, size_t size);

/* An access the guest made that left the guest (MMIO / port I/O). */
struct realkvm_mmio {
	uint64_t gpa;
	uint64_t value;
	uint8_t len;
	bool is_write;
};

struct realkvm_guest;		/* a vCPU with its code slot */

/*
 * The guest runs in 64-bit long mode on an identity map of
 * [0, REALKVM_GUEST_GPA_LIMIT) (see realkvm_guest.c for why not 32-bit
 * protected mode): every gpa it accesses must be below the limit.  Its code,
 * page tables and access table fill REALKVM_GUEST_CODE_SIZE bytes at code_gpa.
 */
#define REALKVM_GUEST_MODE		"64-bit long mode, identity map of 2 MiB pages"
#define REALKVM_GUEST_GPA_LIMIT		(1ULL << 36)
#define REALKVM_GUEST_CODE_SIZE		(512UL << 10)

/*
 * Create a vCPU whose code and access table live in their own memslot
 * @code_slot at @code_gpa (page-aligned, the slot below the gpa limit).
 */
int realkvm_guest_create(struct realkvm_vm *vm, uint32_t code_slot,
			 uint64_t code_gpa, struct realkvm_guest **out);
void realkvm_guest_destroy(struct realkvm_guest *g);
/*
 * Execute @n accesses in order, in guest mode.  Reads fill acc[i].value.
 * An access that exits (no memslot, or a write to a read-only slot) is
 * recorded in @mmio (up to @max_mmio; *nr_mmio counts all) and completed
 * (reads return 0).  0 or -errno.
 */
int realkvm_guest_run(struct realkvm_guest *g, struct ukvm_guest_access *acc,
		      int n, struct realkvm_mmio *mmio, int max_mmio, int *nr_mmio);
/*
 * Write one 8-byte word to each of @npages pages from @gpa (demand paging):
 * at offset 0 of each page, its own gpa.  Exits to no slot are completed.
 */
int realkvm_guest_touch(struct realkvm_guest *g, uint64_t gpa, uint64_t npages);
/* Why the last run stopped ("done", or the exit that made it fail). */
const char *realkvm_guest_last_exit(const struct realkvm_guest *g);

#endif /* UKVM_BENCH_REALKVM_H */
