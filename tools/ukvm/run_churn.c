// SPDX-License-Identifier: MIT
/*
 * `ukvm run`: host-side churn threads — the host kernel's mm operations on
 * guest pages, aging passes, CPU hotplug, and the set_nx_huge_pages-like
 * parameter writer.  Each loops until stop_churn, with a pause between
 * operations so that the vCPUs get CPU time, and does at least one
 * successful operation (bounded) so that a short run still exercises it.
 *
 * Host operations only ever preserve guest data, with one exception that
 * is safe by construction: madvise(DONTNEED) discards only scratch pages,
 * which no guest ever writes.  KSM merges two pattern pages of the same
 * 64-page group, which hold the same value (see src/guest/guest.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "host/host.h"
#include "run.h"

#define MAX_EXTRA_TRIES	2000	/* after stop, to get a first success */
#define SWAP_RING	64

static bool keep_going(struct run *r, unsigned long done, unsigned int *extra)
{
	if (!atomic_load(&r->stop_churn))
		return true;
	return !done && ++*extra < MAX_EXTRA_TRIES;
}

/* Count a host operation's result: 0, "busy" (a legitimate refusal), or not. */
static bool host_result(struct run *r, const char *what, int ret, enum run_counter ok)
{
	switch (ret) {
	case 0:
		run_count(r, ok, 1);
		return true;
	case -EAGAIN: case -ENOENT: case -ENOSPC: case -EBUSY: case -ENOMEM:
		run_count(r, RC_HOST_BUSY, 1);
		return false;
	default:
		run_unexpected(r, what, ret);
		return false;
	}
}

/* ---- host mm operations ---- */

struct host_churn {
	struct run *r;
	uint64_t rng;
	unsigned long swapped[SWAP_RING];
	unsigned int nswapped;
};

static unsigned long page_hva(const struct run_slot *sl, uint64_t gfn)
{
	return sl->hva + ((gfn - (sl->gpa >> PAGE_SHIFT)) << PAGE_SHIFT);
}

static bool host_op(struct host_churn *hc)
{
	struct run *r = hc->r;
	const struct run_slot *sl = &r->slots[run_rand(&hc->rng) % (uint64_t)r->nr_slots];
	uint64_t gfn = (sl->gpa >> PAGE_SHIFT) + run_rand(&hc->rng) % sl->npages;
	unsigned long hva = page_hva(sl, gfn);
	int ret;

	switch (run_rand(&hc->rng) % 6) {
	case 0:
		ret = host_migrate_page(host_current_mm, hva);
		return host_result(r, "host_migrate_page", ret, RC_HOST_MIGRATE);
	case 1:
		ret = host_swap_out(host_current_mm, hva);
		if (!ret)
			hc->swapped[hc->nswapped++ % SWAP_RING] = hva;
		return host_result(r, "host_swap_out", ret, RC_HOST_SWAP_OUT);
	case 2:
		/* Mostly a page we swapped out (the guest may have beaten us). */
		if (hc->nswapped && run_rand(&hc->rng) % 4)
			hva = hc->swapped[run_rand(&hc->rng) % (hc->nswapped < SWAP_RING ?
								hc->nswapped : SWAP_RING)];
		ret = host_swap_in(host_current_mm, hva);
		return host_result(r, "host_swap_in", ret, RC_HOST_SWAP_IN);
	case 3: {
		/* Pattern pages are gfn % 8 == 4; slots are 2 MiB-aligned. */
		uint64_t base = (gfn & ~63ULL) + 4;
		uint64_t a = base + 8 * (run_rand(&hc->rng) % 8);
		uint64_t b = base + 8 * (run_rand(&hc->rng) % 8);

		if (a == b)
			b = base + 8 * ((b - base) / 8 + 1) % 64;
		if (guest_page_class(r->w, a) != GUEST_PAGE_PATTERN ||
		    guest_page_class(r->w, b) != GUEST_PAGE_PATTERN) {
			run_unexpected(r, "KSM candidates are not pattern pages", -EINVAL);
			return false;
		}
		ret = host_ksm_merge(host_current_mm, page_hva(sl, a), page_hva(sl, b));
		return host_result(r, "host_ksm_merge", ret, RC_HOST_KSM);
	}
	case 4:
		ret = host_thp_split(host_current_mm, hva);
		return host_result(r, "host_thp_split", ret, RC_HOST_SPLIT);
	default:
		/* Only scratch pages (gfn % 8 == 0) may be discarded. */
		gfn &= ~7ULL;
		if (guest_page_class(r->w, gfn) != GUEST_PAGE_SCRATCH) {
			run_unexpected(r, "discard candidate is not a scratch page", -EINVAL);
			return false;
		}
		ret = host_madvise_dontneed(host_current_mm, page_hva(sl, gfn), PAGE_SIZE);
		return host_result(r, "host_madvise_dontneed", ret, RC_HOST_DISCARD);
	}
}

void *run_host_thread(void *arg)
{
	struct host_churn hc = { .r = arg };
	struct run *r = hc.r;
	unsigned long done = 0;
	unsigned int extra = 0;

	hc.rng = r->o.seed * 0x9E3779B97F4A7C15ULL + 11;
	do {
		done += host_op(&hc);
		run_sleep_us(r->o.churn_delay_us);
	} while (keep_going(r, done, &extra));
	return NULL;
}

/* ---- aging ---- */

void *run_age_thread(void *arg)
{
	struct run *r = arg;
	unsigned long done = 0, pass = 0;
	unsigned int extra = 0;

	do {
		int kind = (int)(pass++ % 3);

		for (int s = 0; s < r->nr_slots && !atomic_load(&r->stop_churn); s++) {
			const struct run_slot *sl = &r->slots[s];

			for (uint64_t off = 0; off < sl->npages << PAGE_SHIFT; off += PMD_SIZE) {
				unsigned long hva = sl->hva + off;
				long young;

				if (kind == 0)
					young = host_clear_young(host_current_mm, hva, PMD_SIZE);
				else if (kind == 1)
					young = host_clear_flush_young(host_current_mm, hva, PMD_SIZE);
				else
					young = host_test_young(host_current_mm, hva, PMD_SIZE);
				if (young < 0) {
					run_unexpected(r, "aging", (int)young);
					continue;
				}
				run_count(r, RC_AGE_CLEAR + kind, 1);
				run_count(r, RC_AGE_YOUNG, (unsigned long)young);
				done++;
				run_sleep_us(r->o.churn_delay_us * 4);
				if (atomic_load(&r->stop_churn))
					break;
			}
		}
	} while (keep_going(r, done, &extra));
	return NULL;
}

/* ---- CPU hotplug, cpufreq, suspend/resume ---- */

void *run_hotplug_thread(void *arg)
{
	struct run *r = arg;
	uint64_t rng = r->o.seed * 0x9E3779B97F4A7C15ULL + 23;
	unsigned int n = host_nr_cpus(), extra = 0;
	unsigned long done = 0, iter = 0;

	do {
		unsigned int cpu = (unsigned int)(run_rand(&rng) % n);
		int ret;

		if (host_cpu_online(cpu)) {
			ret = host_cpu_down(cpu);
			if (!ret) {
				run_count(r, RC_CPU_DOWN, 1);
				done++;
			} else if (ret != -EBUSY) {	/* -EBUSY: the last online CPU */
				run_unexpected(r, "host_cpu_down", ret);
			}
		} else {
			ret = host_cpu_up(cpu);
			if (!ret) {
				run_count(r, RC_CPU_UP, 1);
				done++;
			} else {
				run_unexpected(r, "host_cpu_up", ret);
			}
		}
		host_cpufreq_transition((unsigned int)(run_rand(&rng) % n));
		run_count(r, RC_CPUFREQ, 1);
		if (++iter % 16 == 0) {
			ret = host_suspend_resume();
			if (ret)
				run_unexpected(r, "host_suspend_resume", ret);
			else
				run_count(r, RC_SUSPEND, 1);
		}
		run_sleep_us(r->o.churn_delay_us * 20);
	} while (keep_going(r, done, &extra));
	return NULL;
}

void run_hotplug_restore(struct run *r)
{
	for (unsigned int cpu = 0; cpu < host_nr_cpus(); cpu++) {
		int ret;

		if (host_cpu_online(cpu))
			continue;
		ret = host_cpu_up(cpu);
		if (ret)
			run_unexpected(r, "host_cpu_up (restore)", ret);
		else
			run_count(r, RC_CPU_UP, 1);
	}
}

/* ---- the set_nx_huge_pages-like parameter writer ---- */

void *run_param_thread(void *arg)
{
	struct run *r = arg;
	unsigned long done = 0;
	unsigned int extra = 0;

	do {
		int n = ukvm_param_write_all_vms();

		/* Our own VM is on vm_list for the whole run. */
		if (n < 1) {
			run_unexpected(r, "param write reached no VM", n < 0 ? n : -ENOENT);
		} else {
			run_count(r, RC_PARAM_WRITES, 1);
			run_count(r, RC_PARAM_VMS, (unsigned long)n);
			done++;
		}
		/* Every VM refaults all its memory after one: a rare admin action. */
		run_sleep_us(r->o.churn_delay_us * 1000);
	} while (keep_going(r, done, &extra));
	return NULL;
}
