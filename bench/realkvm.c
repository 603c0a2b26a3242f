// SPDX-License-Identifier: MIT
/*
 * realkvm: the ioctl wrappers over the real /dev/kvm and the probes that say
 * whether it can be used here (see realkvm.h; the tiny guest is in
 * realkvm_guest.c).
 *
 * Every wrapper returns 0 (or the ioctl's non-negative result) or -errno, so
 * that its result compares directly with the ukvm_* call of the same name.
 * An ioctl interrupted by a signal is restarted.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bench/realkvm.h"

/* Set to anything non-empty: behave as if /dev/kvm were absent (tests the skip). */
#define REALKVM_DISABLE_ENV	"UKVM_NO_REALKVM"

int realkvm_ioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do {
		r = ioctl(fd, req, arg);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static int open_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int realkvm_vm_create(struct realkvm_vm *vm)
{
	int fd, r;

	vm->kvm_fd = -1;
	vm->vm_fd = -1;
	fd = open_kvm();
	if (fd < 0)
		return fd;
	r = realkvm_ioctl(fd, KVM_GET_API_VERSION, NULL);
	if (r != KVM_API_VERSION) {
		close(fd);
		return r < 0 ? r : -ENOTSUP;
	}
	/* Type 0: the default VM type, the one ukvm models. */
	r = realkvm_ioctl(fd, KVM_CREATE_VM, (void *)0UL);
	if (r < 0) {
		close(fd);
		return r;
	}
	vm->kvm_fd = fd;
	vm->vm_fd = r;
	return 0;
}

void realkvm_vm_destroy(struct realkvm_vm *vm)
{
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = -1;
	vm->kvm_fd = -1;
}

int realkvm_check_extension(struct realkvm_vm *vm, long ext)
{
	/* On the VM fd: the answer for this VM, as ukvm_check_extension(kvm). */
	return realkvm_ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, (void *)ext);
}

int realkvm_set_user_memory_region(struct realkvm_vm *vm,
				   const struct kvm_userspace_memory_region *mem)
{
	return realkvm_ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, (void *)mem);
}

int realkvm_enable_cap(struct realkvm_vm *vm, const struct kvm_enable_cap *cap)
{
	return realkvm_ioctl(vm->vm_fd, KVM_ENABLE_CAP, (void *)cap);
}

int realkvm_get_dirty_log(struct realkvm_vm *vm, struct kvm_dirty_log *log)
{
	return realkvm_ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, log);
}

int realkvm_clear_dirty_log(struct realkvm_vm *vm, struct kvm_clear_dirty_log *log)
{
	return realkvm_ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, log);
}

/* ---- probes: once per process ---------------------------------------- */

static pthread_once_t vm_once = PTHREAD_ONCE_INIT;
static bool vm_ok;
static char vm_why[256];

static void probe_vm(void)
{
	const char *env = getenv(REALKVM_DISABLE_ENV);
	struct realkvm_vm vm;
	int r, fd;

	if (env && *env) {
		snprintf(vm_why, sizeof(vm_why), "disabled by %s", REALKVM_DISABLE_ENV);
		return;
	}
	r = open_kvm();
	if (r < 0) {
		snprintf(vm_why, sizeof(vm_why), "cannot open /dev/kvm: %s", strerror(-r));
		return;
	}
	fd = r;
	r = realkvm_ioctl(fd, KVM_GET_API_VERSION, NULL);
	close(fd);
	if (r != KVM_API_VERSION) {
		snprintf(vm_why, sizeof(vm_why), "/dev/kvm: KVM_GET_API_VERSION: %s",
			 r < 0 ? strerror(-r) : "not 12");
		return;
	}
	r = realkvm_vm_create(&vm);
	if (r < 0) {
		snprintf(vm_why, sizeof(vm_why), "/dev/kvm: KVM_CREATE_VM: %s", strerror(-r));
		return;
	}
	r = realkvm_check_extension(&vm, KVM_CAP_USER_MEMORY);
	realkvm_vm_destroy(&vm);
	if (r <= 0) {
		snprintf(vm_why, sizeof(vm_why), "/dev/kvm: no KVM_CAP_USER_MEMORY");
		return;
	}
	snprintf(vm_why, sizeof(vm_why), "/dev/kvm can create VMs");
	vm_ok = true;
}

bool realkvm_available(char *why, size_t len)
{
	pthread_once(&vm_once, probe_vm);
	if (why && len)
		snprintf(why, len, "%s", vm_why);
	return vm_ok;
}

static pthread_once_t guest_once = PTHREAD_ONCE_INIT;
static bool guest_ok;
static char guest_why[256];

#define GUEST_CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			snprintf(guest_why, sizeof(guest_why), __VA_ARGS__); \
			goto out;					\
		}							\
	} while (0)

/*
 * The guest's self-test: a data slot, a write and its read-back, a write and
 * a read outside every slot (two MMIO exits, the read returning 0), and a
 * touch of two pages.
 */
static void probe_guest(void)
{
	const uint64_t data_gpa = 1ULL << 30, hole = data_gpa + (2ULL << 20);
	struct ukvm_guest_access acc[4] = {
		{ .gpa = data_gpa + 8, .value = 0x1122334455667788ULL, .len = 8,
		  .type = UKVM_ACCESS_WRITE },
		{ .gpa = data_gpa + 8, .len = 8, .type = UKVM_ACCESS_READ },
		{ .gpa = hole, .value = 0xabcd, .len = 2, .type = UKVM_ACCESS_WRITE },
		{ .gpa = hole + 4, .value = 77, .len = 4, .type = UKVM_ACCESS_READ },
	};
	struct kvm_userspace_memory_region mem = {
		.slot = 1, .guest_phys_addr = data_gpa, .memory_size = 2UL << 20,
	};
	struct realkvm_vm vm = { .kvm_fd = -1, .vm_fd = -1 };
	struct realkvm_guest *g = NULL;
	struct realkvm_mmio mmio[4];
	uint64_t *data;
	int r, nr_mmio = 0;

	if (!realkvm_available(guest_why, sizeof(guest_why)))
		return;
	data = realkvm_alloc(mem.memory_size);
	if (!data) {
		snprintf(guest_why, sizeof(guest_why), "cannot allocate guest memory");
		return;
	}
	mem.userspace_addr = (uintptr_t)data;
	r = realkvm_vm_create(&vm);
	GUEST_CHECK(!r, "/dev/kvm: KVM_CREATE_VM: %s", strerror(-r));
	r = realkvm_set_user_memory_region(&vm, &mem);
	GUEST_CHECK(!r, "/dev/kvm: KVM_SET_USER_MEMORY_REGION: %s", strerror(-r));
	r = realkvm_guest_create(&vm, 0, 0, &g);
	GUEST_CHECK(!r, "tiny guest: cannot create its vCPU: %s", strerror(-r));
	r = realkvm_guest_run(g, acc, 4, mmio, 4, &nr_mmio);
	GUEST_CHECK(!r, "tiny guest does not run (%s): %s", realkvm_guest_last_exit(g),
		    strerror(-r));
	GUEST_CHECK(data[1] == acc[0].value && acc[1].value == acc[0].value,
		    "tiny guest: a write and its read-back disagree (%#llx, %#llx)",
		    (unsigned long long)data[1], (unsigned long long)acc[1].value);
	GUEST_CHECK(nr_mmio == 2 && mmio[0].gpa == hole && mmio[0].is_write &&
		    mmio[0].len == 2 && mmio[0].value == 0xabcd &&
		    mmio[1].gpa == hole + 4 && !mmio[1].is_write && acc[3].value == 0,
		    "tiny guest: unexpected MMIO exits (%d of them)", nr_mmio);
	r = realkvm_guest_touch(g, data_gpa + 4096, 2);
	GUEST_CHECK(!r && data[512] == data_gpa + 4096 && data[1024] == data_gpa + 8192,
		    "tiny guest: touching pages failed (%s)", realkvm_guest_last_exit(g));
	snprintf(guest_why, sizeof(guest_why), "the tiny guest runs in %s",
		 REALKVM_GUEST_MODE);
	guest_ok = true;
out:
	if (g)
		realkvm_guest_destroy(g);
	realkvm_vm_destroy(&vm);
	realkvm_free(data, mem.memory_size);
}

bool realkvm_guest_available(char *why, size_t len)
{
	pthread_once(&guest_once, probe_guest);
	if (why && len)
		snprintf(why, len, "%s", guest_why);
	return guest_ok;
}
