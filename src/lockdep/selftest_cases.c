// SPDX-License-Identifier: MIT
/*
 * Self-test cases, part 1: the dependency graph.  Cycles of two to four
 * classes, read/write and recursive-read semantics (the strong-path rule),
 * SRCU modelled as recursive readers plus syncs, trylocks, nest_lock and
 * subclasses.  Each "tN" thread runs to completion before the next starts.
 */
#include <string.h>

#include "lockdep/selftest_internal.h"

ST_KEY(kA, "A", LD_TYPE_MUTEX);
ST_KEY(kB, "B", LD_TYPE_MUTEX);
ST_KEY(kC, "C", LD_TYPE_MUTEX);
ST_KEY(kD, "D", LD_TYPE_MUTEX);
ST_KEY(kM, "M", LD_TYPE_MUTEX);
ST_KEY(kX, "X", LD_TYPE_RWSEM);
ST_KEY(kS1, "S1", LD_TYPE_SRCU);
ST_KEY(kS2, "S2", LD_TYPE_SRCU);
ST_KEY(kslots, "&kvm->slots_lock", LD_TYPE_MUTEX);
ST_KEY(karch, "&kvm->slots_arch_lock", LD_TYPE_MUTEX);
ST_KEY(ksrcu, "&kvm->srcu", LD_TYPE_SRCU);
ST_KEY(kP, "&kvm->lock", LD_TYPE_MUTEX);
ST_KEY(kV, "&vcpu->mutex", LD_TYPE_MUTEX);

static struct lockdep_map A, B, C, D, M, X, S1, S2, slots, arch, srcu, P, V1, V2;

static void st_init_maps(void)
{
	st_map(&A, &kA);
	st_map(&B, &kB);
	st_map(&C, &kC);
	st_map(&D, &kD);
	st_map(&M, &kM);
	st_map(&X, &kX);
	st_map(&S1, &kS1);
	st_map(&S2, &kS2);
	st_map(&slots, &kslots);
	st_map(&arch, &karch);
	st_map(&srcu, &ksrcu);
	st_map(&P, &kP);
	st_map(&V1, &kV);
	st_map(&V2, &kV);
}

/* Take @a then @b (modes 'w', 'r', 'R', 't' trylock, 's' sync), release. */
struct st_pair {
	struct lockdep_map *a, *b;
	char ma, mb;
};

static void st_take(struct lockdep_map *m, char mode)
{
	switch (mode) {
	case 'r': st_rlock(m); break;
	case 'R': st_Rlock(m); break;
	case 't': st_trylock(m); break;
	case 's': st_sync(m); break;
	default: st_lock(m); break;
	}
}

static void st_pair_fn(void *arg)
{
	struct st_pair *p = arg;

	st_take(p->a, p->ma);
	st_take(p->b, p->mb);
	if (p->mb != 's')
		st_unlock(p->b);
	st_unlock(p->a);
}

static void st_pair(const char *thread, struct lockdep_map *a, char ma,
		    struct lockdep_map *b, char mb)
{
	struct st_pair p = { a, b, ma, mb };

	st_thread(thread, st_pair_fn, &p);
}

static bool case_AA(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_lock(&A);
	st_lock(&A);
	st_unlock(&A);
	st_unlock(&A);
	return true;
}

static bool case_ABBA(struct st_ctx *ctx)
{
	st_init_maps();
	st_pair("t0", &A, 'w', &B, 'w');
	st_pair("t1", &B, 'w', &A, 'w');
	if (strstr(st_text(ctx), "Chain exists of"))
		return st_fail(ctx, "a two-class cycle printed a chain");
	return true;
}

static bool case_ABBCCA(struct st_ctx *ctx)
{
	st_init_maps();
	st_pair("t0", &A, 'w', &B, 'w');
	st_pair("t1", &B, 'w', &C, 'w');
	st_pair("t2", &C, 'w', &A, 'w');
	if (!strstr(st_text(ctx), "Chain exists of:\n  A --> B --> C"))
		return st_fail(ctx, "no 'Chain exists of: A --> B --> C'");
	return true;
}

/* A -> B -> C -> D and a shortcut B -> D: D -> A must report A B D only. */
static bool case_ABBCCDDA(struct st_ctx *ctx)
{
	const char *t;

	st_init_maps();
	st_pair("t0", &A, 'w', &B, 'w');
	st_pair("t1", &B, 'w', &C, 'w');
	st_pair("t2", &C, 'w', &D, 'w');
	st_pair("t3", &B, 'w', &D, 'w');
	st_pair("t4", &D, 'w', &A, 'w');
	t = st_text(ctx);
	if (!strstr(t, "Chain exists of:\n  A --> B --> D"))
		return st_fail(ctx, "the shortest cycle A->B->D->A was not reported");
	if (strstr(t, "-> #3"))
		return st_fail(ctx, "reported a longer cycle than the shortest");
	return true;
}

static bool case_RR_recursive(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_pair("t0", &S1, 'R', &S2, 'R');
	st_pair("t1", &S2, 'R', &S1, 'R');
	return true;
}

/* Fair rwsem: t1's reader waits behind a writer queued after t0's reader. */
static bool case_rwsem_fair(struct st_ctx *ctx)
{
	st_init_maps();
	st_pair("t0", &X, 'r', &M, 'w');
	st_pair("t1", &M, 'w', &X, 'r');
	if (!strstr(st_text(ctx), "rlock(X)"))
		return st_fail(ctx, "scenario does not show rlock(X)");
	return true;
}

static bool case_rwsem_rr_same(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_rlock(&X);
	st_rlock(&X);
	st_unlock(&X);
	st_unlock(&X);
	return true;
}

static bool case_srcu_sync_in_reader(struct st_ctx *ctx)
{
	st_init_maps();
	st_Rlock(&srcu);
	st_sync(&srcu);
	st_unlock(&srcu);
	if (!strstr(st_text(ctx), "sync(&kvm->srcu)"))
		return st_fail(ctx, "scenario does not show sync(&kvm->srcu)");
	return true;
}

/* locking.rst: synchronize_srcu() under slots_lock, so no slots_lock in a reader. */
static bool case_srcu_sync_under_lock(struct st_ctx *ctx)
{
	const char *t;

	st_init_maps();
	st_pair("memslots", &slots, 'w', &srcu, 's');
	st_pair("vcpu0", &srcu, 'R', &slots, 'w');
	t = st_text(ctx);
	if (!strstr(t, "sync(&kvm->srcu)") || !strstr(t, "rlock(&kvm->srcu)"))
		return st_fail(ctx, "scenario lacks sync(/rlock( of &kvm->srcu");
	return true;
}

static void arch_reader(void *arg)
{
	(void)arg;
	st_Rlock(&srcu);
	st_lock(&arch);
	st_unlock(&arch);
	st_unlock(&srcu);
}

static void arch_writer(void *arg)
{
	(void)arg;
	st_lock(&slots);
	st_lock(&arch);
	st_unlock(&arch);
	st_sync(&srcu);
	st_unlock(&slots);
}

static bool case_slots_arch_lock(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_thread("vcpu0", arch_reader, NULL);
	st_thread("memslots", arch_writer, NULL);
	return true;
}

static bool case_srcu_domains(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_pair("t0", &S1, 'R', &S2, 's');
	st_pair("t1", &S2, 'R', &S1, 'R');
	return true;
}

static bool case_trylock_no_edge(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_pair("t0", &A, 'w', &B, 't');
	st_pair("t1", &B, 'w', &A, 'w');
	return true;
}

static bool case_trylock_then_block(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_pair("t0", &A, 't', &B, 'w');
	st_pair("t1", &B, 'w', &A, 'w');
	return true;
}

static bool case_nest_lock(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_lock(&P);
	st_lock_nest(&V1, &P);
	st_lock_nest(&V2, &P);
	st_unlock(&V2);
	st_unlock(&V1);
	st_unlock(&P);
	return true;
}

static bool case_nest_not_held(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_lock_nest(&V1, &P);
	st_unlock(&V1);
	return true;
}

static bool case_subclass(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_lock(&V1);
	st_lock_nested(&V2, 1);
	st_unlock(&V2);
	st_unlock(&V1);
	return true;
}

static bool case_same_class(struct st_ctx *ctx)
{
	st_init_maps();
	st_lock(&V1);
	st_lock(&V2);
	st_unlock(&V2);
	st_unlock(&V1);
	if (!strstr(st_text(ctx), "missing lock nesting notation"))
		return st_fail(ctx, "no nesting-notation hint");
	return true;
}

/* A recursive reader nests in itself even with a lock between. */
static bool case_srcu_reenter(struct st_ctx *ctx)
{
	(void)ctx;
	st_init_maps();
	st_Rlock(&S1);
	st_lock(&M);
	st_Rlock(&S1);
	st_unlock(&S1);
	st_unlock(&M);
	st_unlock(&S1);
	return true;
}

const struct st_case st_cases_basic[] = {
	{ "AA", ST_KIND(LDR_RECURSIVE), NULL, case_AA },
	{ "ABBA", ST_KIND(LDR_CIRCULAR), NULL, case_ABBA },
	{ "ABBCCA", ST_KIND(LDR_CIRCULAR), NULL, case_ABBCCA },
	{ "ABBCCDDA-shortest", ST_KIND(LDR_CIRCULAR), NULL, case_ABBCCDDA },
	{ "recursive-read-ABBA", ST_NONE, NULL, case_RR_recursive },
	{ "rwsem-fair-reader-ABBA", ST_KIND(LDR_CIRCULAR), NULL, case_rwsem_fair },
	{ "rwsem-read-read-same", ST_KIND(LDR_RECURSIVE), NULL, case_rwsem_rr_same },
	{ "srcu-sync-in-own-reader", ST_KIND(LDR_RECURSIVE), NULL, case_srcu_sync_in_reader },
	{ "srcu-sync-under-slots_lock", ST_KIND(LDR_CIRCULAR), NULL, case_srcu_sync_under_lock },
	{ "srcu-slots_arch_lock-in-reader", ST_NONE, NULL, case_slots_arch_lock },
	{ "srcu-two-domains-nest", ST_NONE, NULL, case_srcu_domains },
	{ "srcu-reader-reentered", ST_NONE, NULL, case_srcu_reenter },
	{ "trylock-adds-no-edge", ST_NONE, NULL, case_trylock_no_edge },
	{ "blocking-after-trylock", ST_KIND(LDR_CIRCULAR), NULL, case_trylock_then_block },
	{ "nest_lock", ST_NONE, NULL, case_nest_lock },
	{ "nest_lock-not-held", ST_KIND(LDR_NEST_NOT_HELD), NULL, case_nest_not_held },
	{ "subclass", ST_NONE, NULL, case_subclass },
	{ "same-class-no-subclass", ST_KIND(LDR_RECURSIVE), NULL, case_same_class },
};
const int st_nr_cases_basic = sizeof(st_cases_basic) / sizeof(st_cases_basic[0]);
