// SPDX-License-Identifier: MIT
/*
 * The lock class keys compiled into this binary.
 *
 * LOCKDEP_STATIC_KEY()/DEFINE_LOCKDEP_KEY() put every key into the
 * "ukvm_lockdep_keys" section; the linker brackets a section whose name is
 * a C identifier with __start_/__stop_ symbols.  They are weak here: a
 * binary with no key at all has no such section, and then both are NULL.
 * Only the keys of objects linked into the binary are seen, which is why
 * the ukvm command and the tests link the whole library.
 */
#include "lockdep/lockdep.h"

extern struct lock_class_key __start_ukvm_lockdep_keys[] __attribute__((weak));
extern struct lock_class_key __stop_ukvm_lockdep_keys[] __attribute__((weak));

void lockdep_for_each_static_key(lockdep_key_fn fn, void *arg)
{
	struct lock_class_key *k = __start_ukvm_lockdep_keys;
	struct lock_class_key *end = __stop_ukvm_lockdep_keys;

	if (!k || !end)
		return;
	for (; k < end; k++)
		fn(k, arg);
}
