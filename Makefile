# hookd developer Makefile. `make` (or `make help`) lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO ?= go
BIN := $(CURDIR)/bin

# Pinned tool versions (temporal CLI @latest can't be installed with go install).
TEMPORAL_CLI_VERSION := v1.5.1
MAILPIT_VERSION      := v1.33.1

# Extra flags: make test GOTESTFLAGS='-run TestFoo -v'; make bench BENCHFLAGS='...'
GOTESTFLAGS ?=
BENCHFLAGS  ?=

.PHONY: help tools build dev test vet ensure-postgres bench compose-check clean distclean

help: ## list targets
	@echo "hookd make targets:"
	@grep -hE '^[a-zA-Z/_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-15s %s\n", $$1, $$2}'
	@echo "variables: GOTESTFLAGS='$(GOTESTFLAGS)' BENCHFLAGS='$(BENCHFLAGS)'"
	@echo "pinned tools: temporal CLI $(TEMPORAL_CLI_VERSION), mailpit $(MAILPIT_VERSION)"

bin/temporal: ## build the pinned Temporal CLI (dev server) into bin/
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

bin/mailpit: ## build the pinned Mailpit into bin/
	GOBIN=$(BIN) $(GO) install github.com/axllent/mailpit@$(MAILPIT_VERSION)

tools: bin/temporal bin/mailpit ## build both dev tools

build: ## build bin/hookd
	$(GO) build -o bin/hookd ./cmd/hookd

dev: tools build ## run postgres + temporal + mailpit + hookd in the foreground (Ctrl-C stops)
	scripts/dev.sh

ensure-postgres: ## make sure PostgreSQL answers on 127.0.0.1:5432 (trust auth)
	scripts/ensure-postgres.sh

vet: ## go vet ./...
	$(GO) vet ./...

test: bin/temporal ## ensure postgres, go vet, then go test -race ./... (GOTESTFLAGS for extra flags)
	scripts/ensure-postgres.sh
	$(GO) vet ./...
	HOOKD_TEMPORAL_CLI=$(BIN)/temporal $(GO) test -race -count=1 -timeout 20m $(GOTESTFLAGS) ./...

bench: bin/temporal ensure-postgres ## run the end-to-end benchmark (cmd/hookd-bench; BENCHFLAGS for flags)
	HOOKD_TEMPORAL_CLI=$(BIN)/temporal $(GO) run ./cmd/hookd-bench $(BENCHFLAGS)

compose-check: ## validate docker-compose.yml (skipped without docker compose)
	@if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then \
		docker compose config -q && echo "compose-check: docker-compose.yml is valid"; \
	else \
		echo "compose-check: skipped (docker compose plugin not available)"; \
	fi

# .dev/encryption-key stays: without it the secrets in the dev database cannot be read.
clean: ## remove bin/hookd, .dev/ (but its encryption key) and coverage files (keeps built tools)
	rm -rf bin/hookd bin/hookd-bench coverage.out coverage.html *.coverprofile
	if [ -d .dev ]; then find .dev -mindepth 1 -maxdepth 1 ! -name encryption-key -exec rm -rf {} +; fi

distclean: clean ## also remove the built tools in bin/
	rm -rf bin
