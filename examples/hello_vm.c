// SPDX-License-Identifier: MIT
/*
 * The smallest complete use of libukvm, written against the public header
 * only (include/ukvm/ukvm.h), as an emulator would: a host, a VM with one
 * memslot over VMM memory, a vCPU running a tiny guest program that writes
 * eight pages, the dirty log of those writes, and the data read back
 * through the VMM's mapping.  Exits 0 if everything is as expected.
 *
 *   cc hello_vm.c $(pkg-config --cflags --libs libukvm)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <ukvm/ukvm.h>

#define GUEST_GPA	0x100000ULL
#define GUEST_SIZE	(2UL << 20)
#define NR_WRITES	8

/* The guest: write i * 0x1111 at the start of page 2i, then exit. */
struct prog {
	int next;
	int done;
};

static enum ukvm_guest_step prog_next(void *ctx, struct ukvm_guest_access *a)
{
	struct prog *p = ctx;

	if (p->next == NR_WRITES)
		return UKVM_GUEST_EXIT;
	memset(a, 0, sizeof(*a));
	a->gpa = GUEST_GPA + (uint64_t)p->next * 2 * 4096;
	a->len = 8;
	a->type = UKVM_ACCESS_WRITE;
	a->value = (uint64_t)p->next * 0x1111;
	return UKVM_GUEST_ACCESS;
}

static void prog_complete(void *ctx, const struct ukvm_guest_access *a)
{
	struct prog *p = ctx;

	(void)a;
	p->next++;
	p->done++;
}

static const struct ukvm_guest_ops prog_ops = {
	.next = prog_next,
	.complete = prog_complete,
};

#define CHECK(expr)                                                           \
	do {                                                                  \
		long _r = (long)(expr);                                       \
		if (_r < 0) {                                                 \
			fprintf(stderr, "%s: %s\n", #expr, strerror((int)-_r)); \
			return 1;                                             \
		}                                                             \
	} while (0)

int main(void)
{
	static uint64_t bitmap[GUEST_SIZE / 4096 / 64];
	struct kvm_userspace_memory_region mem;
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bitmap };
	struct prog prog = { 0 };
	struct kvm_vcpu *vcpu;
	struct kvm_run run;
	unsigned long hva;
	struct kvm *kvm;
	int dirty = 0, bad = 0;

	CHECK(ukvm_host_init(NULL));	/* 1 GiB, this machine's CPUs */
	CHECK(ukvm_init());
	CHECK(ukvm_create_vm(NULL, &kvm));

	hva = ukvm_host_mmap(GUEST_SIZE, 0);
	CHECK(hva);
	mem = (struct kvm_userspace_memory_region){
		.slot = 0, .flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = GUEST_GPA, .memory_size = GUEST_SIZE,
		.userspace_addr = hva };
	CHECK(ukvm_set_user_memory_region(kvm, &mem));
	/* A misaligned region is refused with KVM's errno. */
	mem.slot = 1;
	mem.guest_phys_addr = 0x1234;
	if (ukvm_set_user_memory_region(kvm, &mem) != -EINVAL)
		return 1;

	CHECK(ukvm_create_vcpu(kvm, 0, &vcpu));
	CHECK(ukvm_vcpu_set_guest(vcpu, &prog_ops, &prog));
	CHECK(ukvm_vcpu_run(vcpu, &run));
	printf("KVM_RUN: exit reason %u after %d writes\n", run.exit_reason, prog.done);

	CHECK(ukvm_get_dirty_log(kvm, &log));
	for (unsigned int i = 0; i < GUEST_SIZE / 4096; i++)
		if (bitmap[i / 64] >> (i % 64) & 1) {
			dirty++;
			bad += i % 2 || i / 2 >= NR_WRITES;
		}
	for (int i = 0; i < NR_WRITES; i++) {
		uint64_t v;

		CHECK(ukvm_host_read(hva + (unsigned long)i * 2 * 4096, &v, sizeof(v)));
		bad += v != (uint64_t)i * 0x1111;
	}
	printf("dirty pages: %d (expected %d), wrong values or pages: %d\n",
	       dirty, NR_WRITES, bad);

	ukvm_destroy_vm(kvm);
	CHECK(ukvm_host_munmap(hva, GUEST_SIZE));
	ukvm_exit();
	ukvm_host_exit();
	return run.exit_reason == KVM_EXIT_HYPERCALL && prog.done == NR_WRITES &&
	       dirty == NR_WRITES && !bad ? 0 : 1;
}
