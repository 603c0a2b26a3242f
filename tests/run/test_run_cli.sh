#!/bin/bash
# `ukvm run` from the command line: bad usage exits 2 with a message naming
# the problem, --help exits 0, a short run writes valid JSON and a Graphviz
# lock graph, the dirty ring and halting guests report their work, and a
# run with a protection removed (--unsafe) fails with 1, with or without
# the dirty ring.
# Usage (from a build directory): ../tests/run/test_run_cli.sh ./ukvm
# Prints TAP.
set -u
ukvm=${1:-./ukvm}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fails=0

ok() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		fails=$((fails + 1))
	fi
}

# bad option | text the message must contain
while IFS='|' read -r args want; do
	# shellcheck disable=SC2086
	"$ukvm" run $args >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ "$rc" -eq 2 ] && grep -q -- "$want" "$tmp/err" && grep -q "ukvm run" "$tmp/err" \
		&& [ ! -s "$tmp/out" ]
	ok $? "bad usage '$args' exits 2 ($rc) saying '$want'"
done <<'EOF'
--vcpus 0|--vcpus
--vcpus x|--vcpus
--vcpus 65|--vcpus
--bogus|unrecognized option
--ad-bits maybe|--ad-bits
--access zigzag|--access
--dirty-mode pml|--dirty-mode
--write-percent 101|--write-percent
--duration -1|--duration
--duration 0|--duration
--passes 0|--passes
--passes 3 --duration 2|exclude each other
--mem-per-vcpu 12Q|--mem-per-vcpu
--mem-per-vcpu 1K|--mem-per-vcpu
--host-mem 64M --mem-per-vcpu 64M|cannot hold
--slots 0|--slots
--host-cpus 0|--host-cpus
--lockdep|requires an argument
--lockdep maybe|--lockdep
--churn-delay -5|--churn-delay
--migrate-rounds 0|--migrate-rounds
--unsafe NO_SUCH_KNOB|--unsafe
--seed -1|--seed
--watchdog x|--watchdog
extra-argument|unexpected argument
--dirty-ring=3K --migrate|--dirty-ring
--dirty-ring=1K --migrate|--dirty-ring
--dirty-ring=2M --migrate|--dirty-ring
--dirty-ring=ring --migrate|--dirty-ring
--dirty-ring 16K --migrate|--dirty-ring=SIZE
--dirty-ring --dirty-mode dbit --migrate|needs --dirty-mode wrprot
--dirty-mode dbit --dirty-ring=8K --memslot-churn|needs --dirty-mode wrprot
--dirty-ring --manual-protect --migrate|excludes --manual-protect
--dirty-ring --initially-set --memslot-churn|excludes --manual-protect
--dirty-ring --host-churn|needs a dirty-log user
--halt-every 8|needs --irqs
--halt-every x --irqs|--halt-every
--halt-every -1 --irqs|--halt-every
EOF

"$ukvm" run --help >"$tmp/out" 2>&1
ok $? "--help exits 0"
for opt in --vcpus --mem-per-vcpu --slots --huge --ad-bits --access --write-percent \
	--overlap --passes --duration --seed --dirty-mode --manual-protect --host-mem \
	--host-cpus --lockdep --json --locks-dot --quiet --host-churn --memslot-churn \
	--age --cpu-hotplug --vm-churn --param-writer --vcpu-ioctls --irqs --churn-delay \
	--migrate --demo --unsafe --dirty-ring --halt-every; do
	grep -q -- "^  $opt" "$tmp/out"
	ok $? "--help documents $opt"
done

# A short run with everything: exit 0, JSON that parses and says PASS, a DOT graph.
"$ukvm" run --duration 1 --mem-per-vcpu 4M --all-churn --migrate --quiet \
	--json "$tmp/run.json" --locks-dot "$tmp/run.dot" >"$tmp/out" 2>&1
rc=$?
ok $rc "short run with everything exits 0"
grep -q '^PASS$' "$tmp/out"
ok $? "it prints PASS"
if command -v python3 >/dev/null; then
	python3 - "$tmp/run.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["result"] == "PASS"
assert all(v == 0 for v in d["checks"].values()), d["checks"]
assert d["stats"]["guest"]["accesses"] > 0
assert d["stats"]["migration"]["migrations"] >= 1
assert d["options"]["migrate"] is True and d["options"]["vcpus"] == 2
EOF
	ok $? "--json writes valid JSON with options, stats and checks"
else
	echo "ok $((n += 1)) - --json # SKIP no python3"
fi
grep -q '^digraph' "$tmp/run.dot" && grep -q -- '->' "$tmp/run.dot"
ok $? "--locks-dot writes a Graphviz graph with edges"

# The dirty ring and halting guests: migration and the dirty-log checker
# from ring entries, every entry harvested, halted vCPUs woken.
"$ukvm" run --duration 1 --vcpus 3 --mem-per-vcpu 2M --dirty-ring=4K --memslot-churn \
	--migrate --irqs --halt-every 32 --quiet --json "$tmp/ring.json" >"$tmp/out" 2>&1
ok $? "short run with the dirty ring and halting guests exits 0"
if command -v python3 >/dev/null; then
	python3 - "$tmp/ring.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["result"] == "PASS"
assert d["options"]["dirty_ring"] == 4096 and d["options"]["halt_every"] == 32
r, i = d["stats"]["dirty_ring"], d["stats"]["interrupts"]
assert r["harvested"] > 0 and r["harvested"] == r["pushed"] == r["entries_reset"], r
assert d["stats"]["dirty_log"]["get"] == 0 and d["stats"]["migration"]["migrations"] >= 1
assert i["halts"] > 0, i
EOF
	ok $? "--json: ring entries all harvested and reset, no GET_DIRTY_LOG, guests halted"
else
	echo "ok $((n += 1)) - --json ring # SKIP no python3"
fi
# The demo's ring gives way to an explicit Dirty-bit mode; --halt-every 0 stops halts.
"$ukvm" run --demo --dirty-mode dbit --halt-every 0 --duration 1 --mem-per-vcpu 4M \
	--slots 1 --quiet --json "$tmp/demo.json" >"$tmp/out" 2>&1
rc=$?
[ "$rc" -eq 0 ] && grep -q '"dirty_ring": 0, "halt_every": 0' "$tmp/demo.json"
ok $? "--demo --dirty-mode dbit: bitmaps, no halts, exit 0 ($rc)"

# --passes ends the run when every guest made its passes.
"$ukvm" run --passes 2 --mem-per-vcpu 1M --quiet >"$tmp/out" 2>&1
ok $? "--passes run exits 0"

# The checks can fail: skipping the TLB flush after write-protection loses
# dirty pages (invariant failures, migration differences) -> exit 1.
if "$ukvm" run --help | grep -q "compiled out"; then
	echo "ok $((n += 1)) - --unsafe # SKIP race points compiled out"
else
	"$ukvm" run --duration 2 --mem-per-vcpu 8M --memslot-churn --migrate \
		--unsafe no-wrprot-flush --quiet >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ "$rc" -eq 1 ] && grep -q '^FAIL$' "$tmp/out"
	ok $? "--unsafe NO_WRPROT_FLUSH is caught: FAIL, exit 1 ($rc)"
	# ... and with the dirty ring: KVM_RESET_DIRTY_RINGS without its flush.
	"$ukvm" run --duration 2 --mem-per-vcpu 8M --memslot-churn --migrate --dirty-ring=8K \
		--unsafe no-wrprot-flush --quiet >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ "$rc" -eq 1 ] && grep -q '^FAIL$' "$tmp/out" && grep -q 'RESET_DIRTY_RINGS' "$tmp/err"
	ok $? "--unsafe NO_WRPROT_FLUSH with the dirty ring is caught: FAIL, exit 1 ($rc)"
fi

echo "1..$n"
[ "$fails" -eq 0 ]
