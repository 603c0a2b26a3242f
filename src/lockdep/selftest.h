/* SPDX-License-Identifier: MIT */
/*
 * The validator's self-test (`ukvm locks --selftest`): a table of scenarios
 * driven through bare lockdep_maps (no real lock is ever taken, so nothing
 * can hang), each with the report it must produce.
 */
#ifndef UKVM_LOCKDEP_SELFTEST_H
#define UKVM_LOCKDEP_SELFTEST_H

#include <stdbool.h>
#include <stdio.h>

/*
 * Run every case whose name contains @filter (NULL: all), one line each to
 * @out ("NAME expect=X got=Y ok"), or TAP lines if @tap; @verbose adds each
 * case's captured report text.  Returns the number of failed cases.
 * Leaves the validator reset, reporting to stderr, with the built-in order.
 */
int lockdep_selftest(FILE *out, bool tap, bool verbose, const char *filter);
int lockdep_selftest_nr_cases(void);

#endif /* UKVM_LOCKDEP_SELFTEST_H */
