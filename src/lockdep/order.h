/* SPDX-License-Identifier: MIT */
/*
 * The documented lock order (src/lockdep/lock-order.txt), WITNESS / Go
 * lockrank style: a machine-readable transcription of locking.rst that the
 * validator checks every observed dependency against, and that
 * `ukvm locks` prints as a table or a Graphviz picture.
 *
 * This part does not depend on the run-time validator: it is compiled even
 * when UKVM_LOCKDEP is off, so `ukvm locks --order/--dot/--check` work in
 * every build.  All functions are thread-safe (one internal mutex).
 */
#ifndef UKVM_LOCKDEP_ORDER_H
#define UKVM_LOCKDEP_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* How a lock is held or taken in a rule; values 0-2 are lock_acquire()'s read. */
enum lock_order_mode {
	LOM_EXCL = 0,		/* NAME       */
	LOM_READ = 1,		/* NAME:r     */
	LOM_RREAD = 2,		/* NAME:R     */
	LOM_SYNC = 3,		/* NAME:sync  */
};

/* What the documented order says about an observed dependency A -> B. */
enum lock_order_verdict {
	LOV_DOCUMENTED,		/* a chain of rules leads from A to B */
	LOV_UNDOCUMENTED,	/* neither allowed nor contradicted */
	LOV_VIOLATION,		/* A is a leaf, or B -> ... -> A closes a cycle */
	LOV_UNKNOWN,		/* A or B is not a declared class (or no order) */
};

/* Load the built-in text (compiled from lock-order.txt) if nothing is loaded. */
int lockdep_order_load_builtin(void);

/*
 * Replace the loaded order.  @origin names the text in messages (a file
 * name); @variant is "current" or "legacy" (NULL: "current").  On a parse
 * error nothing changes, -EINVAL is returned and @errbuf receives one line
 * per problem, "origin:line: what".
 */
int lockdep_order_load_text(const char *text, const char *origin,
			    const char *variant, char *errbuf, size_t len);
int lockdep_order_load_file(const char *path, const char *variant,
			    char *errbuf, size_t len);
/* Re-derive the loaded text for another variant; -EINVAL if unknown. */
int lockdep_order_set_variant(const char *variant);
const char *lockdep_order_variant(void);
const char *lockdep_order_origin(void);

/*
 * Bumped by every successful load: classes registered under an older
 * generation are checked again.  0 means no order could be loaded.
 */
unsigned int lockdep_order_generation(void);

bool lockdep_order_has_class(const char *name);
int lockdep_order_nr_classes(void);
int lockdep_order_nr_rules(void);	/* active in the current variant */
/* True if one rule (not a chain) states OUTER:omode => INNER:imode. */
bool lockdep_order_has_rule(const char *outer, int omode,
			    const char *inner, int imode);
bool lockdep_order_is_leaf(const char *name);

/* @amode/@bmode: enum lock_order_mode. */
enum lock_order_verdict lockdep_order_classify(const char *a, int amode,
					       const char *b, int bmode);
/*
 * Print why A -> B is a violation: the rule chain B => ... => A that it
 * closes into a cycle (one line per rule, with its line and src=), or the
 * leaf declaration of A.  Each line starts with @indent.
 */
void lockdep_order_explain(FILE *f, const char *a, int amode, const char *b,
			   int bmode, const char *indent);
/* Print the rule chain A => ... => B that documents A -> B. */
void lockdep_order_print_chain(FILE *f, const char *a, const char *b,
			       const char *indent);

/*
 * Consistency: no strong cycle among the rules, every rule names declared
 * classes, leaf declarations and modes agree with the rules and types, and
 * (if @keys) every lock class key compiled into this binary names a declared
 * class of the declared type.  Prints each problem to @f; returns how many.
 */
int lockdep_order_check(FILE *f, bool keys);

/* `ukvm locks --order`: classes by section, then the rules. */
void lockdep_order_print_table(FILE *f);
/* `ukvm locks --dot`: classes as nodes (clusters per scope), rules as edges. */
void lockdep_order_write_dot(FILE *f);

/* Iterate the active rules (one call per outer x inner pair of a statement). */
struct lock_order_rule_info {
	const char *outer, *inner;
	int omode, imode;		/* enum lock_order_mode */
	const char *src, *note;
	int line;
};
typedef void (*lock_order_rule_fn)(const struct lock_order_rule_info *r,
				   void *arg);
void lockdep_order_for_each_rule(lock_order_rule_fn fn, void *arg);

const char *lockdep_order_mode_suffix(int mode);	/* "", ":r", ":R", ":sync" */
const char *lockdep_lock_type_name(int type);		/* "mutex", ... */

/* The built-in text (generated from lock-order.txt by scripts/embed.c). */
extern const char ukvm_lock_order_text[];
extern const unsigned long ukvm_lock_order_text_len;

#endif /* UKVM_LOCKDEP_ORDER_H */
