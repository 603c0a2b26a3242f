// SPDX-License-Identifier: MIT
/*
 * The host's lifetime: host_init() and host_exit().
 */
#include <errno.h>

#include "host/host_internal.h"

static bool host_up;
static bool host_registered_thread;

bool host_initialized(void)
{
	return host_up;
}

int host_init(const struct host_config *cfg)
{
	int ret;

	if (host_up)
		return -EBUSY;
	if (!cfg)
		return -EINVAL;
	if (!ukvm_rcu_thread_registered()) {
		ukvm_thread_register_current("host-main");
		host_registered_thread = true;
	}
	ret = physmem_init(cfg->mem_bytes, cfg->poison_frames);
	if (ret)
		goto fail;
	ret = swap_init(cfg->swap_bytes);
	if (ret)
		goto fail_phys;
	ret = mmu_notifier_global_init();
	if (ret)
		goto fail_swap;
	ret = host_cpus_init(cfg->nr_cpus);
	if (ret)
		goto fail_mn;
	host_current_mm = host_mm_create();
	if (!host_current_mm) {
		ret = -ENOMEM;
		goto fail_cpus;
	}
	host_up = true;
	return 0;

fail_cpus:
	host_cpus_exit();
fail_mn:
	mmu_notifier_global_exit();
fail_swap:
	swap_exit();
fail_phys:
	physmem_exit();
fail:
	if (host_registered_thread) {
		ukvm_thread_unregister_current();
		host_registered_thread = false;
	}
	return ret;
}

void host_exit(void)
{
	if (!host_up)
		return;
	host_mm_destroy(host_current_mm);
	host_current_mm = NULL;
	/* Every RCU callback (VMAs, page tables) has run before memory goes. */
	ukvm_rcu_barrier();
	host_cpus_exit();
	mmu_notifier_global_exit();
	swap_exit();
	physmem_exit();
	host_up = false;
	if (host_registered_thread) {
		ukvm_thread_unregister_current();
		host_registered_thread = false;
	}
}
