/* SPDX-License-Identifier: MIT */
/*
 * Threads of ukvm (vCPUs, VMM, host, control threads): created through
 * ukvm_thread_create() so that each is registered with liburcu, named for the
 * validator's reports, and checked for locks still held when it exits.
 */
#ifndef UKVM_SYNC_THREAD_H
#define UKVM_SYNC_THREAD_H

#include <pthread.h>

/* Returns 0 or a negative errno (pthread_create()'s error, negated). */
int ukvm_thread_create(pthread_t *thread, const char *name,
		       void *(*fn)(void *arg), void *arg);
/* For threads not created by ukvm_thread_create() (main, test threads). */
void ukvm_thread_register_current(const char *name);
void ukvm_thread_unregister_current(void);

#endif /* UKVM_SYNC_THREAD_H */
