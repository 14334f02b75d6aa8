#!/usr/bin/env bash
# Idempotent machine setup for Switchyard: checks Go, installs the servers the
# tests and the dev stack run for real (redis-server, Node.js with npm for the
# modesl peer) from Debian packages when they are missing and we are root,
# builds the pinned nats-server, and downloads Go and npm modules.
set -euo pipefail
cd "$(dirname "$0")/.."

need_go="1.26"
have_go=$(go env GOVERSION 2>/dev/null | sed 's/^go//') || {
	echo "setup: Go is not installed; install Go ${need_go} or newer from https://go.dev/dl/" >&2; exit 1; }
if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]; then
	echo "setup: Go ${have_go} is too old; Switchyard needs Go ${need_go} or newer" >&2; exit 1
fi

missing=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "setup: installing ${missing[*]} from Debian packages"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq "${missing[@]}" >/dev/null
	else
		echo "setup: missing ${missing[*]}; install them with:" >&2
		echo "  sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
fi
# Debian starts a redis-server service on :6379 when it installs it; the
# tests start their own on free ports and do not need it.

# nats-server: built from the version pinned in pkg/go.mod (the real server,
# the same everywhere; Debian's 2.9 is too old for nats.go's jetstream API).
want_nats=$(cd pkg && go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
if [ ! -x bin/nats-server ] || [ "$(cat bin/.nats-server-version 2>/dev/null)" != "$want_nats" ]; then
	echo "setup: building nats-server ${want_nats} into bin/"
	mkdir -p bin
	(cd pkg && go build -o ../bin/nats-server github.com/nats-io/nats-server/v2)
	echo "$want_nats" > bin/.nats-server-version
fi

for m in pkg e2e services/*; do (cd "$m" && go mod download); done

# modesl, the independent ESL peer the e2e tests and bench-esl use.
if [ -f e2e/modesl/package-lock.json ]; then
	lock_sum=$(sha256sum e2e/modesl/package-lock.json | cut -d' ' -f1)
	if [ ! -d e2e/modesl/node_modules ] || [ "$(cat e2e/modesl/node_modules/.switchyard-lock 2>/dev/null)" != "$lock_sum" ]; then
		echo "setup: installing modesl (npm ci in e2e/modesl)"
		(cd e2e/modesl && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
		echo "$lock_sum" > e2e/modesl/node_modules/.switchyard-lock
	fi
fi
