# hookd developer Makefile. `make` (or `make help`) lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO ?= go
BIN := $(CURDIR)/bin

# Pinned versions, shared with scripts/ and docker-compose.yml (temporal CLI @latest can't be
# installed with go install).
include versions.env
TEMPORAL_SERVER := bin/temporal-server-$(TEMPORAL_SERVER_VERSION)
TEMPORAL_SQL    := bin/temporal-sql-$(TEMPORAL_SERVER_VERSION)
TEMPORAL_UI     := bin/temporal-ui-$(TEMPORAL_UI_VERSION)
JAEGER          := bin/jaeger-$(JAEGER_VERSION)
HELM            := bin/helm-$(HELM_VERSION)

# Extra flags: make test GOTESTFLAGS='-run TestFoo -v'; make bench BENCHFLAGS='...'
GOTESTFLAGS ?=
BENCHFLAGS  ?=
# make soak SOAK=10m: how long the chaos soak puts load and faults on the cluster
SOAK        ?= 5m

.PHONY: help tools cluster-tools build dev cluster test test-cluster test-cluster-faults soak vet ensure-postgres bench compose-check clean distclean helm-check

help: ## list targets
	@echo "hookd make targets:"
	@grep -hE '^[a-zA-Z/_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-15s %s\n", $$1, $$2}'
	@echo "variables: GOTESTFLAGS='$(GOTESTFLAGS)' BENCHFLAGS='$(BENCHFLAGS)'"
	@echo "pinned (versions.env): temporal CLI $(TEMPORAL_CLI_VERSION), server $(TEMPORAL_SERVER_VERSION), UI $(TEMPORAL_UI_VERSION), mailpit $(MAILPIT_VERSION), jaeger $(JAEGER_VERSION)"

bin/temporal: ## build the pinned Temporal CLI (dev server) into bin/
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

bin/mailpit: ## build the pinned Mailpit into bin/
	GOBIN=$(BIN) $(GO) install github.com/axllent/mailpit@$(MAILPIT_VERSION)

$(JAEGER): ## build the pinned Jaeger (trace collector for make dev; ~4 min on 2 cores)
	scripts/build-jaeger.sh $(JAEGER_VERSION) $@

tools: bin/temporal bin/mailpit $(JAEGER) ## build the dev tools: Temporal CLI, Mailpit, Jaeger

# The real server's binaries carry their version in their name: changing versions.env rebuilds them.
$(TEMPORAL_SERVER): ## build the pinned Temporal server (~4 min on 2 cores)
	GOBIN=$(BIN)/.build $(GO) install go.temporal.io/server/cmd/server@v$(TEMPORAL_SERVER_VERSION)
	mv $(BIN)/.build/server $@

$(TEMPORAL_SQL):
	GOBIN=$(BIN)/.build $(GO) install go.temporal.io/server/cmd/tools/sql@v$(TEMPORAL_SERVER_VERSION)
	mv $(BIN)/.build/sql $@

$(TEMPORAL_UI):
	GOBIN=$(BIN)/.build $(GO) install github.com/temporalio/ui-server/v2/cmd/server@v$(TEMPORAL_UI_VERSION)
	mv $(BIN)/.build/server $@

cluster-tools: tools $(TEMPORAL_SERVER) $(TEMPORAL_SQL) $(TEMPORAL_UI) ## build the real Temporal server, its SQL tool and Web UI

build: ## build bin/hookd
	$(GO) build -o bin/hookd ./cmd/hookd

dev: tools build ## run postgres + temporal + mailpit + jaeger + hookd in the foreground (Ctrl-C stops)
	scripts/dev.sh

cluster: cluster-tools build ## production topology: Temporal server on PostgreSQL + Web UI + Mailpit + 2 workers + 2 APIs (Ctrl-C stops)
	scripts/ensure-postgres.sh
	scripts/cluster.sh

ensure-postgres: ## make sure PostgreSQL answers on 127.0.0.1:5432 (trust auth)
	scripts/ensure-postgres.sh

vet: ## go vet ./... and workflowcheck (workflow determinism)
	$(GO) vet ./...
	$(GO) tool workflowcheck ./...

test: bin/temporal ## ensure postgres, go vet, workflowcheck, then go test -race ./... (GOTESTFLAGS for extra flags)
	scripts/ensure-postgres.sh
	$(GO) vet ./...
	$(GO) tool workflowcheck ./...
	HOOKD_TEMPORAL_CLI=$(BIN)/temporal $(GO) test -race -count=1 -timeout 20m $(GOTESTFLAGS) ./...

test-cluster: bin/temporal $(TEMPORAL_SERVER) $(TEMPORAL_SQL) ## the integration tests against a real Temporal server on PostgreSQL
	scripts/ensure-postgres.sh
	scripts/test-cluster.sh $(GOTESTFLAGS)

test-cluster-faults: bin/temporal $(TEMPORAL_SERVER) $(TEMPORAL_SQL) ## the scale-out fault test against a real Temporal server (CI runs it)
	scripts/ensure-postgres.sh
	scripts/test-cluster.sh -run 'TestScaleOutSurvivesKills' -v $(GOTESTFLAGS)

# The soak starts its own cluster (scripts/cluster.sh, ports +20000, state in .soak/) and points
# the integration package's shared Temporal address at it, so no dev server starts.
soak: bin/temporal $(TEMPORAL_SERVER) $(TEMPORAL_SQL) ## chaos soak: load + kill -9/SIGSTOP/PostgreSQL outages on the production topology for SOAK (default 5m), then the checks
	scripts/ensure-postgres.sh
	HOOKD_SOAK=$(SOAK) HOOKD_TEMPORAL_CLI=$(BIN)/temporal HOOKD_TEST_TEMPORAL_ADDRESS=127.0.0.1:27233 \
		$(GO) test -count=1 -timeout 3h -run '^TestSoak$$' -v $(GOTESTFLAGS) ./integration

bench: bin/temporal ensure-postgres ## run the end-to-end benchmark (cmd/hookd-bench; BENCHFLAGS for flags)
	HOOKD_TEMPORAL_CLI=$(BIN)/temporal $(GO) run ./cmd/hookd-bench $(BENCHFLAGS)

compose-check: ## check docker-compose.yml's versions against versions.env; validate it with docker compose if present
	scripts/check-versions.sh
	@if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then \
		docker compose config -q && echo "compose-check: docker-compose.yml is valid"; \
	else \
		echo "compose-check: skipped (docker compose plugin not available)"; \
	fi

$(HELM):
	GOBIN=$(BIN)/.build $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/.build/helm $@

# Offline: nothing here reaches a Kubernetes cluster or downloads a schema. The rendered manifests
# are decoded strictly into the Kubernetes API's Go types and checked against each other
# (deploy/helm/check, a module of its own).
helm-check: $(HELM) ## lint the Helm chart (deploy/helm/hookd), render it and validate the manifests offline
	$(HELM) lint --strict deploy/helm/hookd --set secrets.existingSecret=hookd-keys
	$(HELM) lint --strict deploy/helm/hookd --set secrets.databaseURL=postgres://db/hookd,secrets.encryptionKey=k1:x,metrics.serviceMonitor.enabled=true
	cd deploy/helm/check && HELM=$(abspath $(HELM)) $(GO) test -count=1 .

# .dev/encryption-key stays: without it the secrets in the dev database cannot be read.
clean: ## remove bin/hookd, .dev/ (but its encryption key) and coverage files (keeps built tools)
	rm -rf bin/hookd bin/hookd-bench coverage.out coverage.html *.coverprofile
	if [ -d .dev ]; then find .dev -mindepth 1 -maxdepth 1 ! -name encryption-key -exec rm -rf {} +; fi

distclean: clean ## also remove the built tools in bin/
	rm -rf bin
