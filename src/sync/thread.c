// SPDX-License-Identifier: MIT
/*
 * ukvm threads: every thread that takes ukvm locks or reads under RCU is
 * registered with liburcu and named for the validator's reports.  Threads
 * made by ukvm_thread_create() do it in a trampoline; the main thread and
 * test threads call ukvm_thread_register_current() themselves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/rcu.h"
#include "sync/thread.h"

#define UKVM_THREAD_NAME_MAX 32

/* The validator may keep the name pointer: give it storage of the thread. */
static __thread char task_name[UKVM_THREAD_NAME_MAX];

struct ukvm_thread_start {
	void *(*fn)(void *arg);
	void *arg;
	char name[UKVM_THREAD_NAME_MAX];
};

void ukvm_thread_register_current(const char *name)
{
	char comm[16];	/* the kernel-visible name: 15 characters */

	snprintf(task_name, sizeof(task_name), "%s", name ? name : "?");
	memcpy(comm, task_name, sizeof(comm) - 1);
	comm[sizeof(comm) - 1] = '\0';
	pthread_setname_np(pthread_self(), comm);
	lockdep_set_task_name(task_name);
	ukvm_rcu_register_thread();
}

void ukvm_thread_unregister_current(void)
{
	ukvm_rcu_unregister_thread();
}

static void *ukvm_thread_trampoline(void *p)
{
	struct ukvm_thread_start start = *(struct ukvm_thread_start *)p;
	void *ret;

	free(p);
	ukvm_thread_register_current(start.name);
	ret = start.fn(start.arg);
	ukvm_thread_unregister_current();
	return ret;
}

int ukvm_thread_create(pthread_t *thread, const char *name,
		       void *(*fn)(void *arg), void *arg)
{
	struct ukvm_thread_start *start = malloc(sizeof(*start));
	int r;

	if (!start)
		return -ENOMEM;
	start->fn = fn;
	start->arg = arg;
	snprintf(start->name, sizeof(start->name), "%s", name ? name : "?");
	r = pthread_create(thread, NULL, ukvm_thread_trampoline, start);
	if (r) {
		free(start);
		return -r;
	}
	return 0;
}
