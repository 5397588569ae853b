# The two commands of the README's quick start, and what they need.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps build deb test unit integration demo bench bench-compare bench-multihost bench-smoke chaos chaos-smoke chaos-multihost asan sim clean format

all: build

deps:
	@scripts/install-deps

# The Release build the package is made of, at Debian's -O2, with line tables only (-g1):
# backtraces keep their files and lines, and the build takes a quarter less time than with full
# debug information (CI builds twice on two cores). The package strips them.
build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -g1 -DNDEBUG" >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# tandem_<version>_amd64.deb in $(BUILD_DIR)/deb (scripts/make-deb); `make test` installs one,
# runs a cluster from it and removes it (tests/package/install_deb.sh).
deb: build
	@scripts/make-deb $(BUILD_DIR) $(BUILD_DIR)/deb

# Every test: unit tests, then integration tests against real PostgreSQL 15.
test: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure

unit: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -L unit

integration: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -L integration

# The walk-through of shared/SCENARIO.md as a guided tour on a local 3-node cluster.
demo: build
	@scripts/demo $(BUILD_DIR)/tandem

# The benchmarks: K trials of each scenario on local clusters; results in bench/results/.
bench: build
	@$(BUILD_DIR)/bench/tandem-bench --tandem $(BUILD_DIR)/tandem --trials $(or $(TRIALS),5) --out bench/results

# tandem and Patroni side by side on one etcd, the same probe and scenarios (K trials each, and
# Patroni at its defaults and at its fastest); results in bench/results/compare.{md,json}. Root.
bench-compare: build
	@$(BUILD_DIR)/bench/tandem-compare --tandem $(BUILD_DIR)/tandem --trials $(or $(TRIALS),3) --out bench/results

# One short trial of each scenario, and of the comparison with Patroni at its fastest, to keep
# both runners working (CI runs it).
bench-smoke: build
	@$(BUILD_DIR)/bench/tandem-bench --tandem $(BUILD_DIR)/tandem --smoke --out $(BUILD_DIR)/bench-smoke
	@$(BUILD_DIR)/bench/tandem-compare --tandem $(BUILD_DIR)/tandem --smoke --out $(BUILD_DIR)/bench-smoke

# K random faults on local clusters, a third of them on a starved machine; results in
# bench/results/chaos.{json,md}, every trial's line in chaos.log.
chaos: build
	@bash -o pipefail -c '$(BUILD_DIR)/bench/tandem-chaos --tandem $(BUILD_DIR)/tandem \
	  --trials $(or $(TRIALS),110) --out bench/results 2>&1 | tee bench/results/chaos.log'

# K random faults (TRIALS, default 30) on clusters of three hosts in network namespaces with a
# 3-member etcd (root); results in bench/results/chaos-multihost.{json,md}. `make test` runs two
# trials of fixed faults.
chaos-multihost: build
	@scripts/chaos-multihost $(BUILD_DIR)

# Several machines as a benchmark (issue 19.4): the primary's host cut off, TRIALS (default 10)
# times, synchronous or not by the seed: the outage, writes lost, and until every node streams
# again (the 10 s cut included). Results in bench/results/multihost.{json,md,log}. Root.
bench-multihost: build
	@TRIALS=$(or $(TRIALS),10) FAULT="host cut off" NAME=multihost scripts/chaos-multihost $(BUILD_DIR)

# Three short trials of the chaos runner, to keep it working (CI runs it).
chaos-smoke: build
	@$(BUILD_DIR)/bench/tandem-chaos --tandem $(BUILD_DIR)/tandem --smoke --out $(BUILD_DIR)/chaos-smoke

# A long run of the simulation: 1,000,000 schedules (SCENARIOS=N to change), from seeds no other
# run uses; the result, naming its commit and machine and every seed that failed, in
# bench/results/sim.{md,json}. About 72 minutes on two cores.
sim: build
	@scripts/sim-long $(BUILD_DIR)

# tandem built under AddressSanitizer and UndefinedBehaviorSanitizer: every unit and simulation
# test, and the integration tests that drive the agent's own threads hardest (the agents under
# faults, the walk-through, hostile clients and files), run by the Release build's test driver
# against the sanitized tandem (TANDEM_TEST_BINARY): what runs the agents is the binary, and the
# driver need not be compiled twice. The rest of the integration suite runs once, in
# `make test`, to keep CI within its time; `make asan ASAN_INTEGRATION=.` runs them all.
ASAN_INTEGRATION ?= ^(AgentTest|WalkthroughTest|HostileTest)\.
# Left out under the sanitizers: six standbys take the same host-crash path as the other failovers
# with more processes (10.7 s of the 45.6 min CI run on 5553cf6).
ASAN_SKIP ?= ^AgentTest\.SixStandbysFollowTheMostAdvancedAfterAHostCrash$$
# Only what those tests run is built (not the benchmarks), with line tables for the reports.
# The simulation's replays (a seed twice, the seeds that found bugs: 36 s under the sanitizers)
# run in `make test` only.
asan: build
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1" \
	  -DTANDEM_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS) --target tandem tandem_unit_tests tandem_sim_tests
	@ctest --test-dir build-asan --output-on-failure -L unit \
	  -E '^(House\.|Simulation\.(ASeedReplaysExactly|SeedsThatFoundBugs)$$)'
	@TANDEM_TEST_BINARY=$(CURDIR)/build-asan/tandem ctest --test-dir $(BUILD_DIR) \
	  --output-on-failure -L integration -R '$(ASAN_INTEGRATION)' -E '$(ASAN_SKIP)'

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD_DIR) build-asan
