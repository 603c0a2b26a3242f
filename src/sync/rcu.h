/* SPDX-License-Identifier: MIT */
/*
 * RCU over liburcu (memb flavor), under names that do not collide with
 * liburcu's mapping macros (ukvm_rcu_*), annotated for the validator: a
 * read-side section is a recursive read of the class "rcu_read_lock"
 * (LD_WAIT_CONFIG inside: no sleeping in it), ukvm_synchronize_rcu() is a sync
 * of it.
 *
 * Pointer publication does NOT use liburcu's rcu_assign_pointer(): liburcu
 * 0.13 stores through a volatile access that ThreadSanitizer cannot see as a
 * release.  ukvm_rcu_assign_pointer()/ukvm_rcu_dereference() are C11
 * release/consume atomics, and the RCU list below publishes with them.  Under
 * TSan the grace period is also made visible (readers release, the grace
 * period and call_rcu callbacks acquire).
 *
 * Every thread that reads under RCU must be registered; ukvm_thread_create()
 * does it (sync/thread.h).
 */
#ifndef UKVM_SYNC_RCU_H
#define UKVM_SYNC_RCU_H

#include <stdbool.h>
#include <urcu/call-rcu.h>	/* struct rcu_head only */
#include <urcu/list.h>		/* struct cds_list_head and the plain list ops */

#include "lockdep/lockdep.h"

extern struct lockdep_map rcu_lock_map;

void __ukvm_rcu_read_lock(const struct lockdep_site *site);
void __ukvm_rcu_read_unlock(const struct lockdep_site *site);
void __ukvm_synchronize_rcu(const struct lockdep_site *site);
void ukvm_call_rcu(struct rcu_head *head, void (*func)(struct rcu_head *head));
void __ukvm_rcu_barrier(const struct lockdep_site *site);
void ukvm_rcu_register_thread(void);
void ukvm_rcu_unregister_thread(void);
bool ukvm_rcu_thread_registered(void);

#define ukvm_rcu_read_lock()	 __ukvm_rcu_read_lock(LOCKDEP_SITE)
#define ukvm_rcu_read_unlock()	 __ukvm_rcu_read_unlock(LOCKDEP_SITE)
#define ukvm_synchronize_rcu()	 __ukvm_synchronize_rcu(LOCKDEP_SITE)
#define ukvm_rcu_barrier()	 __ukvm_rcu_barrier(LOCKDEP_SITE)

static inline bool ukvm_rcu_read_lock_held(void)
{
	return lock_is_held_type(&rcu_lock_map, 1) != LOCK_STATE_NOT_HELD;
}

#define ukvm_rcu_assign_pointer(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define ukvm_rcu_dereference_raw(p)   __atomic_load_n(&(p), __ATOMIC_CONSUME)
#define ukvm_rcu_access_pointer(p)    __atomic_load_n(&(p), __ATOMIC_RELAXED)

#if UKVM_LOCKDEP
#define ukvm_rcu_dereference_check(p, c)                                      \
	({                                                                    \
		if (!(ukvm_rcu_read_lock_held() || (c)))                      \
			lockdep_rcu_suspicious("rcu_dereference_check() "     \
				"outside an RCU read-side section",           \
				LOCKDEP_SITE);                                \
		ukvm_rcu_dereference_raw(p);                                  \
	})
#define ukvm_rcu_dereference_protected(p, c)                                  \
	({                                                                    \
		if (!(c))                                                     \
			lockdep_rcu_suspicious("rcu_dereference_protected() " \
				"without the update-side lock", LOCKDEP_SITE); \
		ukvm_rcu_access_pointer(p);                                   \
	})
#else
#define ukvm_rcu_dereference_check(p, c)     ukvm_rcu_dereference_raw(p)
#define ukvm_rcu_dereference_protected(p, c) ukvm_rcu_access_pointer(p)
#endif
#define ukvm_rcu_dereference(p) ukvm_rcu_dereference_check((p), 0)

/*
 * RCU list on liburcu's struct cds_list_head.  Writers serialise with their
 * own lock; readers traverse inside ukvm_rcu_read_lock().
 */
static inline void ukvm_list_add_rcu(struct cds_list_head *newp,
				     struct cds_list_head *head)
{
	struct cds_list_head *next = head->next;

	newp->next = next;
	newp->prev = head;
	next->prev = newp;
	ukvm_rcu_assign_pointer(head->next, newp);
}

static inline void ukvm_list_add_tail_rcu(struct cds_list_head *newp,
					  struct cds_list_head *head)
{
	struct cds_list_head *prev = head->prev;

	newp->next = head;
	newp->prev = prev;
	ukvm_rcu_assign_pointer(prev->next, newp);
	head->prev = newp;
}

/* The entry stays readable (its ->next intact) until a grace period ends. */
static inline void ukvm_list_del_rcu(struct cds_list_head *elem)
{
	elem->next->prev = elem->prev;
	ukvm_rcu_assign_pointer(elem->prev->next, elem->next);
}

#define ukvm_list_for_each_entry_rcu(pos, head, member)                       \
	for (pos = cds_list_entry(ukvm_rcu_dereference_raw((head)->next),     \
				  __typeof__(*(pos)), member);                \
	     &(pos)->member != (head);                                        \
	     pos = cds_list_entry(ukvm_rcu_dereference_raw((pos)->member.next), \
				  __typeof__(*(pos)), member))

#endif /* UKVM_SYNC_RCU_H */
