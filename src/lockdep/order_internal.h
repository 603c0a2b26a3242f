/* SPDX-License-Identifier: MIT */
/* Private to the documented-order files (order*.c). */
#ifndef UKVM_LOCKDEP_ORDER_INTERNAL_H
#define UKVM_LOCKDEP_ORDER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lockdep/order.h"

enum lo_when { LO_WHEN_BOTH, LO_WHEN_LEGACY, LO_WHEN_CURRENT };

struct lo_class {
	char *name;
	int type;		/* enum lockdep_lock_type, -1 if undeclared */
	bool leaf_attr;		/* "leaf" written in the class statement */
	char *scope, *doc, *protects, *src;
	int section;		/* index in sections[], -1 before any */
	int line;		/* declaring line, or first use if undeclared */
};

/* One outer x inner pair of an order statement. */
struct lo_rule {
	int outer, inner;	/* class indices */
	uint8_t omode, imode;	/* enum lock_order_mode */
	uint8_t when;		/* enum lo_when */
	bool active;		/* in the loaded variant */
	char *src, *note;
	int line;
};

/* Everything the rules say about one ordered pair of classes. */
struct lo_pair {
	uint8_t dep;		/* DEP_* bits of the active rules */
	bool chainable;		/* some rule's inner mode is not :sync */
	int rule;		/* first active rule, -1 if none */
};

struct lock_order {
	char *origin;
	char *text;			/* kept to re-derive other variants */
	char variant[16];
	struct lo_class *classes;
	int nr_classes;
	struct lo_rule *rules;
	int nr_rules;
	char **sections;
	int nr_sections;
	/* Derived for the variant. */
	struct lo_pair *pair;		/* [outer * nr_classes + inner] */
	uint8_t *reach;			/* documented closure, same indexing */
	bool *has_out;			/* some active rule out of the class */
	int *hash;			/* name -> index + 1, open addressing */
	int hash_size;
};

extern pthread_mutex_t order_mutex;
extern struct lock_order *lo_cur;	/* under order_mutex */

/* order.c */
struct lock_order *lo_parse(const char *text, const char *origin,
			    const char *variant, char *errbuf, size_t len);
void lo_free(struct lock_order *o);
int lo_find(const struct lock_order *o, const char *name);
const char *lo_type_name(int type);

/* order_load.c */
void lo_ensure_loaded(void);		/* under order_mutex */

/* order_graph.c */
int lo_derive(struct lock_order *o);
/* BFS over the rules: shortest strong path from @from to @to; path = rules. */
int lo_strong_path(const struct lock_order *o, int from, int from_mode,
		   int to, int to_mode, int *path, int max);
int lo_chain_path(const struct lock_order *o, int from, int to, int *path,
		  int max);
void lo_print_rule(FILE *f, const struct lock_order *o, int rule,
		   const char *indent);

#endif /* UKVM_LOCKDEP_ORDER_INTERNAL_H */
