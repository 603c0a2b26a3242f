# ukvm — front door. `make` builds, `make test` runs every check, `make demo`
# runs the main scenario. Each target installs the Debian packages it needs.
SHELL := /bin/bash
BUILD ?= build

.PHONY: all build test demo clean asan tsan release deps

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

clean:
	rm -rf build build-asan build-tsan build-release
