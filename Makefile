# Switchyard — the README's commands. `make run` and `make test` are all a
# newcomer types: both run `setup` first, which is idempotent.

SHELL := /bin/bash
GO ?= go
GO_MIN := 1.26
MODULES := pkg e2e services/esl-gateway services/policy-runner services/queue-distributor services/connector-proxy services/push-notifier
FUZZTIME ?= 20s
BIN := $(CURDIR)/bin
export SWITCHYARD_NATS_SERVER ?= $(BIN)/nats-server

.PHONY: setup run test bench bench-esl fuzz lint clean

setup:
	@scripts/setup.sh

run: setup
	@cd e2e && $(GO) run ./cmd/devstack

test: setup
	@set -e; for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && $(GO) test -race -count=1 -timeout 10m ./...); \
	done

bench: setup
	@set -e; for m in $(MODULES); do \
		(cd $$m && $(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 20m ./...); \
	done
	@$(MAKE) --no-print-directory bench-esl

bench-esl: setup
	@cd e2e && $(GO) run ./cmd/eslbench

# Every fuzz target of every parser: module directory and package.
FUZZ_PKGS := pkg:./esl pkg:./events services/queue-distributor:./internal/distributor services/policy-runner:./internal/hours services/push-notifier:./internal/domain services/connector-proxy:./internal/domain services/connector-proxy:./internal/ports/invalidation

# Go 1.26's fuzz coordinator can end a run that found nothing with a bare
# "context deadline exceeded" (golang/go#75804, fixed in Go 1.27): a run that
# fails with only that, and writes no failing input, is reported and passed.
fuzz: setup
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; for mp in $(FUZZ_PKGS); do \
		m=$${mp%%:*}; p=$${mp#*:}; \
		for t in $$(cd $$m && $(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
			echo "== fuzz $$m $$p $$t ($(FUZZTIME))"; \
			inputs=$$m/$${p#./}/testdata/fuzz/$$t; before=$$(ls $$inputs 2>/dev/null | wc -l); \
			if ! (cd $$m && $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p) >$$log 2>&1; then \
				cat $$log; \
				if [ "$$(ls $$inputs 2>/dev/null | wc -l)" = "$$before" ] && grep -q '^    context deadline exceeded$$' $$log && \
					[ "$$(grep -c '^--- FAIL' $$log)" = 1 ]; then \
					echo "   (only Go's fuzz deadline race, golang/go#75804: no failing input, not a finding)"; \
				else exit 1; fi; \
			else grep -v '^fuzz: elapsed' $$log; fi; \
		done; \
	done

lint: setup
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@for m in $(MODULES); do (cd $$m && $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...) || exit 1; done

clean:
	rm -rf $(BIN)
