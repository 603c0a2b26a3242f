#!/bin/bash
# Build the three test variants and run every suite of tests/suites.list in
# each. Every test command speaks TAP ("ok N - ..." / "not ok N - ...");
# a command that exits non-zero without a "not ok" line counts as one failure,
# one that prints no TAP line at all counts as one test.
# The last line printed is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
variants=${UKVM_TEST_VARIANTS:-"default asan tsan"}
filter=${UKVM_TEST_FILTER:-}
pass=0; fail=0; skip=0
failed_names=()

declare -A dir=([default]=build [asan]=build-asan [tsan]=build-tsan)

for v in $variants; do
	echo "== building $v (${dir[$v]})"
	if ! scripts/build.sh "${dir[$v]}" "$v"; then
		echo "not ok - build $v"
		fail=$((fail + 1)); failed_names+=("build:$v")
		continue
	fi
	pass=$((pass + 1))
	while IFS='|' read -r vs name tmo cmd; do
		vs=$(echo "$vs" | xargs); name=$(echo "$name" | xargs)
		tmo=$(echo "$tmo" | xargs); cmd=$(echo "$cmd" | xargs)
		[[ -z "$name" || "$vs" == \#* ]] && continue
		[[ "$vs" == all || " ${vs//,/ } " == *" $v "* ]] || continue
		[[ -n "$filter" && "$name" != *$filter* ]] && continue
		log=$(mktemp)
		start=$(date +%s)
		( cd "${dir[$v]}" && CMOCKA_MESSAGE_OUTPUT=TAP UKVM_TEST_VARIANT=$v \
			timeout --kill-after=10 "$tmo" bash -c "$cmd" ) >"$log" 2>&1
		rc=$?
		secs=$(( $(date +%s) - start ))
		p=$(grep -E '^ok [0-9]+' "$log" | grep -vc '# [Ss][Kk][Ii][Pp]')
		s=$(grep -E '^ok [0-9]+' "$log" | grep -c '# [Ss][Kk][Ii][Pp]')
		f=$(grep -cE '^not ok [0-9]+' "$log")
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
		if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then p=1; fi
		pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
		status="ok"; [ "$f" -gt 0 ] && status="FAIL"
		[ "$rc" -eq 124 ] && status="TIMEOUT"
		printf '%-8s %-7s %-40s %4d passed %3d failed %3d skipped  (%ds)\n' \
			"$status" "$v" "$name" "$p" "$f" "$s" "$secs"
		if [ "$f" -gt 0 ]; then
			failed_names+=("$v:$name")
			grep -E '^not ok|^#' "$log" | head -20 | sed 's/^/    /'
			tail -30 "$log" | sed 's/^/    | /'
		elif [ "$s" -gt 0 ]; then
			grep -E '# [Ss][Kk][Ii][Pp]' "$log" | head -5 | sed 's/^/    /'
		fi
		rm -f "$log"
	done < tests/suites.list
done
if [ ${#failed_names[@]} -gt 0 ]; then
	echo "failed: ${failed_names[*]}"
fi
[ "$skip" -gt 0 ] && echo "($skip skipped, see above)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
