# Sovra developer tasks. `make help` lists them.
CARGO ?= cargo
TOOLS := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(PATH)

.PHONY: help plan test test-real lint fmt crds tools bench ci clean

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

tools: ## Install helm 4 and kubectl 1.33 into .tools/bin, and Debian's etcd for the real-server harness (idempotent)
	bash ../shared/tools/install-helm.sh $(TOOLS)
	@command -v etcd >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
		&& { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; } \
		|| echo "etcd not installed: the real-server suite's etcd test will skip"; }

bench: ## Benchmarks; prints figures
	$(CARGO) bench --bench placement
	$(CARGO) bench --bench fleet

ci: lint test ## What .ci/run does

clean:
	$(CARGO) clean
