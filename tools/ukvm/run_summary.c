// SPDX-License-Identifier: MIT
/*
 * `ukvm run`: the summary table, the verification block and the JSON file,
 * from what run_report_collect() and the run_verify_*() steps gathered.
 */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "lockdep/lockdep.h"
#include "machine.h"
#include "run.h"

#define LABEL_W		16
#define LINE_W		100

static const char *const check_keys[CK_NR] = {
	[CK_LOST_WRITES] = "lost_writes",
	[CK_DAMAGE] = "pattern_scratch_damage",
	[CK_MISSED_DIRTY] = "missed_dirty_pages",
	[CK_MIGRATION_DIFF] = "migration_diff_pages",
	[CK_POISON] = "writes_into_freed_frames",
	[CK_INVARIANTS] = "invariant_failures",
	[CK_VALIDATOR] = "validator_reports",
	[CK_INVALIDATIONS] = "unbalanced_invalidations",
	[CK_ERRORS] = "unexpected_errors",
	[CK_IDLE] = "idle_features",
};

static void human(char *dst, size_t len, const char *name)
{
	size_t i;

	for (i = 0; name[i] && i + 1 < len; i++)
		dst[i] = name[i] == '_' ? ' ' : name[i];
	dst[i] = '\0';
}

static bool section_wanted(const struct run *r, int first, int end)
{
	if (!strcmp(r->stats[first].section, "guest") ||
	    !strcmp(r->stats[first].section, "faults"))
		return true;
	for (int i = first; i < end; i++)
		if (r->stats[i].value)
			return true;
	return false;
}

static void print_stats(const struct run *r, FILE *f)
{
	int i = 0;

	while (i < r->nr_stats) {
		const char *sec = r->stats[i].section;
		int end = i, col;
		char label[32];

		while (end < r->nr_stats && !strcmp(r->stats[end].section, sec))
			end++;
		if (!section_wanted(r, i, end)) {
			i = end;
			continue;
		}
		human(label, sizeof(label), sec);
		col = fprintf(f, "%-*s", LABEL_W, label);
		for (; i < end; i++) {
			char item[96], name[64];
			int n;

			human(name, sizeof(name), r->stats[i].name);
			n = snprintf(item, sizeof(item), "%s %llu", name, r->stats[i].value);
			if (col > LABEL_W && col + 2 + n > LINE_W)
				col = fprintf(f, "\n%-*s", LABEL_W, "") - 1;
			col += fprintf(f, "%s%s", col > LABEL_W ? "  " : "", item);
		}
		fputc('\n', f);
	}
}

static void print_migration(const struct run *r, FILE *f)
{
	const struct run_migration *m = &r->mig;
	int col;

	col = fprintf(f, "%-*sfull copy %llu pages, then", LABEL_W, "last migration",
		      (unsigned long long)m->pages[0]);
	if (!m->rounds)
		col += fprintf(f, " no pre-copy round");
	for (unsigned int i = 1; i <= m->rounds; i++) {
		char item[32];
		int n = snprintf(item, sizeof(item), "%s %llu", i == 1 ? " rounds of" : "",
				 (unsigned long long)m->pages[i]);

		/* A new line starts with the number, not with its space. */
		if (col + n > LINE_W) {
			col = fprintf(f, "\n%-*s", LABEL_W, "") - 1;
			col += fprintf(f, "%s", item + 1);
			continue;
		}
		col += fprintf(f, "%s", item);
	}
	fprintf(f, " pages\n");
	if (m->max_throttle)
		fprintf(f, "%-*sauto-converge: vCPUs parked up to %u%% of the copying\n",
			LABEL_W, "", m->max_throttle);
	fprintf(f, "%-*sdowntime set %llu pages (vCPUs stopped %.1f ms); destination %s "
		"source (%llu pages, %llu bytes differ)\n", LABEL_W, "",
		(unsigned long long)m->downtime_pages, m->downtime_ms,
		m->diff_pages ? "!=" : "==", (unsigned long long)m->diff_pages,
		(unsigned long long)m->diff_bytes);
}

void run_report_print(struct run *r, const struct run_verify *v, FILE *f)
{
	if (!r->o.quiet) {
		fprintf(f, "\n== summary: %.1f s, %d vCPUs, %llu MiB of guest memory in %d memslots ==\n",
			r->elapsed, r->o.vcpus,
			(unsigned long long)(r->guest_pages >> 8), r->nr_slots);
		print_stats(r, f);
		if (r->o.migrate && run_ctr(r, RC_MIG_DONE))
			print_migration(r, f);
	}
	fprintf(f, "\n== verification ==\n");
	for (int c = 0; c < CK_NR; c++) {
		char name[48];

		snprintf(name, sizeof(name), "%s:", run_check_names[c]);
		fprintf(f, "%-31s %lu", name, v->check[c]);
		switch (c) {
		case CK_LOST_WRITES:
			fprintf(f, "   (%llu pages verified: %llu lost; guests' own reads %llu; "
				"churn VMs %lu)", (unsigned long long)v->gv.pages_checked,
				(unsigned long long)v->gv.lost_writes,
				(unsigned long long)v->gs.read_mismatches,
				run_ctr(r, RC_VM_MISMATCH));
			break;
		case CK_DAMAGE:
			fprintf(f, "   (pattern %llu, scratch %llu)",
				(unsigned long long)v->gv.bad_pattern,
				(unsigned long long)v->gv.bad_scratch);
			break;
		case CK_MIGRATION_DIFF:
			fprintf(f, "   (%lu bytes, %lu migrations compared)",
				run_ctr(r, RC_MIG_DIFF_BYTES), run_ctr(r, RC_MIG_DONE));
			break;
		case CK_VALIDATOR:
			fprintf(f, "   (errors %lu, warnings %lu%s)", v->lockdep_errors,
				v->lockdep_warnings, lockdep_enabled() ? "" : "; validator off");
			break;
		case CK_IDLE:
			for (int i = 0; i < v->nr_idle; i++)
				fprintf(f, "%s%s", i ? ", " : "   (", v->idle[i]);
			if (v->nr_idle)
				fputc(')', f);
			break;
		default:
			break;
		}
		fputc('\n', f);
	}
	fprintf(f, "lock validator: %lu lock classes, %lu dependencies observed%s\n",
		v->lock_classes, v->lock_deps,
		UKVM_LOCKDEP ? (lockdep_enabled() ? "" : " (switched off)") :
			       " (compiled out)");
	fprintf(f, "%s\n", v->pass ? "PASS" : "FAIL");
}

/* ---- JSON ---- */

static void json_opts(const struct run_opts *o, FILE *f)
{
	fprintf(f, "  \"options\": {\"vcpus\": %d, \"mem_per_vcpu\": %zu, \"slots\": %d, "
		"\"huge\": %s, \"ad_bits\": %s, \"access\": \"%s\", \"write_percent\": %d, "
		"\"overlap\": %s, \"passes\": %llu, \"duration_s\": %.3f, \"seed\": %llu, "
		"\"dirty_mode\": \"%s\", \"manual_protect\": %s, \"initially_set\": %s, "
		"\"dirty_ring\": %zu, \"halt_every\": %llu, "
		"\"host_mem\": %zu, \"host_cpus\": %u, \"lockdep\": %s, ",
		o->vcpus, o->mem_per_vcpu, o->slots, o->huge ? "true" : "false",
		o->ad_bits ? "true" : "false", o->random ? "random" : "seq",
		o->write_percent, o->overlap ? "true" : "false",
		(unsigned long long)o->passes, o->duration_s, (unsigned long long)o->seed,
		o->dirty_mode == UKVM_DIRTY_DBIT ? "dbit" : "wrprot",
		o->manual_protect ? "true" : "false", o->initially_set ? "true" : "false",
		o->dirty_ring ? o->ring_bytes : 0, (unsigned long long)o->halt_every,
		o->host_mem, o->host_cpus, o->lockdep ? "true" : "false");
	fprintf(f, "\"host_churn\": %s, \"memslot_churn\": %s, \"age\": %s, "
		"\"cpu_hotplug\": %s, \"vm_churn\": %s, \"param_writer\": %s, "
		"\"vcpu_ioctls\": %s, \"irqs\": %s, \"migrate\": %s, \"churn_delay_us\": %u, "
		"\"migrate_rounds\": %u, \"demo\": %s},\n",
		o->host_churn ? "true" : "false", o->memslot_churn ? "true" : "false",
		o->age ? "true" : "false", o->cpu_hotplug ? "true" : "false",
		o->vm_churn ? "true" : "false", o->param_writer ? "true" : "false",
		o->vcpu_ioctls ? "true" : "false", o->irqs ? "true" : "false",
		o->migrate ? "true" : "false",
		o->churn_delay_us, o->migrate_rounds, o->demo ? "true" : "false");
}

static void json_stats(const struct run *r, FILE *f)
{
	const char *sec = NULL;

	fprintf(f, "  \"stats\": {");
	for (int i = 0; i < r->nr_stats; i++) {
		if (!sec || strcmp(sec, r->stats[i].section)) {
			fprintf(f, "%s\n    ", sec ? "}," : "");
			json_string(f, r->stats[i].section);
			fprintf(f, ": {");
			sec = r->stats[i].section;
		} else {
			fprintf(f, ", ");
		}
		json_string(f, r->stats[i].name);
		fprintf(f, ": %llu", r->stats[i].value);
	}
	fprintf(f, "%s\n  },\n", sec ? "}" : "");
}

static void json_write(struct run *r, const struct run_verify *v, FILE *f)
{
	const struct run_migration *m = &r->mig;

	fprintf(f, "{\n  \"command\": \"ukvm run\",\n  \"version\": ");
	json_string(f, UKVM_VERSION);
	fprintf(f, ",\n");
	json_opts(&r->o, f);
	fprintf(f, "  \"guest_pages\": %llu,\n  \"elapsed_s\": %.3f,\n",
		(unsigned long long)r->guest_pages, r->elapsed);
	json_stats(r, f);
	fprintf(f, "  \"migration_last\": {\"rounds\": %u, \"pages\": [", m->rounds);
	for (unsigned int i = 0; r->o.migrate && i <= m->rounds; i++)
		fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)m->pages[i]);
	fprintf(f, "], \"max_throttle_percent\": %u, \"downtime_pages\": %llu, "
		"\"downtime_ms\": %.3f, \"diff_pages\": %llu, \"diff_bytes\": %llu},\n",
		m->max_throttle, (unsigned long long)m->downtime_pages, m->downtime_ms,
		(unsigned long long)m->diff_pages, (unsigned long long)m->diff_bytes);
	fprintf(f, "  \"checks\": {");
	for (int c = 0; c < CK_NR; c++)
		fprintf(f, "%s\"%s\": %lu", c ? ", " : "", check_keys[c], v->check[c]);
	fprintf(f, "},\n  \"idle_features\": [");
	for (int i = 0; i < v->nr_idle; i++) {
		fprintf(f, "%s", i ? ", " : "");
		json_string(f, v->idle[i]);
	}
	fprintf(f, "],\n  \"validator\": {\"compiled_in\": %s, \"enabled\": %s, "
		"\"classes\": %lu, \"dependencies\": %lu, \"errors\": %lu, \"warnings\": %lu},\n",
		UKVM_LOCKDEP ? "true" : "false", lockdep_enabled() ? "true" : "false",
		v->lock_classes, v->lock_deps, v->lockdep_errors, v->lockdep_warnings);
	fprintf(f, "  \"result\": \"%s\"\n}\n", v->pass ? "PASS" : "FAIL");
}

int run_report_json(struct run *r, const struct run_verify *v, const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;

	if (!f) {
		fprintf(stderr, "ukvm run: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	json_write(r, v, f);
	if (f != stdout && fclose(f)) {
		fprintf(stderr, "ukvm run: %s: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}
