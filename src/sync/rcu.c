// SPDX-License-Identifier: MIT
/*
 * RCU for ukvm: liburcu's memb flavor behind validator-annotated wrappers.
 * This is the only file that includes <urcu/urcu-memb.h>; it uses the
 * flavored urcu_memb_* names so that nothing depends on liburcu's mapping
 * macros (urcu-memb.h clears them again unless URCU_API_MAP is defined).
 *
 * ThreadSanitizer does not see liburcu's grace period: the library is not
 * instrumented and its reader/writer handshake goes through membarrier().
 * In TSan builds we therefore state the happens-before edges it provides:
 * every read-side unlock releases rcu_tsan_gp, and synchronize_rcu() and
 * every call_rcu() callback acquire it.  That over-approximates (a reader
 * that began after the grace period also appears ordered before it), which
 * can hide a race but never reports a false one.
 */
#include "config.h"

/*
 * Inline liburcu's read side into our wrappers (2 ns instead of a library
 * call through the TLS resolver, ~15 ns).  liburcu allows _LGPL_SOURCE for
 * code under an LGPL-compatible licence, which MIT is; the inlined code must
 * match the installed library's major version, which building against the
 * system headers guarantees.  Not under TSan: the inlined code accesses
 * liburcu's shared words with plain volatile loads and stores, which TSan
 * would report; the library itself is not instrumented.
 */
#if !UKVM_TSAN
#define _LGPL_SOURCE
#endif
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <urcu/urcu-memb.h>

#include "sync/rcu.h"
#include "sync/sync_internal.h"

/* The class every RCU read-side section belongs to. */
DEFINE_LOCKDEP_KEY(rcu_lock_key, "rcu_read_lock", LD_TYPE_RCU);
struct lockdep_map rcu_lock_map =
	STATIC_LOCKDEP_MAP_INIT("rcu_read_lock", &rcu_lock_key,
				LD_WAIT_CONFIG, LD_WAIT_FREE, LD_TYPE_RCU);

/* TSan sync objects: readers -> grace period, callbacks -> rcu_barrier(). */
static char rcu_tsan_gp, rcu_tsan_cb;

static __thread bool rcu_registered;

/*
 * ukvm code embeds struct rcu_head (liburcu's type, from <urcu/call-rcu.h>)
 * and ukvm_call_rcu() hands it to liburcu unchanged: check that it is the
 * two-member layout this file and rcu.h were written against -- a queue
 * node that liburcu links through, then the callback it calls.
 */
_Static_assert(offsetof(struct rcu_head, next) == 0 &&
	       sizeof(((struct rcu_head *)0)->next) == sizeof(struct cds_wfcq_node) &&
	       offsetof(struct rcu_head, func) == sizeof(struct cds_wfcq_node) &&
	       sizeof(struct rcu_head) == sizeof(struct cds_wfcq_node) +
					  sizeof(void (*)(void)),
	       "struct rcu_head is not the layout liburcu 0.13 uses");

void __ukvm_rcu_read_lock(const struct lockdep_site *site)
{
	lock_acquire(&rcu_lock_map, 0, 0, 2, 1, NULL, site);
	urcu_memb_read_lock();
}

void __ukvm_rcu_read_unlock(const struct lockdep_site *site)
{
	/* Everything the section did happens-before the grace period's end. */
	sync_tsan_release(&rcu_tsan_gp);
	urcu_memb_read_unlock();
	lock_release(&rcu_lock_map, site);
}

void __ukvm_synchronize_rcu(const struct lockdep_site *site)
{
	lockdep_might_sleep(site);
	/* An empty write-side section of "rcu_read_lock": sync inside a reader deadlocks. */
	lock_sync(&rcu_lock_map, 0, 0, 1, NULL, site);
	urcu_memb_synchronize_rcu();
	/* Pairs with the release in every reader's unlock. */
	sync_tsan_acquire(&rcu_tsan_gp);
}

#if UKVM_TSAN
/*
 * TSan builds only: liburcu calls back with the rcu_head, which has no room
 * for the caller's function, so a small wrapper carries it.  liburcu's
 * queue hand-off is invisible too, so call_rcu() releases everything before
 * it (the wrapper included) and the callback acquires that, together with
 * the readers' releases, before touching anything; it releases its own
 * effects to rcu_barrier() last.
 */
struct rcu_tsan_cb {
	struct rcu_head head;		/* what liburcu sees */
	struct rcu_head *user;
	void (*func)(struct rcu_head *head);
};

static void rcu_tsan_trampoline(struct rcu_head *head)
{
	struct rcu_tsan_cb *cb;
	struct rcu_head *user;
	void (*func)(struct rcu_head *);

	sync_tsan_acquire(&rcu_tsan_gp);
	cb = (struct rcu_tsan_cb *)((char *)head -
				    offsetof(struct rcu_tsan_cb, head));
	user = cb->user;
	func = cb->func;
	free(cb);
	func(user);
	sync_tsan_release(&rcu_tsan_cb);
}

void ukvm_call_rcu(struct rcu_head *head, void (*func)(struct rcu_head *head))
{
	struct rcu_tsan_cb *cb = malloc(sizeof(*cb));

	if (!cb) {
		fprintf(stderr, "ukvm: out of memory in ukvm_call_rcu()\n");
		abort();
	}
	cb->user = head;
	cb->func = func;
	sync_tsan_release(&rcu_tsan_gp);
	urcu_memb_call_rcu(&cb->head, rcu_tsan_trampoline);
}

/*
 * liburcu itself is not instrumented: memory it allocates in one thread and
 * frees in its call_rcu thread (rcu_barrier()'s completion, for one) looks
 * racy to TSan.  Ignore what happens inside the library; the happens-before
 * edges it provides to ukvm are stated explicitly above.
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "called_from_lib:liburcu-memb.so\n"
	       "called_from_lib:liburcu-common.so\n";
}
#else
void ukvm_call_rcu(struct rcu_head *head, void (*func)(struct rcu_head *head))
{
	urcu_memb_call_rcu(head, func);
}
#endif

void __ukvm_rcu_barrier(const struct lockdep_site *site)
{
	lockdep_might_sleep(site);
	/* Waits for callbacks that wait for a grace period: a sync as well. */
	lock_sync(&rcu_lock_map, 0, 0, 1, NULL, site);
	urcu_memb_barrier();
	/* Pairs with the release at the end of every callback. */
	sync_tsan_acquire(&rcu_tsan_cb);
}

/* Idempotent: a thread registered twice would corrupt liburcu's registry. */
void ukvm_rcu_register_thread(void)
{
	if (rcu_registered)
		return;
	urcu_memb_register_thread();
	rcu_registered = true;
}

void ukvm_rcu_unregister_thread(void)
{
	if (!rcu_registered)
		return;
	urcu_memb_unregister_thread();
	rcu_registered = false;
}

bool ukvm_rcu_thread_registered(void)
{
	return rcu_registered;
}
