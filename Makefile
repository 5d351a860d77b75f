# latchkey: build, test and lint. Every tool comes from the package registries through the
# project's own files: contracts/package-lock.json (Foundry, solc, buf, Solidity libraries),
# examples/web/package-lock.json (the web example's protobuf runtime and playwright-core),
# Cargo.lock (crates), and Debian's chromium package for the browser test, which the
# Makefile installs. Nothing needs to be installed by hand besides Rust and Node.js.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CONTRACTS := contracts
NODE_BIN := $(CONTRACTS)/node_modules/.bin
FORGE := $(abspath $(NODE_BIN)/forge)
BUF := $(abspath $(CONTRACTS)/node_modules/@bufbuild/buf-linux-x64/bin/buf)
TOOLCHAIN_STAMP := $(CONTRACTS)/node_modules/.toolchain-installed
WEB := examples/web
WEB_STAMP := $(WEB)/node_modules/.installed
CHROMIUM ?= /usr/bin/chromium
CARGO ?= cargo

# The unstable import options in rustfmt.toml need a nightly rustfmt; stable rustfmt
# ignores them and formats everything else the same way.
RUSTFMT_TOOLCHAIN := $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo +nightly)

.PHONY: help dev release toolchain contracts forge-build forge-test check-artifacts buf-lint cargo-test web chromium browser-test test fmt lint clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

toolchain: $(TOOLCHAIN_STAMP) ## Install the pinned npm toolchain (anvil, forge, cast, solc, buf)

$(TOOLCHAIN_STAMP): $(CONTRACTS)/package.json $(CONTRACTS)/package-lock.json
	cd $(CONTRACTS) && npm ci --no-audit --no-fund
	touch $@

forge-build: toolchain ## Compile the contracts
	cd $(CONTRACTS) && $(FORGE) build

contracts: forge-build ## Compile the contracts and refresh the artifacts the crate embeds
	node $(CONTRACTS)/tools/artifacts.js write

check-artifacts: forge-build ## Fail when contracts/artifacts differs from the sources
	node $(CONTRACTS)/tools/artifacts.js check

forge-test: toolchain ## Run the forge suite (unit, fuzz) with a gas report
	cd $(CONTRACTS) && $(FORGE) test --offline --gas-report

buf-lint: toolchain ## Lint the gRPC API in proto/
	cd proto && $(BUF) lint

cargo-test: toolchain ## Run the Rust unit and integration tests (real anvil)
	$(CARGO) test --locked --all-targets

$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund
	touch $@

web: toolchain $(WEB_STAMP) ## Install the web example's packages and generate its protobuf code
	cd $(WEB) && BUF=$(BUF) npm run --silent generate

chromium: ## Install Debian's chromium for the browser test, unless it is there
	@if [ ! -x $(CHROMIUM) ]; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -q && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; \
	fi

browser-test: web chromium ## Drive the web example in headless Chromium against `latchkey dev`
	$(CARGO) build --locked --bin latchkey
	cd $(WEB) && LATCHKEY_BIN=$(abspath target/debug/latchkey) CHROMIUM=$(CHROMIUM) npm test

release: ## Build the release binary target/release/latchkey, as deploy/Dockerfile does
	$(CARGO) build --release --locked --bin latchkey

dev: toolchain web ## Run the local stack: anvil, contracts, relayer, daemon on :50051, web example on :5173
	$(CARGO) run --locked -- dev

test: buf-lint check-artifacts forge-test cargo-test browser-test ## Everything that proves latchkey works

fmt: toolchain ## Format Rust and Solidity
	$(CARGO) $(RUSTFMT_TOOLCHAIN) fmt --all
	cd $(CONTRACTS) && $(FORGE) fmt

lint: toolchain ## rustfmt, clippy -D warnings, forge fmt --check
	$(CARGO) $(RUSTFMT_TOOLCHAIN) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	cd $(CONTRACTS) && $(FORGE) fmt --check

clean: ## Remove build output (keeps the npm toolchain)
	$(CARGO) clean
	rm -rf $(CONTRACTS)/out $(CONTRACTS)/cache
