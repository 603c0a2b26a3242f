// SPDX-License-Identifier: MIT
/*
 * The documented lock order: parser of the lock-order.txt language and the
 * loaded-order state.  The syntax is described at the top of lock-order.txt;
 * this file turns the text into classes and rules (order_internal.h), and
 * order_graph.c derives the graph the checks use.
 *
 * Parsing collects every problem it finds (one "origin:line: what" line
 * each) rather than stopping at the first, so a broken edit is fixed in one
 * round.  A text with errors is never installed (order_load.c).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lockdep/lockdep.h"
#include "lockdep/order_internal.h"

static const char *const type_names[LD_TYPE_NR] = {
	[LD_TYPE_MUTEX] = "mutex",
	[LD_TYPE_SPINLOCK] = "spinlock",
	[LD_TYPE_RAW_SPINLOCK] = "raw_spinlock",
	[LD_TYPE_RWLOCK] = "rwlock",
	[LD_TYPE_RWSEM] = "rwsem",
	[LD_TYPE_SRCU] = "srcu",
	[LD_TYPE_RCU] = "rcu",
	[LD_TYPE_MAP] = "map",
};

static const char *const scopes[] = { "global", "vm", "vcpu", "percpu", "mm" };

const char *lo_type_name(int type)
{
	return type >= 0 && type < LD_TYPE_NR ? type_names[type] : "undeclared";
}

const char *lockdep_lock_type_name(int type)
{
	return lo_type_name(type);
}

const char *lockdep_order_mode_suffix(int mode)
{
	static const char *const sfx[] = { "", ":r", ":R", ":sync" };

	return mode >= 0 && mode <= LOM_SYNC ? sfx[mode] : ":?";
}

/* Parser state: the text being read and the problems found so far. */
struct lo_parser {
	struct lock_order *o;
	const char *origin;
	int line;
	int errors;
	char *err;
	size_t errlen, errused;
};

__attribute__((format(printf, 2, 3)))
static void perr(struct lo_parser *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	p->errors++;
	if (!p->err || p->errused + 1 >= p->errlen)
		return;
	n = snprintf(p->err + p->errused, p->errlen - p->errused, "%s:%d: ",
		     p->origin, p->line);
	if (n > 0)
		p->errused = strnlen(p->err, p->errlen);
	va_start(ap, fmt);
	vsnprintf(p->err + p->errused, p->errlen - p->errused, fmt, ap);
	va_end(ap);
	p->errused = strnlen(p->err, p->errlen);
	if (p->errused + 1 < p->errlen) {
		p->err[p->errused++] = '\n';
		p->err[p->errused] = '\0';
	}
}

/*
 * Tokens of one statement: words, "," and "=>".  A word may contain a
 * quoted part (key="a value"), which keeps its spaces and may not contain
 * a quote itself.  Tokens are copied, NUL-terminated, into @buf.
 */
#define LO_MAX_TOKENS 128
struct lo_tokens {
	int n;
	char *tok[LO_MAX_TOKENS];
	char buf[4096];
};

static bool lo_is_sep(const char *s)
{
	return *s == ',' || (s[0] == '=' && s[1] == '>');
}

static bool lo_tokenize(struct lo_parser *p, const char *s, struct lo_tokens *t)
{
	char *out = t->buf, *end = t->buf + sizeof(t->buf) - 3;

	t->n = 0;
	while (*s) {
		if (isspace((unsigned char)*s)) {
			s++;
			continue;
		}
		if (t->n == LO_MAX_TOKENS || out >= end) {
			perr(p, "statement too long");
			return false;
		}
		t->tok[t->n++] = out;
		if (lo_is_sep(s)) {
			int n = *s == ',' ? 1 : 2;

			memcpy(out, s, (size_t)n);
			out += n;
			s += n;
			*out++ = '\0';
			continue;
		}
		while (*s && !isspace((unsigned char)*s) && !lo_is_sep(s) &&
		       out < end) {
			if (*s != '"') {
				*out++ = *s++;
				continue;
			}
			do
				*out++ = *s++;
			while (*s && *s != '"' && out < end);
			if (*s != '"') {
				perr(p, "unterminated quoted value");
				return false;
			}
			*out++ = *s++;
		}
		*out++ = '\0';
	}
	return true;
}

/* key="value" or key=value: split in place; false if not an attribute. */
static bool lo_attr(char *tok, char **key, char **val)
{
	char *eq = strchr(tok, '=');
	size_t n;

	if (!eq || eq == tok)
		return false;
	for (char *c = tok; c < eq; c++)
		if (!islower((unsigned char)*c) && *c != '_')
			return false;
	*eq = '\0';
	*key = tok;
	*val = eq + 1;
	n = strlen(*val);
	if (n >= 2 && (*val)[0] == '"' && (*val)[n - 1] == '"') {
		(*val)[n - 1] = '\0';
		(*val)++;
	}
	return true;
}

static int lo_add_class(struct lo_parser *p, const char *name, int type)
{
	struct lock_order *o = p->o;
	struct lo_class *c;

	c = realloc(o->classes, (size_t)(o->nr_classes + 1) * sizeof(*c));
	if (!c)
		abort();
	o->classes = c;
	c = &o->classes[o->nr_classes];
	memset(c, 0, sizeof(*c));
	c->name = strdup(name);
	c->type = type;
	c->section = o->nr_sections - 1;
	c->line = p->line;
	return o->nr_classes++;
}

int lo_find(const struct lock_order *o, const char *name)
{
	if (o->hash) {
		unsigned int h = 5381;

		for (const char *c = name; *c; c++)
			h = h * 33 + (unsigned char)*c;
		for (int i = 0; i < o->hash_size; i++) {
			int v = o->hash[(h + (unsigned int)i) % (unsigned int)o->hash_size];

			if (!v)
				return -1;
			if (!strcmp(o->classes[v - 1].name, name))
				return v - 1;
		}
		return -1;
	}
	for (int i = 0; i < o->nr_classes; i++)
		if (!strcmp(o->classes[i].name, name))
			return i;
	return -1;
}

static int lo_parse_type(const char *s)
{
	for (int i = 0; i < LD_TYPE_NR; i++)
		if (!strcmp(s, type_names[i]))
			return i;
	return -1;
}

static void lo_parse_class(struct lo_parser *p, struct lo_tokens *t)
{
	struct lo_class *c;
	int idx, type;

	if (t->n < 3) {
		perr(p, "'class' needs a name and a type");
		return;
	}
	type = lo_parse_type(t->tok[2]);
	if (type < 0) {
		perr(p, "unknown lock type '%s' (mutex spinlock raw_spinlock rwlock rwsem srcu rcu map)",
		     t->tok[2]);
		return;
	}
	idx = lo_find(p->o, t->tok[1]);
	if (idx >= 0 && p->o->classes[idx].type >= 0) {
		perr(p, "class '%s' already declared at line %d", t->tok[1],
		     p->o->classes[idx].line);
		return;
	}
	if (idx < 0)
		idx = lo_add_class(p, t->tok[1], type);
	c = &p->o->classes[idx];
	c->type = type;
	c->line = p->line;
	c->section = p->o->nr_sections - 1;
	for (int i = 3; i < t->n; i++) {
		char *key, *val;

		if (!strcmp(t->tok[i], "leaf")) {
			c->leaf_attr = true;
			continue;
		}
		if (!lo_attr(t->tok[i], &key, &val)) {
			perr(p, "unexpected '%s' in class statement", t->tok[i]);
			continue;
		}
		if (!strcmp(key, "scope")) {
			bool ok = false;

			for (size_t s = 0; s < sizeof(scopes) / sizeof(scopes[0]); s++)
				ok |= !strcmp(val, scopes[s]);
			if (!ok)
				perr(p, "unknown scope '%s' (global vm vcpu percpu mm)", val);
			free(c->scope);
			c->scope = strdup(val);
		} else if (!strcmp(key, "doc")) {
			free(c->doc);
			c->doc = strdup(val);
		} else if (!strcmp(key, "protects")) {
			free(c->protects);
			c->protects = strdup(val);
		} else if (!strcmp(key, "src")) {
			free(c->src);
			c->src = strdup(val);
		} else {
			perr(p, "unknown class attribute '%s'", key);
		}
	}
}

/* "NAME[:mode]" -> class index (created undeclared if new) and mode. */
static int lo_parse_ref(struct lo_parser *p, char *tok, int *mode, bool outer)
{
	char *colon = strrchr(tok, ':');
	int idx;

	*mode = LOM_EXCL;
	if (colon) {
		if (!strcmp(colon, ":r"))
			*mode = LOM_READ;
		else if (!strcmp(colon, ":R"))
			*mode = LOM_RREAD;
		else if (!strcmp(colon, ":sync"))
			*mode = LOM_SYNC;
		else {
			perr(p, "unknown mode suffix '%s' (use :r :R or :sync)", colon);
			return -1;
		}
		*colon = '\0';
	}
	if (!*tok) {
		perr(p, "missing lock name");
		return -1;
	}
	if (outer && *mode == LOM_SYNC) {
		perr(p, "'%s:sync' on the left of '=>': nothing is ever held inside a sync",
		     tok);
		return -1;
	}
	idx = lo_find(p->o, tok);
	if (idx < 0)
		idx = lo_add_class(p, tok, -1);
	return idx;
}

/* Parse "A, B:r" from token @i up to (not including) @stop; returns count. */
static int lo_parse_list(struct lo_parser *p, struct lo_tokens *t, int i,
			 int stop, int *idx, int *mode, bool outer)
{
	int n = 0;
	bool want_name = true;

	for (; i < stop; i++) {
		if (!strcmp(t->tok[i], ",")) {
			if (want_name)
				perr(p, "empty name in list");
			want_name = true;
			continue;
		}
		if (!want_name) {
			perr(p, "missing ',' before '%s'", t->tok[i]);
			return -1;
		}
		want_name = false;
		if (n == LO_MAX_TOKENS)
			return -1;
		idx[n] = lo_parse_ref(p, t->tok[i], &mode[n], outer);
		if (idx[n] < 0)
			return -1;
		n++;
	}
	if (want_name) {
		perr(p, "list ends with ',' or is empty");
		return -1;
	}
	return n;
}

static void lo_add_rules(struct lo_parser *p, int *oi, int *om, int no,
			 int *ii, int *im, int ni, struct lo_rule *proto)
{
	struct lock_order *o = p->o;
	struct lo_rule *r;

	r = realloc(o->rules, (size_t)(o->nr_rules + no * ni) * sizeof(*r));
	if (!r)
		abort();
	o->rules = r;
	for (int a = 0; a < no; a++) {
		for (int b = 0; b < ni; b++) {
			r = &o->rules[o->nr_rules++];
			*r = *proto;
			r->outer = oi[a];
			r->omode = (uint8_t)om[a];
			r->inner = ii[b];
			r->imode = (uint8_t)im[b];
			r->src = proto->src ? strdup(proto->src) : NULL;
			r->note = proto->note ? strdup(proto->note) : NULL;
		}
	}
}

static void lo_parse_order(struct lo_parser *p, struct lo_tokens *t)
{
	int oi[LO_MAX_TOKENS], om[LO_MAX_TOKENS], ii[LO_MAX_TOKENS], im[LO_MAX_TOKENS];
	struct lo_rule proto = { .when = LO_WHEN_BOTH, .line = p->line };
	int arrow = -1, end, no, ni;
	char *key, *val;

	for (int i = 1; i < t->n; i++)
		if (!strcmp(t->tok[i], "=>")) {
			arrow = i;
			break;
		}
	if (arrow < 0) {
		perr(p, "'order' needs 'OUTER => INNER'");
		return;
	}
	/* Attributes start at the first token that looks like key=value. */
	for (end = arrow + 1; end < t->n; end++)
		if (strchr(t->tok[end], '=') && strcmp(t->tok[end], "=>"))
			break;
	no = lo_parse_list(p, t, 1, arrow, oi, om, true);
	ni = lo_parse_list(p, t, arrow + 1, end, ii, im, false);
	for (int i = end; i < t->n; i++) {
		if (!lo_attr(t->tok[i], &key, &val)) {
			perr(p, "unexpected '%s' after the attributes", t->tok[i]);
			continue;
		}
		if (!strcmp(key, "src"))
			proto.src = val;
		else if (!strcmp(key, "note"))
			proto.note = val;
		else if (!strcmp(key, "when") && !strcmp(val, "legacy"))
			proto.when = LO_WHEN_LEGACY;
		else if (!strcmp(key, "when") && !strcmp(val, "current"))
			proto.when = LO_WHEN_CURRENT;
		else if (!strcmp(key, "when"))
			perr(p, "when=%s: use when=legacy or when=current", val);
		else
			perr(p, "unknown rule attribute '%s'", key);
	}
	if (no > 0 && ni > 0)
		lo_add_rules(p, oi, om, no, ii, im, ni, &proto);
}

/* "# 3. SRCU and ..." comment lines open a section of the table. */
static void lo_section(struct lock_order *o, const char *s)
{
	const char *q = s;
	char **v;

	while (*q == '#' || *q == ' ')
		q++;
	if (!isdigit((unsigned char)*q))
		return;
	while (isdigit((unsigned char)*q))
		q++;
	if (q[0] != '.' || q[1] != ' ')
		return;
	while (*s == '#' || *s == ' ')
		s++;
	v = realloc(o->sections, (size_t)(o->nr_sections + 1) * sizeof(*v));
	if (!v)
		abort();
	o->sections = v;
	o->sections[o->nr_sections] = strdup(s);
	o->sections[o->nr_sections][strcspn(s, "\r\n")] = '\0';
	o->nr_sections++;
}

/* Cut a '#' comment that is not inside quotes. */
static void lo_strip_comment(char *s)
{
	bool quoted = false;

	for (; *s; s++) {
		if (*s == '"')
			quoted = !quoted;
		else if (*s == '#' && !quoted) {
			*s = '\0';
			return;
		}
	}
}

static void lo_parse_line(struct lo_parser *p, char *line)
{
	struct lo_tokens t;
	const char *first = line + strspn(line, " \t");

	if (*first == '#') {
		lo_section(p->o, first);
		return;
	}
	lo_strip_comment(line);
	if (!lo_tokenize(p, line, &t) || t.n == 0)
		return;
	if (!strcmp(t.tok[0], "class"))
		lo_parse_class(p, &t);
	else if (!strcmp(t.tok[0], "order"))
		lo_parse_order(p, &t);
	else
		perr(p, "unknown statement '%s' (expected 'class' or 'order')",
		     t.tok[0]);
}

void lo_free(struct lock_order *o)
{
	if (!o)
		return;
	for (int i = 0; i < o->nr_classes; i++) {
		free(o->classes[i].name);
		free(o->classes[i].scope);
		free(o->classes[i].doc);
		free(o->classes[i].protects);
		free(o->classes[i].src);
	}
	for (int i = 0; i < o->nr_rules; i++) {
		free(o->rules[i].src);
		free(o->rules[i].note);
	}
	for (int i = 0; i < o->nr_sections; i++)
		free(o->sections[i]);
	free(o->sections);
	free(o->classes);
	free(o->rules);
	free(o->pair);
	free(o->reach);
	free(o->has_out);
	free(o->hash);
	free(o->origin);
	free(o->text);
	free(o);
}

struct lock_order *lo_parse(const char *text, const char *origin,
				   const char *variant, char *errbuf,
				   size_t len)
{
	struct lock_order *o = calloc(1, sizeof(*o));
	struct lo_parser p = { .o = o, .origin = origin, .err = errbuf,
			       .errlen = len };
	char *copy = strdup(text), *line = copy, *nl;

	if (!o || !copy)
		abort();
	if (errbuf && len)
		errbuf[0] = '\0';
	o->origin = strdup(origin);
	o->text = strdup(text);
	snprintf(o->variant, sizeof(o->variant), "%s", variant);
	for (p.line = 1; line; p.line++, line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		lo_parse_line(&p, line);
	}
	free(copy);
	if (!p.errors && lo_derive(o) < 0) {
		p.line = 0;
		perr(&p, "out of memory");
	}
	if (p.errors) {
		lo_free(o);
		return NULL;
	}
	return o;
}

