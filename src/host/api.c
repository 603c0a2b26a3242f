// SPDX-License-Identifier: MIT
/*
 * The public face of the host (include/ukvm/ukvm.h) for programs using
 * libukvm as a guest-memory manager: the VMM's address space.
 */
#include <errno.h>
#include <unistd.h>

#include "host/host_internal.h"
#include "ukvm/ukvm.h"

#define UKVM_HOST_DEFAULT_MEM	(1UL << 30)

int ukvm_host_init(const struct ukvm_host_config *cfg)
{
	static const struct ukvm_host_config defaults;
	struct host_config hc;
	long ncpu;

	if (!cfg)
		cfg = &defaults;
	hc = (struct host_config){
		.mem_bytes = cfg->mem_bytes,
		.nr_cpus = cfg->nr_cpus,
		.swap_bytes = cfg->swap_bytes,
		.poison_frames = cfg->poison_frames,
	};
	/* Zero means "the default": 1 GiB, as many CPUs as this machine has. */
	if (!hc.mem_bytes)
		hc.mem_bytes = UKVM_HOST_DEFAULT_MEM;
	if (!hc.nr_cpus) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		hc.nr_cpus = ncpu < 1 ? 1 : ncpu > HOST_MAX_CPUS ? HOST_MAX_CPUS :
			     (unsigned int)ncpu;
	}
	return host_init(&hc);
}

void ukvm_host_exit(void)
{
	host_exit();
}

unsigned long ukvm_host_mmap(size_t size, unsigned int flags)
{
	unsigned int vm = VM_READ;

	if (flags & ~(UKVM_MAP_THP | UKVM_MAP_HUGE_1G | UKVM_MAP_READONLY))
		return (unsigned long)-EINVAL;
	if (!host_initialized())
		return (unsigned long)-ENODEV;
	if (!(flags & UKVM_MAP_READONLY))
		vm |= VM_WRITE;
	if (flags & UKVM_MAP_THP)
		vm |= VM_THP;
	if (flags & UKVM_MAP_HUGE_1G)
		vm |= VM_HUGE_1G;
	return host_mmap(host_current_mm, size, vm);
}

int ukvm_host_munmap(unsigned long hva, size_t size)
{
	return host_initialized() ? host_munmap(host_current_mm, hva, size) : -ENODEV;
}

int ukvm_host_read(unsigned long hva, void *buf, size_t len)
{
	return host_initialized() ?
	       host_access(host_current_mm, hva, buf, len, false) : -ENODEV;
}

int ukvm_host_write(unsigned long hva, const void *buf, size_t len)
{
	return host_initialized() ?
	       host_access(host_current_mm, hva, (void *)buf, len, true) : -ENODEV;
}
