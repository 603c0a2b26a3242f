// SPDX-License-Identifier: MIT
/*
 * realkvm's tiny guest: a few bytes of hand-assembled x86-64 code that
 * executes a table of memory accesses, or writes one word to each of N
 * pages, then stops with an OUT to port 0x80 (KVM_EXIT_IO).
 *
 * The mode: 64-bit long mode with an identity map of [0, 64 GiB) made of
 * 2 MiB pages, all in the guest's own memslot.  PVM (the host KVM this was
 * written on) also runs 32-bit flat protected mode without paging, but there
 * an 8-byte access is two instructions (no SSE: PVM's emulator cannot do it),
 * so an 8-byte MMIO access would be two 4-byte exits where ukvm's vCPU makes
 * one.  Long mode has single-instruction accesses of 1, 2, 4 and 8 bytes, each
 * exactly one MMIO exit, like ukvm's.  64 GiB: with no KVM_SET_CPUID2 the
 * vCPU's MAXPHYADDR is 36, and a guest PTE above it would be reserved.
 * PVM failed on 1 GiB guest pages at 4 GiB (perf-anchors.md 3.7): 2 MiB
 * pages it handles.
 *
 * Only general-purpose registers and integer instructions: PVM's emulator,
 * which runs the MMIO accesses, cannot do SSE.  No IDT: an exception is a
 * triple fault, KVM_EXIT_SHUTDOWN, reported as -EIO.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench/realkvm.h"

/* The layout of the code slot (REALKVM_GUEST_CODE_SIZE bytes). */
#define G_CODE		0x0000UL
#define G_PML4		0x1000UL
#define G_PDPT		0x2000UL
#define G_PD		0x3000UL	/* one page per GiB */
#define G_NR_PD		(REALKVM_GUEST_GPA_LIMIT >> 30)
#define G_TABLE		(G_PD + G_NR_PD * 0x1000UL)
#define G_TABLE_CAP	((REALKVM_GUEST_CODE_SIZE - G_TABLE) / sizeof(struct g_entry))

#define PTE_P		0x1ULL
#define PTE_RW		0x2ULL
#define PTE_A		0x20ULL
#define PTE_D		0x40ULL
#define PTE_PS		0x80ULL

#define G_DONE_PORT	0x80

/* One entry of the access table, as the guest code reads it. */
struct g_entry {
	uint64_t gpa;
	uint64_t value;		/* the value to write, or the value read */
	uint8_t len;		/* 1, 2, 4, 8 */
	uint8_t write;
	uint8_t pad[6];
};
_Static_assert(sizeof(struct g_entry) == 24, "the guest code steps by 24");

/*
 * RUN (entry 0x00): rsi = table, rcx = count.
 *	00 test %rcx,%rcx ; je done
 *	05 mov (%rsi),%rdi ; mov 8(%rsi),%rax ; movzbl 16(%rsi),%edx
 *	10 cmpb $0,17(%rsi) ; jne wr
 *	16 cmp $1/$2/$4,%edx ; je r1/r2/r4 ; mov (%rdi),%rax ; jmp rs
 *	2a r1: movzbl (%rdi),%eax ; jmp rs
 *	2f r2: movzwl (%rdi),%eax ; jmp rs
 *	34 r4: mov (%rdi),%eax
 *	36 rs: mov %rax,8(%rsi) ; jmp nx
 *	3c wr: cmp $1/$2/$4,%edx ; je w1/w2/w4 ; mov %rax,(%rdi) ; jmp nx
 *	50 w1: mov %al,(%rdi) ; jmp nx
 *	54 w2: mov %ax,(%rdi) ; jmp nx
 *	59 w4: mov %eax,(%rdi)
 *	5b nx: add $24,%rsi ; dec %rcx ; jmp RUN
 *	64 done: out %al,$0x80 ; hlt
 * TOUCH (entry 0x67): rdi = first page, rcx = pages.
 *	67 test %rcx,%rcx ; je done ; mov %rdi,(%rdi) ; add $4096,%rdi
 *	76 dec %rcx ; jmp TOUCH
 */
#define G_ENTRY_RUN	0x00
#define G_ENTRY_TOUCH	0x67
static const uint8_t guest_code[] = {
	0x48, 0x85, 0xc9, 0x74, 0x5f,			/* 00 */
	0x48, 0x8b, 0x3e,				/* 05 */
	0x48, 0x8b, 0x46, 0x08,				/* 08 */
	0x0f, 0xb6, 0x56, 0x10,				/* 0c */
	0x80, 0x7e, 0x11, 0x00, 0x75, 0x26,		/* 10 */
	0x83, 0xfa, 0x01, 0x74, 0x0f,			/* 16 */
	0x83, 0xfa, 0x02, 0x74, 0x0f,			/* 1b */
	0x83, 0xfa, 0x04, 0x74, 0x0f,			/* 20 */
	0x48, 0x8b, 0x07, 0xeb, 0x0c,			/* 25 */
	0x0f, 0xb6, 0x07, 0xeb, 0x07,			/* 2a r1 */
	0x0f, 0xb7, 0x07, 0xeb, 0x02,			/* 2f r2 */
	0x8b, 0x07,					/* 34 r4 */
	0x48, 0x89, 0x46, 0x08, 0xeb, 0x1f,		/* 36 rs */
	0x83, 0xfa, 0x01, 0x74, 0x0f,			/* 3c wr */
	0x83, 0xfa, 0x02, 0x74, 0x0e,			/* 41 */
	0x83, 0xfa, 0x04, 0x74, 0x0e,			/* 46 */
	0x48, 0x89, 0x07, 0xeb, 0x0b,			/* 4b */
	0x88, 0x07, 0xeb, 0x07,				/* 50 w1 */
	0x66, 0x89, 0x07, 0xeb, 0x02,			/* 54 w2 */
	0x89, 0x07,					/* 59 w4 */
	0x48, 0x83, 0xc6, 0x18,				/* 5b nx */
	0x48, 0xff, 0xc9, 0xeb, 0x9c,			/* 5f */
	0xe6, G_DONE_PORT, 0xf4,			/* 64 done */
	0x48, 0x85, 0xc9, 0x74, 0xf8,			/* 67 TOUCH */
	0x48, 0x89, 0x3f,				/* 6c */
	0x48, 0x81, 0xc7, 0x00, 0x10, 0x00, 0x00,	/* 6f */
	0x48, 0xff, 0xc9, 0xeb, 0xec,			/* 76 */
};

struct realkvm_guest {
	struct realkvm_vm *vm;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;			/* the code slot */
	uint64_t code_gpa;
	uint32_t code_slot;
	char last_exit[96];
};

void *realkvm_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void realkvm_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

const char *realkvm_guest_last_exit(const struct realkvm_guest *g)
{
	return g ? g->last_exit : "no guest";
}

/*
 * The identity map of [0, REALKVM_GUEST_GPA_LIMIT): 2 MiB pages, already
 * Accessed and Dirty, so that the guest never writes its own page tables
 * (with shadow paging each A/D update would be a write to a shadowed page).
 */
static void build_page_tables(uint8_t *mem, uint64_t code_gpa)
{
	uint64_t *pml4 = (uint64_t *)(mem + G_PML4);
	uint64_t *pdpt = (uint64_t *)(mem + G_PDPT);

	pml4[0] = (code_gpa + G_PDPT) | PTE_P | PTE_RW | PTE_A;
	for (uint64_t gb = 0; gb < G_NR_PD; gb++) {
		uint64_t *pd = (uint64_t *)(mem + G_PD + gb * 0x1000);

		pdpt[gb] = (code_gpa + G_PD + gb * 0x1000) | PTE_P | PTE_RW | PTE_A;
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = (gb << 30) | (i << 21) | PTE_P | PTE_RW | PTE_PS |
				PTE_A | PTE_D;
	}
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;		/* 64-bit code segment */
	s->db = !code;
}

static int enter_long_mode(struct realkvm_guest *g)
{
	struct kvm_sregs sregs;
	int r;

	r = realkvm_ioctl(g->vcpu_fd, KVM_GET_SREGS, &sregs);
	if (r < 0)
		return r;
	/* TR, LDT, GDT and IDT keep their reset values: nothing loads them. */
	flat_segment(&sregs.cs, 0x08, 0x0b, true);
	flat_segment(&sregs.ds, 0x10, 0x03, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.cr0 = 0x80050033;		/* PG AM WP NE ET MP PE */
	sregs.cr3 = g->code_gpa + G_PML4;
	sregs.cr4 = 0x20;		/* PAE */
	sregs.efer = 0x500;		/* LMA LME */
	r = realkvm_ioctl(g->vcpu_fd, KVM_SET_SREGS, &sregs);
	return r < 0 ? r : 0;
}

int realkvm_guest_create(struct realkvm_vm *vm, uint32_t code_slot,
			 uint64_t code_gpa, struct realkvm_guest **out)
{
	struct kvm_userspace_memory_region mem = {
		.slot = code_slot, .guest_phys_addr = code_gpa,
		.memory_size = REALKVM_GUEST_CODE_SIZE,
	};
	struct realkvm_guest *g;
	int r, sz;

	if ((code_gpa & 0xfff) || code_gpa + REALKVM_GUEST_CODE_SIZE > REALKVM_GUEST_GPA_LIMIT)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->vm = vm;
	g->vcpu_fd = -1;
	g->code_gpa = code_gpa;
	g->code_slot = code_slot;
	snprintf(g->last_exit, sizeof(g->last_exit), "not run yet");
	g->mem = realkvm_alloc(REALKVM_GUEST_CODE_SIZE);
	if (!g->mem) {
		r = -ENOMEM;
		goto err;
	}
	memcpy(g->mem + G_CODE, guest_code, sizeof(guest_code));
	build_page_tables(g->mem, code_gpa);
	mem.userspace_addr = (uintptr_t)g->mem;
	r = realkvm_set_user_memory_region(vm, &mem);
	if (r)
		goto err_mem;

	sz = realkvm_ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL);
	if (sz < (int)sizeof(struct kvm_run)) {
		r = sz < 0 ? sz : -EINVAL;
		goto err_slot;
	}
	r = realkvm_ioctl(vm->vm_fd, KVM_CREATE_VCPU, (void *)0UL);
	if (r < 0)
		goto err_slot;
	g->vcpu_fd = r;
	g->run_size = (size_t)sz;
	g->run = mmap(NULL, g->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, g->vcpu_fd, 0);
	if (g->run == MAP_FAILED) {
		r = -errno;
		g->run = NULL;
		goto err_vcpu;
	}
	r = enter_long_mode(g);
	if (r)
		goto err_run;
	*out = g;
	return 0;

err_run:
	munmap(g->run, g->run_size);
err_vcpu:
	close(g->vcpu_fd);
err_slot:
	mem.memory_size = 0;
	realkvm_set_user_memory_region(vm, &mem);
err_mem:
	realkvm_free(g->mem, REALKVM_GUEST_CODE_SIZE);
err:
	free(g);
	return r;
}

void realkvm_guest_destroy(struct realkvm_guest *g)
{
	struct kvm_userspace_memory_region mem = { 0 };

	if (!g)
		return;
	mem.slot = g->code_slot;
	mem.guest_phys_addr = g->code_gpa;
	munmap(g->run, g->run_size);
	close(g->vcpu_fd);
	/* The VM may outlive the guest: its slot goes (an error if already gone). */
	if (g->vm->vm_fd >= 0)
		realkvm_set_user_memory_region(g->vm, &mem);
	realkvm_free(g->mem, REALKVM_GUEST_CODE_SIZE);
	free(g);
}

static uint64_t mmio_value(const struct kvm_run *run)
{
	uint64_t v = 0;

	memcpy(&v, run->mmio.data, run->mmio.len <= 8 ? run->mmio.len : 8);
	return v;
}

/*
 * Run from @entry until the OUT that ends the program.  MMIO exits are
 * recorded (when @mmio) and completed; a read returns 0.
 */
static int run_program(struct realkvm_guest *g, uint64_t entry, uint64_t rsi,
		       uint64_t rdi, uint64_t rcx, struct realkvm_mmio *mmio,
		       int max_mmio, int *nr_mmio)
{
	struct kvm_regs regs = {
		.rip = g->code_gpa + entry, .rsi = rsi, .rdi = rdi, .rcx = rcx,
		.rsp = g->code_gpa + REALKVM_GUEST_CODE_SIZE, .rflags = 0x2,
	};
	struct kvm_run *run = g->run;
	int r;

	r = realkvm_ioctl(g->vcpu_fd, KVM_SET_REGS, &regs);
	if (r < 0)
		return r;
	for (;;) {
		r = realkvm_ioctl(g->vcpu_fd, KVM_RUN, NULL);
		if (r < 0) {
			snprintf(g->last_exit, sizeof(g->last_exit), "KVM_RUN: %s",
				 strerror(-r));
			return r;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_MMIO:
			if (mmio && nr_mmio && *nr_mmio < max_mmio) {
				struct realkvm_mmio *m = &mmio[*nr_mmio];

				m->gpa = run->mmio.phys_addr;
				m->len = (uint8_t)run->mmio.len;
				m->is_write = run->mmio.is_write;
				m->value = m->is_write ? mmio_value(run) : 0;
			}
			if (nr_mmio)
				(*nr_mmio)++;
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0, sizeof(run->mmio.data));
			continue;
		case KVM_EXIT_IO:
			if (run->io.port == G_DONE_PORT &&
			    run->io.direction == KVM_EXIT_IO_OUT) {
				snprintf(g->last_exit, sizeof(g->last_exit), "done");
				return 0;
			}
			snprintf(g->last_exit, sizeof(g->last_exit),
				 "unexpected port I/O to %#x", run->io.port);
			return -EIO;
		case KVM_EXIT_INTR:
			continue;
		case KVM_EXIT_INTERNAL_ERROR:
			snprintf(g->last_exit, sizeof(g->last_exit),
				 "KVM_EXIT_INTERNAL_ERROR, suberror %u",
				 run->internal.suberror);
			return -EIO;
		default:
			snprintf(g->last_exit, sizeof(g->last_exit), "exit reason %u",
				 run->exit_reason);
			return -EIO;
		}
	}
}

static bool access_ok_for_guest(const struct ukvm_guest_access *a)
{
	if (a->type != UKVM_ACCESS_READ && a->type != UKVM_ACCESS_WRITE)
		return false;
	if (a->len != 1 && a->len != 2 && a->len != 4 && a->len != 8)
		return false;
	return !(a->gpa & (a->len - 1)) && a->gpa < REALKVM_GUEST_GPA_LIMIT;
}

int realkvm_guest_run(struct realkvm_guest *g, struct ukvm_guest_access *acc,
		      int n, struct realkvm_mmio *mmio, int max_mmio, int *nr_mmio)
{
	struct g_entry *table = (struct g_entry *)(g->mem + G_TABLE);
	int done = 0, r, dummy = 0;

	if (!nr_mmio)
		nr_mmio = &dummy;
	*nr_mmio = 0;
	if (n < 0)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		if (!access_ok_for_guest(&acc[i]))
			return -EINVAL;
	while (done < n) {
		int batch = n - done < (int)G_TABLE_CAP ? n - done : (int)G_TABLE_CAP;

		for (int i = 0; i < batch; i++) {
			const struct ukvm_guest_access *a = &acc[done + i];

			table[i] = (struct g_entry){
				.gpa = a->gpa, .len = a->len,
				.write = a->type == UKVM_ACCESS_WRITE,
				.value = a->type == UKVM_ACCESS_WRITE ? a->value : 0,
			};
		}
		r = run_program(g, G_ENTRY_RUN, g->code_gpa + G_TABLE, 0,
				(uint64_t)batch, mmio, max_mmio, nr_mmio);
		if (r)
			return r;
		for (int i = 0; i < batch; i++)
			if (acc[done + i].type == UKVM_ACCESS_READ)
				acc[done + i].value = table[i].value;
		done += batch;
	}
	return 0;
}

int realkvm_guest_touch(struct realkvm_guest *g, uint64_t gpa, uint64_t npages)
{
	if ((gpa & 0xfff) || gpa >= REALKVM_GUEST_GPA_LIMIT ||
	    npages > (REALKVM_GUEST_GPA_LIMIT - gpa) >> 12)
		return -EINVAL;
	return run_program(g, G_ENTRY_TOUCH, 0, gpa, npages, NULL, 0, NULL);
}
