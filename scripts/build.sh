#!/bin/bash
# Configure (once) and build one variant.   Usage: scripts/build.sh DIR VARIANT
#   default  gcc, -O2 -g, validator + race points + invariant checks compiled in
#   asan     clang, AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan     clang, ThreadSanitizer
#   release  gcc, -O2, validator, race points and checks compiled out
set -euo pipefail
dir=$1; variant=$2
if [ ! -f "$dir/build.ninja" ]; then
	case "$variant" in
	default) CC=gcc meson setup "$dir" >/dev/null ;;
	asan)    CC=clang meson setup "$dir" -Db_sanitize=address,undefined -Db_lundef=false \
			-Dc_args=-fno-sanitize-recover=undefined >/dev/null ;;
	tsan)    CC=clang meson setup "$dir" -Db_sanitize=thread -Db_lundef=false >/dev/null ;;
	release) CC=gcc meson setup "$dir" --buildtype=release -Dlockdep=false \
			-Drace_points=false -Ddebug_checks=false -Dtests=false >/dev/null ;;
	*) echo "build.sh: unknown variant $variant" >&2; exit 2 ;;
	esac
fi
ninja -C "$dir" >/dev/null || { ninja -C "$dir" 2>&1 | tail -40; exit 1; }
