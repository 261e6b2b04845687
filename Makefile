# Flotilla's front door. `make run` and `make test` work on a fresh Debian 12 machine.
JOBS        ?= $(shell nproc)
BUILD_DIR   ?= build/release
TEST_DIR    ?= build/dev
SCENARIO    ?= scenarios/library/apache-always-up.yaml
CTEST_ARGS  ?=

.PHONY: all deps build build-test run test bench clean format

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake --preset release >/dev/null
	cmake --build $(BUILD_DIR) -j $(JOBS) --target flotilla

build-test: deps
	cmake --preset dev >/dev/null
	cmake --build $(TEST_DIR) -j $(JOBS)

run: build
	@bash scripts/run-main.sh $(BUILD_DIR)/cli/flotilla $(SCENARIO)

test: build-test
	@bash scripts/ensure-docker.sh
	cd $(TEST_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

bench: deps
	cmake --preset release >/dev/null
	cmake --build $(BUILD_DIR) -j $(JOBS)
	@for b in $(BUILD_DIR)/tests/bench/*_bench; do echo "== $$b"; $$b; done

format:
	find core sim backends scenarios analysis cli tests -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	rm -rf build
