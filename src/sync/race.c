// SPDX-License-Identifier: MIT
/* Race points and unsafe knobs (see race.h). */
#include <stddef.h>

#include "sync/race.h"

#define __RP_NAME(n, d) #n,
#define __RP_DESC(n, d) d,
const char *const ukvm_race_point_names[RP_NR] = { UKVM_RACE_POINT_LIST(__RP_NAME) };
const char *const ukvm_race_point_descs[RP_NR] = { UKVM_RACE_POINT_LIST(__RP_DESC) };
const char *const ukvm_unsafe_knob_names[UNSAFE_NR] = { UKVM_UNSAFE_KNOB_LIST(__RP_NAME) };
const char *const ukvm_unsafe_knob_descs[UNSAFE_NR] = { UKVM_UNSAFE_KNOB_LIST(__RP_DESC) };

#if UKVM_RACE_POINTS
_Atomic int ukvm_race_armed;
_Atomic unsigned int ukvm_unsafe_mask;

static ukvm_race_handler_fn _Atomic race_handler;
static void *_Atomic race_handler_arg;

void ukvm_race_point_hit(enum ukvm_race_point rp)
{
	ukvm_race_handler_fn fn = atomic_load_explicit(&race_handler,
						       memory_order_acquire);

	if (fn)
		fn(rp, atomic_load_explicit(&race_handler_arg, memory_order_relaxed));
}

void ukvm_race_arm(ukvm_race_handler_fn fn, void *arg)
{
	atomic_store_explicit(&race_handler_arg, arg, memory_order_relaxed);
	atomic_store_explicit(&race_handler, fn, memory_order_release);
	atomic_store_explicit(&ukvm_race_armed, 1, memory_order_release);
}

void ukvm_race_disarm(void)
{
	atomic_store_explicit(&ukvm_race_armed, 0, memory_order_release);
	atomic_store_explicit(&race_handler, NULL, memory_order_release);
}

void ukvm_unsafe_set(enum ukvm_unsafe_knob k, bool on)
{
	if (on)
		atomic_fetch_or(&ukvm_unsafe_mask, 1u << k);
	else
		atomic_fetch_and(&ukvm_unsafe_mask, ~(1u << k));
}

void ukvm_unsafe_clear_all(void)
{
	atomic_store(&ukvm_unsafe_mask, 0);
}
#else
void ukvm_race_arm(ukvm_race_handler_fn fn, void *arg) { (void)fn; (void)arg; }
void ukvm_race_disarm(void) { }
void ukvm_unsafe_set(enum ukvm_unsafe_knob k, bool on) { (void)k; (void)on; }
void ukvm_unsafe_clear_all(void) { }
#endif
