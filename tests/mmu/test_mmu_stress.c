// SPDX-License-Identifier: MIT
/*
 * The concurrent test of the TDP MMU: two vCPU threads write tagged data
 * over two memslots (one THP-backed) while host threads migrate, swap,
 * KSM-merge, split and discard pages and the VMM turns dirty logging on and
 * off and reads the log.  After quiescing:
 *   - every gfn read through the host mapping holds the last tag written
 *     (0 lost writes), pattern pages are intact, scratch pages zero;
 *   - every page written since a dirty-log read is in a later log
 *     (0 missed dirty pages);
 *   - no invariant failed, the validator reported nothing, no write went
 *     into a freed frame, and every invalidation was balanced.
 * Run in three dirty-logging modes: GET with write-protection, manual
 * protect with CLEAR_DIRTY_LOG, and Dirty-bit harvesting.
 */
#include <errno.h>
#include <stdlib.h>

#include "guest/guest.h"
#include "mmu_test.h"

#define SLOT_PAGES	1024		/* 4 MiB per slot */
#define GPA0		(1ULL << 32)
#define GPA1		(GPA0 + (64ULL << 20))

struct stress {
	struct kvm *kvm;
	unsigned long hva[2];
	uint64_t gpa[2];
	struct guest_workload *w;
	struct kvm_vcpu *vcpu[2];
	bool manual;
	_Atomic bool vcpus_done;
	_Atomic unsigned long host_ops[8], log_rounds;
};

static int host_write64(void *arg, uint64_t gpa, uint64_t v)
{
	struct stress *st = arg;
	int s = gpa >= st->gpa[1];

	return host_access(host_current_mm, st->hva[s] + (gpa - st->gpa[s]), &v, 8, true);
}

static int host_read64(void *arg, uint64_t gpa, uint64_t *v)
{
	struct stress *st = arg;
	int s = gpa >= st->gpa[1];

	return host_access(host_current_mm, st->hva[s] + (gpa - st->gpa[s]), v, 8, false);
}

struct vcpu_arg {
	struct stress *st;
	int idx;
};

static void vcpu_exit(const struct kvm_run *run, void *arg)
{
	(void)arg;
	/* All guest memory is in memslots: no MMIO ever. */
	T_CHECK(run->exit_reason == KVM_EXIT_INTR);
}

/* Until the guest finished its passes. */
static void *vcpu_fn(void *arg)
{
	struct vcpu_arg *va = arg;

	mt_vcpu_loop(va->st->vcpu[va->idx], &guest_memstress_ops,
		     guest_vcpu_ctx(va->st->w, va->idx), vcpu_exit, NULL);
	return NULL;
}

static void *host_fn(void *arg)
{
	struct stress *st = arg;
	unsigned int seed = (unsigned int)(uintptr_t)&seed;

	while (!atomic_load(&st->vcpus_done)) {
		int s = rand_r(&seed) % 2, op = rand_r(&seed) % 7;
		uint64_t page = (uint64_t)rand_r(&seed) % SLOT_PAGES;
		unsigned long hva = st->hva[s] + (page << 12);
		uint64_t gfn = (st->gpa[s] >> 12) + page;
		int r = 0;

		switch (op) {
		case 0:
			r = host_migrate_page(host_current_mm, hva);
			break;
		case 1:
			r = host_swap_out(host_current_mm, hva);
			break;
		case 2:
			r = host_swap_in(host_current_mm, hva);
			break;
		case 3: {	/* two pattern pages of one group: identical */
			uint64_t base = (page & ~63ULL) + 4;

			r = host_ksm_merge(host_current_mm, st->hva[s] + (base << 12),
					   st->hva[s] + ((base + 8 * (1 + rand_r(&seed) % 7)) << 12));
			break;
		}
		case 4:	/* only scratch pages may be discarded */
			if (guest_page_class(st->w, gfn) == GUEST_PAGE_SCRATCH)
				r = host_madvise_dontneed(host_current_mm, hva, 4096);
			break;
		case 5:
			r = host_thp_split(host_current_mm, hva);
			break;
		default:
			host_clear_young(host_current_mm, hva, 64 << 12);
			break;
		}
		if (!r)
			atomic_fetch_add(&st->host_ops[op], 1);
	}
	return NULL;
}

static void get_logs(struct stress *st, uint32_t round, unsigned long *bitmap)
{
	for (int s = 0; s < 2; s++) {
		struct kvm_dirty_log log = { .slot = (uint32_t)s, .dirty_bitmap = bitmap };

		memset(bitmap, 0, SLOT_PAGES / 8);
		T_CHECK(ukvm_get_dirty_log(st->kvm, &log) == 0);
		guest_dirty_log_record(st->w, st->gpa[s] >> 12, bitmap, SLOT_PAGES, round);
		if (st->manual) {
			/* Re-protect what we read, in 64-page chunks. */
			struct kvm_clear_dirty_log clr = {
				.slot = (uint32_t)s, .num_pages = SLOT_PAGES,
				.dirty_bitmap = bitmap };

			T_CHECK(ukvm_clear_dirty_log(st->kvm, &clr) == 0);
		}
	}
}

/*
 * Done when the guests made enough passes and every repeatable kind of host
 * operation (migrate, swap out, swap in, KSM merge, discard) succeeded a few
 * times meanwhile.  A THP can be split only once: not counted.
 */
static bool stress_enough(struct stress *st)
{
	struct guest_stats gs;

	guest_get_stats(st->w, &gs);
	if (gs.passes_done < (uint64_t)SCALE(200))
		return false;
	for (int op = 0; op < 5; op++)
		if (atomic_load(&st->host_ops[op]) < (unsigned long)SCALE(20))
			return false;
	return true;
}

static int kt_region(struct stress *st, int s, bool logging)
{
	struct kvm_userspace_memory_region mem = {
		.slot = (uint32_t)s,
		.flags = logging ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		.guest_phys_addr = st->gpa[s],
		.memory_size = SLOT_PAGES << 12,
		.userspace_addr = st->hva[s],
	};

	return ukvm_set_user_memory_region(st->kvm, &mem);
}

static void set_logging(struct stress *st, bool on)
{
	for (int s = 0; s < 2; s++)
		T_CHECK(kt_region(st, s, on) == 0);
}

static void run_stress(enum ukvm_dirty_mode mode, bool manual)
{
	const struct ukvm_vm_config cfg = { .dirty_mode = mode };
	const struct guest_region regions[2] = {
		{ GPA0, SLOT_PAGES }, { GPA1, SLOT_PAGES } };
	const struct guest_config gc = {
		.nr_vcpus = 2, .regions = regions, .nr_regions = 2,
		.random = true, .write_percent = 60, .seed = 17,
		.passes = 0, .scratch_every = 8, .pattern_every = 8,
	};
	struct stress st = { .gpa = { GPA0, GPA1 }, .manual = manual };
	struct vcpu_arg va[2];
	pthread_t vt[2], ht[2];
	unsigned long bitmap[SLOT_PAGES / 64];
	struct guest_verify_result res;
	struct guest_stats gs;
	struct host_mem_stats ms;

	assert_int_equal(ukvm_create_vm(&cfg, &st.kvm), 0);
	if (manual) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };

		cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
		assert_int_equal(ukvm_enable_cap(st.kvm, &cap), 0);
	}
	st.hva[0] = host_mmap(host_current_mm, SLOT_PAGES << 12, VM_READ | VM_WRITE | VM_THP);
	st.hva[1] = host_mmap(host_current_mm, SLOT_PAGES << 12, VM_READ | VM_WRITE);
	for (int s = 0; s < 2; s++)
		assert_int_equal(kt_region(&st, s, false), 0);
	st.w = guest_workload_create(&gc);
	assert_non_null(st.w);
	assert_int_equal(guest_prefill(st.w, host_write64, &st), 0);

	for (int i = 0; i < 2; i++) {
		assert_int_equal(ukvm_create_vcpu(st.kvm, (unsigned long)i, &st.vcpu[i]), 0);
		va[i] = (struct vcpu_arg){ &st, i };
	}
	for (int i = 0; i < 2; i++)
		vt[i] = start_thread("vcpu", vcpu_fn, &va[i]);
	for (int i = 0; i < 2; i++)
		ht[i] = start_thread("host-mm", host_fn, &st);

	/*
	 * The VMM: logging on, rounds of GET (+ CLEAR), logging off, again --
	 * until the guests did enough passes and the host did enough of every
	 * operation concurrently with them (no assumption about speeds).
	 */
	while (!stress_enough(&st)) {
		set_logging(&st, true);
		guest_dirty_tracking_begin(st.w);
		for (int r = 0; r < 8; r++) {
			uint32_t round = guest_dirty_round_close(st.w);

			get_logs(&st, round, bitmap);
			T_CHECK(guest_dirty_check(st.w, round) == 0);
			atomic_fetch_add(&st.log_rounds, 1);
		}
		guest_dirty_tracking_end(st.w);
		set_logging(&st, false);
	}
	guest_workload_stop(st.w);
	for (int i = 0; i < 2; i++)
		join_thread(vt[i]);
	atomic_store(&st.vcpus_done, true);
	for (int i = 0; i < 2; i++)
		join_thread(ht[i]);

	mt_assert_guest_verified(st.w, host_read64, &st, &res, &gs);
	assert_true(gs.writes > 0 && atomic_load(&st.log_rounds) > 0);
	assert_int_equal(res.pages_checked, 2 * SLOT_PAGES);
	fprintf(stderr, "# %s%s: %llu accesses (%llu writes), %lu log rounds; host: "
		"migrate %lu swap-out %lu swap-in %lu ksm %lu discard %lu split %lu age %lu\n",
		mode == UKVM_DIRTY_DBIT ? "dirty-bit" : "write-protect",
		manual ? " + manual protect" : "",
		(unsigned long long)gs.accesses, (unsigned long long)gs.writes,
		atomic_load(&st.log_rounds), atomic_load(&st.host_ops[0]),
		atomic_load(&st.host_ops[1]), atomic_load(&st.host_ops[2]),
		atomic_load(&st.host_ops[3]), atomic_load(&st.host_ops[4]),
		atomic_load(&st.host_ops[5]), atomic_load(&st.host_ops[6]));

	ukvm_destroy_vm(st.kvm);
	for (int s = 0; s < 2; s++)
		assert_int_equal(host_munmap(host_current_mm, st.hva[s], SLOT_PAGES << 12), 0);
	guest_workload_destroy(st.w);
	host_mem_get_stats(&ms);
	assert_int_equal(ms.poison_violations, 0);
	assert_nothing_reported();
}

static void test_stress_wrprot(void **state)
{
	(void)state;
	run_stress(UKVM_DIRTY_WRPROT, false);
}

static void test_stress_manual_protect(void **state)
{
	(void)state;
	run_stress(UKVM_DIRTY_WRPROT, true);
}

static void test_stress_dirty_bits(void **state)
{
	(void)state;
	run_stress(UKVM_DIRTY_DBIT, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress_wrprot),
		cmocka_unit_test(test_stress_manual_protect),
		cmocka_unit_test(test_stress_dirty_bits),
	};

	return cmocka_run_group_tests_name("mmu_stress", tests,
					   mt_group_setup, mt_group_teardown);
}
