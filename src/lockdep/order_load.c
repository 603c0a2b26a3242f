// SPDX-License-Identifier: MIT
/*
 * The loaded documented order: which text, which variant, and its
 * generation number.  The built-in text is parsed the first time anything
 * asks for the order; a new text replaces it only if it parses.  All of it
 * is under order_mutex, which nests inside the validator's graph mutex.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockdep/order_internal.h"

pthread_mutex_t order_mutex = PTHREAD_MUTEX_INITIALIZER;
struct lock_order *lo_cur;
static unsigned int lo_generation;
static bool lo_builtin_failed;

static bool lo_variant_ok(const char *variant)
{
	return !strcmp(variant, "current") || !strcmp(variant, "legacy");
}

int lockdep_order_load_text(const char *text, const char *origin,
			    const char *variant, char *errbuf, size_t len)
{
	struct lock_order *o, *old;

	if (!variant)
		variant = "current";
	if (!origin)
		origin = "<text>";
	if (!lo_variant_ok(variant)) {
		if (errbuf && len)
			snprintf(errbuf, len, "unknown variant '%s' (current or legacy)\n",
				 variant);
		return -EINVAL;
	}
	o = lo_parse(text, origin, variant, errbuf, len);
	if (!o)
		return -EINVAL;
	pthread_mutex_lock(&order_mutex);
	old = lo_cur;
	lo_cur = o;
	lo_generation++;
	pthread_mutex_unlock(&order_mutex);
	lo_free(old);
	return 0;
}

int lockdep_order_load_file(const char *path, const char *variant,
			    char *errbuf, size_t len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t size = 0;
	FILE *mem;
	int c, ret;

	if (!f) {
		if (errbuf && len)
			snprintf(errbuf, len, "%s: %s\n", path, strerror(errno));
		return -errno;
	}
	mem = open_memstream(&buf, &size);
	if (!mem)
		abort();
	while ((c = fgetc(f)) != EOF)
		fputc(c, mem);
	fclose(f);
	fclose(mem);
	ret = lockdep_order_load_text(buf, path, variant, errbuf, len);
	free(buf);
	return ret;
}

/* Under order_mutex: the built-in text, the first time an order is needed. */
void lo_ensure_loaded(void)
{
	char err[2048];
	struct lock_order *o;

	if (lo_cur || lo_builtin_failed)
		return;
	o = lo_parse(ukvm_lock_order_text, "src/lockdep/lock-order.txt",
		     "current", err, sizeof(err));
	if (!o) {
		lo_builtin_failed = true;
		fprintf(stderr, "ukvm lockdep: the built-in lock order does not parse, "
			"order checking is off:\n%s", err);
		return;
	}
	lo_cur = o;
	lo_generation++;
}

int lockdep_order_load_builtin(void)
{
	int ret;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	ret = lo_cur ? 0 : -EINVAL;
	pthread_mutex_unlock(&order_mutex);
	return ret;
}

int lockdep_order_set_variant(const char *variant)
{
	char *text, *origin;
	int ret;

	if (!variant || !lo_variant_ok(variant))
		return -EINVAL;
	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	if (!lo_cur) {
		pthread_mutex_unlock(&order_mutex);
		return -EINVAL;
	}
	text = strdup(lo_cur->text);
	origin = strdup(lo_cur->origin);
	pthread_mutex_unlock(&order_mutex);
	ret = lockdep_order_load_text(text, origin, variant, NULL, 0);
	free(text);
	free(origin);
	return ret;
}

const char *lockdep_order_variant(void)
{
	const char *v;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	v = !lo_cur ? "none" : lo_cur->variant[0] == 'l' ? "legacy" : "current";
	pthread_mutex_unlock(&order_mutex);
	return v;
}

/*
 * Reports print the origin while another thread may load a new order, so
 * the string handed out must outlive the order it came from: every origin
 * ever loaded is kept (there are few, and they stay reachable).
 */
struct lo_origin {
	struct lo_origin *next;
	char name[];
};
static struct lo_origin *lo_origins;

static const char *lo_intern(const char *name)
{
	struct lo_origin *o;

	for (o = lo_origins; o; o = o->next)
		if (!strcmp(o->name, name))
			return o->name;
	o = malloc(sizeof(*o) + strlen(name) + 1);
	if (!o)
		abort();
	strcpy(o->name, name);
	o->next = lo_origins;
	lo_origins = o;
	return o->name;
}

const char *lockdep_order_origin(void)
{
	const char *v;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	v = lo_cur ? lo_intern(lo_cur->origin) : "none";
	pthread_mutex_unlock(&order_mutex);
	return v;
}

unsigned int lockdep_order_generation(void)
{
	unsigned int g;

	pthread_mutex_lock(&order_mutex);
	lo_ensure_loaded();
	g = lo_cur ? lo_generation : 0;
	pthread_mutex_unlock(&order_mutex);
	return g;
}
