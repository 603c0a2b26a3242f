// SPDX-License-Identifier: MIT
/*
 * The CPU0/CPU1 tables of `ukvm race`, drawn as reStructuredText grid
 * tables like the ones of locking.rst: one column per CPU, one row per step,
 * a step in one column only, full-width rows for "at the beginning" and for
 * conclusions.  Cells may hold several lines ('\n').
 */
#include <string.h>

#include "race_harness.h"

#define CELL_MAX_LINES 16

static const char *row_text(const struct race_table_row *r, bool unsafe)
{
	return unsafe && r->unsafe_text ? r->unsafe_text : r->text;
}

/* Length of line @n of @s (0 if it has fewer lines); *@start gets it. */
static int cell_line(const char *s, int n, const char **start)
{
	const char *p = s, *nl;

	for (int i = 0; i < n; i++) {
		nl = s ? strchr(p, '\n') : NULL;
		if (!nl)
			return 0;
		p = nl + 1;
	}
	if (!s)
		return 0;
	*start = p;
	nl = strchr(p, '\n');
	return nl ? (int)(nl - p) : (int)strlen(p);
}

static int cell_lines(const char *s)
{
	int n = 1;

	if (!s || !*s)
		return 0;
	for (; *s; s++)
		n += *s == '\n' && s[1];
	return n;
}

static int cell_width(const char *s)
{
	const char *start;
	int w = 0;

	for (int i = 0; i < cell_lines(s); i++) {
		int len = cell_line(s, i, &start);

		if (len > w)
			w = len;
	}
	return w;
}

static void rule(FILE *f, const char *prefix, const int *w, int n, char c,
		 bool joined)
{
	fprintf(f, "%s+", prefix);
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < w[i] + 2; j++)
			fputc(c, f);
		fputc(joined && i < n - 1 ? c : '+', f);
	}
	fputc('\n', f);
}

/* A row: @texts[i] is column i's cell; a full-width row has n == 1. */
static void row(FILE *f, const char *prefix, const int *w, int n,
		const char *const *texts)
{
	int lines = 0;

	for (int i = 0; i < n; i++)
		if (cell_lines(texts[i]) > lines)
			lines = cell_lines(texts[i]);
	for (int l = 0; l < lines && l < CELL_MAX_LINES; l++) {
		fprintf(f, "%s|", prefix);
		for (int i = 0; i < n; i++) {
			const char *start = "";
			int len = cell_line(texts[i], l, &start);

			fprintf(f, " %.*s%*s |", len, start, w[i] - len, "");
		}
		fputc('\n', f);
	}
}

void race_print_table(FILE *f, const struct race_table *t, bool unsafe,
		      const char *prefix)
{
	int w[RACE_MAX_COLS] = { 0 }, total, full = 0;
	const char *texts[RACE_MAX_COLS];

	for (int i = 0; i < t->nr_cols; i++)
		w[i] = cell_width(t->cols[i]);
	for (int r = 0; r < t->nr_rows; r++) {
		const struct race_table_row *rw = &t->rows[r];
		int cw = cell_width(row_text(rw, unsafe));

		if (rw->col < 0) {
			if (cw > full)
				full = cw;
		} else if (cw > w[rw->col]) {
			w[rw->col] = cw;
		}
	}
	/* A full-width row spans the columns and their separators. */
	total = 3 * (t->nr_cols - 1);
	for (int i = 0; i < t->nr_cols; i++)
		total += w[i];
	if (full > total)
		w[t->nr_cols - 1] += full - total;
	total = 3 * (t->nr_cols - 1);
	for (int i = 0; i < t->nr_cols; i++)
		total += w[i];

	rule(f, prefix, w, t->nr_cols, '-', false);
	row(f, prefix, w, t->nr_cols, t->cols);
	rule(f, prefix, w, t->nr_cols, '=', false);
	for (int r = 0; r < t->nr_rows; r++) {
		const struct race_table_row *rw = &t->rows[r];
		const char *text = row_text(rw, unsafe);

		if (!text || !*text)
			continue;	/* a step that only happens in the other run */
		if (rw->col < 0) {
			row(f, prefix, &total, 1, &text);
			/* Between two full-width rows: no column corners. */
			rule(f, prefix, w, t->nr_cols, '-',
			     r + 1 < t->nr_rows && t->rows[r + 1].col < 0 &&
			     *row_text(&t->rows[r + 1], unsafe));
			continue;
		}
		for (int i = 0; i < t->nr_cols; i++)
			texts[i] = i == rw->col ? text : "";
		row(f, prefix, w, t->nr_cols, texts);
		rule(f, prefix, w, t->nr_cols, '-', false);
	}
}

void race_print_prefixed(FILE *f, const char *text, const char *prefix)
{
	const char *p = text;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		fprintf(f, "%s%.*s\n", prefix, len, p);
		p = nl ? nl + 1 : NULL;
	}
}
