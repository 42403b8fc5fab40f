# Sovra developer tasks. `make help` lists them.
CARGO ?= cargo
TOOLS := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(PATH)

.PHONY: help plan test test-real lint fmt crds tools bench ci clean fuzz

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

plan: ## Decide placements for the shipped examples (no cluster needed)
	$(CARGO) run --quiet -- plan -f examples/

test: tools ## Run every test (unit, property, integration against the in-process API server, chart)
	$(CARGO) test --workspace

test-real: tools ## Real-server tests: etcd and kube-apiserver from KUBEBUILDER_ASSETS (each skips without it; README "Real-server tests")
	$(CARGO) test --test real_server -- --test-threads=1

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

crds: ## Regenerate crds/ from src/crd/ and refresh the copies in the chart and deploy/
	$(CARGO) run --quiet -- crd --out-dir crds
	cp crds/*.yaml charts/sovra/crds/
	cp crds/*.yaml deploy/crds/
	cp deploy/sensitivityclasses.yaml examples/sensitivityclasses.yaml
	cp deploy/sensitivityclasses.yaml charts/sovra/files/sensitivityclasses.yaml

tools: ## Install helm 4 and kubectl 1.33 into .tools/bin, Debian's etcd for the real-server harness and Debian's chromium for the report render test (idempotent)
	bash ../shared/tools/install-helm.sh $(TOOLS)
	@command -v etcd >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
		&& { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; } \
		|| echo "etcd not installed: the real-server suite's etcd test will skip"; }
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
		&& { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium not installed: the report render test (tests/report_render.rs) will skip"; }

bench: ## Benchmarks; prints figures
	$(CARGO) bench --bench placement
	$(CARGO) bench --bench fleet

# Fuzzing is not part of `test` or CI: it needs cargo-fuzz and a nightly compiler (without a
# rustup nightly, stable with RUSTC_BOOTSTRAP=1 is tried). Crashes land in fuzz/artifacts/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := manifests kubeconfig audit_lines
FUZZ_CARGO ?= $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo 'cargo +nightly' || echo 'RUSTC_BOOTSTRAP=1 cargo')

fuzz: ## Fuzz each parser of untrusted text for FUZZ_SECONDS (default 60) seconds: FUZZ_SECONDS=600 make fuzz
	@command -v cargo-fuzz >/dev/null || { echo 'cargo-fuzz is missing: cargo install cargo-fuzz'; exit 1; }
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$target && \
		$(FUZZ_CARGO) fuzz run $$target corpus/$$target seeds/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 || exit 1; \
	done

ci: lint test ## What .ci/run does

clean:
	$(CARGO) clean
