# draven — targets
#   make run       install what is missing, build release binaries, start nginx + fcgiwrap on
#                  127.0.0.1:$(PORT) with the demo configuration, print a ready curl command
#   make stop      stop exactly what `make run` started (by PID)
#   make test      build and run every test: unit (swift test) and end-to-end (real nginx + fcgiwrap)
#   make deps      install the system packages (apt-get), only those missing
#   make build     debug build;  make release: release build (-static-stdlib)
#   make clean     remove build output (not the state directory)
SHELL := /bin/bash
PORT ?= 8080
STATE_DIR ?= $(CURDIR)/.draven
RELEASE_DIR := $(CURDIR)/.build/release
SWIFT_RELEASE_FLAGS := -c release --static-swift-stdlib -Xlinker --gc-sections
FUNCTIONS := trigger status
PRODUCTS := $(FUNCTIONS) draven

# The one list of system packages draven needs (build, serve, test).
APT_PACKAGES := libsqlite3-dev libsodium-dev libcurl4-openssl-dev nginx-light fcgiwrap curl sqlite3 python3 python3-venv

.PHONY: deps build release run stop test unit-test e2e-test clean venv

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v swift >/dev/null || { echo "swift is not on PATH (expected /opt/swift/usr/bin)"; exit 1; }

build: deps
	swift build

release: deps
	@for p in $(PRODUCTS); do swift build $(SWIFT_RELEASE_FLAGS) --product $$p || exit 1; done

run: release
	@STATE_DIR="$(STATE_DIR)" PORT="$(PORT)" BIN_DIR="$(RELEASE_DIR)" infra/run-local.sh

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
	BIN_DIR="$(RELEASE_DIR)" .venv/bin/python -m pytest -q Tests/e2e

test: unit-test e2e-test

clean:
	rm -rf .build .venv
