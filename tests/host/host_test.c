// SPDX-License-Identifier: MIT
/* Helpers of the src/host unit tests (see host_test.h). */
#include "host_test.h"

_Atomic unsigned long host_test_failures;

int host_test_setup_mem(size_t mem_bytes)
{
	struct host_config cfg = {
		.mem_bytes = mem_bytes,
		.nr_cpus = TEST_CPUS,
		.swap_bytes = TEST_SWAP,
		.poison_frames = true,
	};
	int ret = host_init(&cfg);

	if (ret) {
		fprintf(stderr, "# host_init: %d\n", ret);
		return -1;
	}
	atomic_store(&host_warnings, 0);
	return 0;
}

int host_test_setup(void **state)
{
	(void)state;
	return host_test_setup_mem(TEST_MEM);
}

int host_test_teardown(void **state)
{
	unsigned long failures = atomic_exchange(&host_test_failures, 0);
	unsigned long warnings = atomic_load(&host_warnings);
	int bad = 0;

	(void)state;
	host_exit();
	if (failures) {
		fprintf(stderr, "# %lu failed checks in worker threads\n", failures);
		bad = 1;
	}
	if (warnings) {
		fprintf(stderr, "# %lu host WARNINGs\n", warnings);
		bad = 1;
	}
	if (lockdep_report_count() || lockdep_warning_count()) {
		fprintf(stderr, "# validator: %lu reports, %lu warnings\n",
			lockdep_report_count(), lockdep_warning_count());
		bad = 1;
	}
	return bad ? -1 : 0;
}

/* ---------------------------------------------------------------------- */
/* The recording notifier                                                 */
/* ---------------------------------------------------------------------- */

static struct test_notifier *to_tn(struct mmu_notifier *mn)
{
	return container_of(mn, struct test_notifier, mn);
}

static int tn_start(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct test_notifier *tn = to_tn(mn);

	lockdep_assert_held(&r->mm->mmap_lock);
	atomic_fetch_add(&tn->starts, 1);
	atomic_fetch_add(&tn->active, 1);
	atomic_store(&tn->last_start, r->start);
	atomic_store(&tn->last_end, r->end);
	atomic_store(&tn->last_event, r->event);
	T_CHECK(r->start < r->end);
	T_CHECK(!(r->start & ~PAGE_MASK) && !(r->end & ~PAGE_MASK));
	if (tn->on_start)
		tn->on_start(tn, r);
	return 0;
}

static void tn_end(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct test_notifier *tn = to_tn(mn);

	lockdep_assert_held(&r->mm->mmap_lock);
	atomic_fetch_add(&tn->ends, 1);
	T_CHECK(atomic_fetch_sub(&tn->active, 1) > 0);
	if (tn->on_end)
		tn->on_end(tn, r);
}

static void tn_release(struct mmu_notifier *mn, struct host_mm *mm)
{
	(void)mm;
	atomic_fetch_add(&to_tn(mn)->releases, 1);
}

static int tn_young(struct test_notifier *tn)
{
	atomic_fetch_add(&tn->young_calls, 1);
	return atomic_load(&tn->young);
}

static int tn_clear_flush_young(struct mmu_notifier *mn, struct host_mm *mm,
				unsigned long start, unsigned long end)
{
	(void)start; (void)end;
	lockdep_assert_held(&mm->mmap_lock);
	return tn_young(to_tn(mn));
}

static int tn_clear_young(struct mmu_notifier *mn, struct host_mm *mm,
			  unsigned long start, unsigned long end)
{
	(void)start; (void)end;
	lockdep_assert_held(&mm->mmap_lock);
	return tn_young(to_tn(mn));
}

static int tn_test_young(struct mmu_notifier *mn, struct host_mm *mm,
			 unsigned long address)
{
	(void)address;
	lockdep_assert_held(&mm->mmap_lock);
	return tn_young(to_tn(mn));
}

static const struct mmu_notifier_ops tn_ops = {
	.release = tn_release,
	.clear_flush_young = tn_clear_flush_young,
	.clear_young = tn_clear_young,
	.test_young = tn_test_young,
	.invalidate_range_start = tn_start,
	.invalidate_range_end = tn_end,
};

void test_notifier_register(struct test_notifier *tn, struct host_mm *mm)
{
	memset(tn, 0, sizeof(*tn));
	tn->mn.ops = &tn_ops;
	assert_int_equal(mmu_notifier_register(&tn->mn, mm), 0);
}

void test_notifier_unregister(struct test_notifier *tn, struct host_mm *mm)
{
	mmu_notifier_unregister(&tn->mn, mm);
}

/* ---------------------------------------------------------------------- */
/* Access helpers                                                         */
/* ---------------------------------------------------------------------- */

void put64(struct host_mm *mm, unsigned long hva, uint64_t v)
{
	assert_int_equal(host_access(mm, hva, &v, sizeof(v), true), 0);
}

uint64_t get64(struct host_mm *mm, unsigned long hva)
{
	uint64_t v = 0;

	assert_int_equal(host_access(mm, hva, &v, sizeof(v), false), 0);
	return v;
}

unsigned long pfn_of(struct host_mm *mm, unsigned long hva)
{
	unsigned long pfn = INVALID_PFN;

	assert_int_equal(hva_to_pfn(mm, hva, 0, &pfn, NULL), 0);
	put_page(pfn_to_page(pfn));
	return pfn;
}

uint64_t raw_pte(struct host_mm *mm, unsigned long hva)
{
	struct host_vma *vma;
	uint64_t pte = 0;

	down_read(&mm->mmap_lock);
	vma = find_vma(mm, hva);
	if (vma && vma->pt->ptes)
		pte = pte_get(vma_pte(vma, hva));
	up_read(&mm->mmap_lock);
	return pte;
}

unsigned long free_frames(void)
{
	struct host_mem_stats st;

	host_mem_get_stats(&st);
	return st.frames_free;
}
