# ukvm — front door. `make` builds, `make test` runs every check, `make demo`
# runs the main scenario. Each target installs the Debian packages it needs.
SHELL := /bin/bash
BUILD ?= build

.PHONY: all build test demo clean asan tsan release deps bench

all: build

build:
	@scripts/deps.sh build
	@scripts/build.sh $(BUILD) default

asan:
	@scripts/deps.sh test
	@scripts/build.sh build-asan asan

tsan:
	@scripts/deps.sh test
	@scripts/build.sh build-tsan tsan

release:
	@scripts/deps.sh build
	@scripts/build.sh build-release release

test:
	@scripts/deps.sh test
	@scripts/run-tests.sh

demo:
	@scripts/deps.sh demo
	@scripts/build.sh $(BUILD) default
	@$(BUILD)/ukvm run --demo

# The full benchmark suite (bench/RESULTS.md): numbers from the release
# build, the validator's cost from the default build; JSON, text and PNG
# plots land in $(BENCH_OUT).
BENCH_OUT ?= bench-out
BENCHES := sync fault memslot demand-paging dirty-log access-tracking baseline
bench:
	@scripts/deps.sh bench
	@scripts/build.sh build-release release
	@scripts/build.sh $(BUILD) default
	@mkdir -p $(BENCH_OUT)
	@set -eo pipefail; for b in $(BENCHES); do \
		build-release/ukvm bench $$b --json $(BENCH_OUT)/$$b.json | tee $(BENCH_OUT)/$$b.txt; \
	done
	@set -o pipefail; $(BUILD)/ukvm bench validator --release-binary build-release/ukvm \
		--json $(BENCH_OUT)/validator.json | tee $(BENCH_OUT)/validator.txt
	@build-release/ukvm bench --plot $(BENCH_OUT)

clean:
	rm -rf build build-asan build-tsan build-release

# libFuzzer on the memslot + dirty-log API (fuzz/fuzz_memslot.c): new inputs
# go to build-fuzz/corpus, fuzz/corpus is the committed seed corpus.
FUZZ_SECONDS ?= 600
.PHONY: fuzz
fuzz:
	@scripts/deps.sh test
	@[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true \
		-Dtests=false -Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fno-sanitize-recover=undefined >/dev/null
	@ninja -C build-fuzz fuzz/fuzz_memslot >/dev/null
	@mkdir -p build-fuzz/corpus
	build-fuzz/fuzz/fuzz_memslot -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		build-fuzz/corpus fuzz/corpus
