/* SPDX-License-Identifier: MIT */
/* SRCU internals shared by srcu.c (grace periods) and srcu_shard.c (shards). */
#ifndef UKVM_SYNC_SRCU_INTERNAL_H
#define UKVM_SYNC_SRCU_INTERNAL_H

#include <stdbool.h>

/* Once per process: decide whether readers may own shards (membarrier()). */
void srcu_global_init(void);

/*
 * Barrier "A" of the grace period: a full memory barrier in this thread and
 * in every thread of the process that may be inside a read section.
 */
void srcu_mb_readers(void);

/* Shards a grace period must scan: those ever handed out (a prefix). */
unsigned int srcu_nr_scanned_shards(void);

#endif /* UKVM_SYNC_SRCU_INTERNAL_H */
