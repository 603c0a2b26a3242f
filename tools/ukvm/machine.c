// SPDX-License-Identifier: MIT
/* Machine set-up shared by the subcommands (see machine.h). */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "host/host.h"
#include "machine.h"
#include "sync/thread.h"
#include "ukvm/ukvm.h"

int machine_start(const struct machine_opts *o)
{
	const struct host_config cfg = {
		.mem_bytes = o->mem_bytes,
		.nr_cpus = o->nr_cpus,
		.swap_bytes = o->swap_bytes,
		.poison_frames = o->poison_frames,
	};
	int r;

	ukvm_thread_register_current("main");
	r = host_init(&cfg);
	if (r)
		return r;
	ukvm_set_legacy_usage_locking(o->legacy_usage);
	r = ukvm_init();
	if (r)
		host_exit();
	return r;
}

void machine_stop(void)
{
	ukvm_exit();
	host_exit();
}

bool parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case '\0': break;
	default: return false;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (shift && v > (SIZE_MAX >> shift)))
		return false;
	*out = (size_t)(v << shift);
	return true;
}

void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}
