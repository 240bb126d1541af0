# draven — targets
#   make run       install what is missing, build release binaries, start nginx + fcgiwrap on
#                  127.0.0.1:$(PORT) with the demo configuration and a stand-in CI that runs the
#                  pipelines, print a walk-through (the first deploy, an approval, a rollback, a cancel)
#   make stop      stop exactly what `make run` started (by PID)
#   make test      build and run every test: unit (swift test), end-to-end (real nginx + fcgiwrap), fuzz-smoke
#   make deps      install the system packages (apt-get), only those missing
#   make build     debug build;  make release: release binaries into .build-dist/bin
#   make bench     release binaries, then draven against the C floor handler and adnanh/webhook
#                  (~20 min; BENCH_QUICK=1 for a ~4 min noisy pass): writes bench/REPORT.md + report.json
#   make bench-secrets  measure the secrets store's read path
#   make bench-instructions  instructions per typical request of each function (callgrind): repeatable on a
#                  busy machine (BIN_DIR=other/bin python3 bench/bench.py --instructions: another build's)
#   make bench-console  the console's whole-process cases (overview of 30 and of 1,000 environments, the 304
#                  poll) with status and the C floor handler, in one ~2 min run, printed with their goals
#   make bench-events   what delivering one event costs (per draven-deliver process; in a drained stream)
#   make bench-metrics  GET /metrics on a store with 100k jobs and 30 environments, whole process (goal <= 50 ms)
#   make link-order     record the code and data each function uses (valgrind) for the release link order
#   make fuzz      build the libFuzzer targets (Tests/Fuzz) and run each for FUZZ_SECONDS (300)
#   make fuzz-smoke  the bounded pass `make test` runs: regressions, corpus, FUZZ_SMOKE_SECONDS (4) each
#   make lint      swift-format (.swift-format: 4 spaces, 120 columns) and no line over 120 columns; .ci/run runs it
#   make format    rewrite the Swift sources in place with swift-format
#   make clean     remove build output (not the state directory)
SHELL := /bin/bash
PORT ?= 8080
STATE_DIR ?= $(CURDIR)/.draven
# Release binaries are installed here (functions and the CLI side by side).
BIN_DIR := $(CURDIR)/.build-dist/bin
# Functions start once per request: they are fully static executables (no dynamic loader,
# no relocations at start: ~1.3 ms less per request than a PIE with -static-stdlib, measured
# with hyperfine). They link only sqlite3 and sodium, whose static archives Debian ships.
# They are linked with lld in the order infra/link-order.txt gives (`make link-order` writes it):
# the code a request runs and the data it writes lie together, so each process maps and copies
# fewer pages (225 -> 174 page faults for a webhook, ~80 µs less per request).
# Generic types are instantiated through direct metadata accessors rather than by demangling
# their names at run time (-disable-concrete-type-metadata-mangled-name-accessors): larger code,
# but no demangler and no scan of the conformance tables on a request's path (~190k instructions
# and ~50 µs less per webhook).
FUNCTION_FLAGS := -c release --scratch-path .build-functions -Xswiftc -static-executable -Xlinker --gc-sections \
	-Xswiftc -use-ld=lld -Xlinker --symbol-ordering-file=$(CURDIR)/infra/link-order.txt -Xlinker --no-warn-symbol-ordering \
	-Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors
# The CLI (and, later, draven-deliver) link libcurl, which has no practical static build:
# they link the Swift runtime statically and the C libraries dynamically.
TOOL_FLAGS := -c release --static-swift-stdlib -Xlinker --gc-sections
FUNCTIONS := trigger status webhook-receive approve heartbeat rollback console plans
TOOLS := draven draven-deliver

# The one list of system packages draven needs (build, serve, test).
APT_PACKAGES := libsqlite3-dev libsodium-dev libcurl4-openssl-dev nginx-light fcgiwrap curl sqlite3 python3 python3-venv openssl \
	chromium chromium-driver \
	shellcheck python3-yaml \
	zlib1g-dev \
	prometheus

# What `make bench` needs on top of APT_PACKAGES: the load generator, the peer it is compared
# with (adnanh/webhook), a C compiler for the floor handler, and callgrind for `make link-order`.
BENCH_APT_PACKAGES := wrk webhook gcc libc6-dev valgrind

.PHONY: deps bench-deps build release run stop test unit-test e2e-test clean venv bench bench-secrets bench-instructions bench-plans bench-events bench-process \
	bench-console bench-metrics link-order fuzz fuzz-build fuzz-smoke lint format screenshots

deps bench-deps:
	@missing=$$(for p in $(if $(filter bench-deps,$@),$(BENCH_APT_PACKAGES),$(APT_PACKAGES)); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v swift >/dev/null || { echo "swift is not on PATH (expected /opt/swift/usr/bin)"; exit 1; }

build: deps
	swift build

release: deps
	@# swift build does not see linker inputs: relink the functions when the link order changed.
	@for p in $(FUNCTIONS); do [ .build-functions/release/$$p -nt infra/link-order.txt ] || rm -f .build-functions/release/$$p; done
	@for p in $(FUNCTIONS); do swift build $(FUNCTION_FLAGS) --product $$p || exit 1; done
	@for p in $(TOOLS); do swift build $(TOOL_FLAGS) --product $$p || exit 1; done
	@mkdir -p $(BIN_DIR)
	@for p in $(FUNCTIONS); do install -m 0755 .build-functions/release/$$p $(BIN_DIR)/$$p; done
	@for p in $(TOOLS); do install -m 0755 .build/release/$$p $(BIN_DIR)/$$p; done
	@echo "release binaries in $(BIN_DIR)"

run: release
	@STATE_DIR="$(STATE_DIR)" PORT="$(PORT)" BIN_DIR="$(BIN_DIR)" SWEEP_EVERY=5s infra/run-local.sh

stop:
	@STATE_DIR="$(STATE_DIR)" infra/stack.sh stop

venv: .venv/.ok
.venv/.ok: Tests/e2e/requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install -q -r Tests/e2e/requirements.txt
	touch $@

unit-test: deps
	swift test

e2e-test: release venv
	BIN_DIR="$(BIN_DIR)" .venv/bin/python -m pytest -q Tests/e2e

test: unit-test e2e-test fuzz-smoke

# PNGs of the console (overview, job page, inbox, environment page) from the browser tests' data.
screenshots: release venv
	BIN_DIR="$(BIN_DIR)" .venv/bin/python Tests/e2e/screenshots.py Tests/e2e/screenshots

# draven against the C floor handler and adnanh/webhook (see bench/bench.py). Not part of `make test`.
bench: release bench-deps
	BIN_DIR="$(BIN_DIR)" python3 bench/bench.py

# Instructions each function's typical request executes, whole process (bench.py --instructions).
bench-instructions: release bench-deps
	BIN_DIR="$(BIN_DIR)" python3 bench/bench.py --instructions

# The console's figures against status and the C floor handler, printed, not written (bench.py --console).
bench-console: release bench-deps
	BIN_DIR="$(BIN_DIR)" python3 bench/bench.py --console

# Whole-process figures of some cases against the C floor handler, interleaved (bench.py --process "NAME|NAME").
bench-process: release bench-deps
	BIN_DIR="$(BIN_DIR)" python3 bench/bench.py --process $(if $(CASES),"$(CASES)")

# A deploy plan's advance: step N's job ends -> step N+1's dispatch at a local stand-in (bench.py --plans).
bench-plans: release bench-deps
	BIN_DIR="$(BIN_DIR)" python3 bench/bench.py --plans

# The event stream: one event's delivery, per draven-deliver process and in a drained stream (bench.py --events).
bench-events: release bench-deps
	BIN_DIR="$(BIN_DIR)" python3 bench/bench.py --events
# GET /metrics on a store with 100k jobs and 30 environments, whole process, goal <= 50 ms (bench.py --metrics).
bench-metrics: release bench-deps
	BIN_DIR="$(BIN_DIR)" python3 bench/bench.py --metrics

# Records what each function runs and writes for its typical request (callgrind, lackey) into infra/link-order.txt,
# the order the release link lays code out in; then relinks. Run after larger changes.
link-order: release bench-deps
	BIN_DIR="$(BIN_DIR)" python3 bench/bench.py --link-order
	@$(MAKE) --no-print-directory release

# Request-path cost of the secrets store (100 entries), in process.
bench-secrets: deps
	swift build $(FUNCTION_FLAGS) --product bench-secrets
	.build-functions/release/bench-secrets

# libFuzzer targets (Tests/Fuzz/README.md): one executable, its own scratch path, declared in
# Package.swift only when DRAVEN_FUZZ is set, so no shipped binary sees these flags. Swift code gets
# coverage + ASan; the C shims (inline in Core/CSQLite/shim.h) and C++ (TOMLKit) ASan + UBSan.
# toml++'s assertions are off (they fire on malformed TOML; draven apply parses in a child process
# for that): the fuzzer looks for what follows them. So is UBSan's unreachable check in C++: toml++
# 3.4 reaches __builtin_unreachable on some non-ASCII bytes outside strings (Tests/Fuzz/README.md).
FUZZ_TARGETS := cgi json webhook form signatures config toml secrets store redactor events plan
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 4
FUZZ_FLAGS := -c debug --scratch-path .build-fuzz --product draven-fuzz \
	-Xswiftc -sanitize=fuzzer,address -Xswiftc -DDRAVEN_FUZZ \
	-Xcc -fsanitize=address,undefined -Xcc -fno-sanitize-recover=undefined -Xcxx -fsanitize=fuzzer-no-link \
	-Xcxx "-DTOML_ASSERT(expr)=((void)0)" -Xcxx -fno-sanitize=unreachable

fuzz-build: deps
	DRAVEN_FUZZ=1 swift build $(FUZZ_FLAGS) 2>&1 | grep -v "Cannot export local symbol '__asan"; exit $${PIPESTATUS[0]}

fuzz: fuzz-build
	Tests/Fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	Tests/Fuzz/run.sh --smoke $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

# The toolchain's swift-format with the checked-in .swift-format; it does not break comments or string
# literals, so the column limit is checked on its own as well.
SWIFT_SOURCES = $$(git ls-files '*.swift')
lint:
	@status=0; swift-format lint --strict --parallel $(SWIFT_SOURCES) || status=1; \
	if LC_ALL=C.UTF-8 grep -nE '^.{121,}$$' $(SWIFT_SOURCES); then echo "lines over 120 columns (above)"; status=1; fi; \
	exit $$status

format:
	swift-format format --in-place --parallel $(SWIFT_SOURCES)

clean:
	rm -rf .build .build-functions .build-dist .build-bench .build-fuzz .venv
