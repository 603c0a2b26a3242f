#!/bin/bash
# Install the Debian packages a target needs, only when some are missing.
# Usage: scripts/deps.sh build|demo|test
set -euo pipefail
want=(gcc make meson ninja-build pkg-config liburcu-dev libbsd-dev linux-libc-dev)
case "${1:-build}" in
	build) ;;
	demo) want+=(graphviz) ;;
	test) want+=(clang libclang-rt-14-dev libcmocka-dev graphviz) ;;
	bench) want+=(gnuplot-nox graphviz) ;;
	*) echo "deps.sh: unknown target $1" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
